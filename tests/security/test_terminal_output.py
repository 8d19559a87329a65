"""Record text is shown as text: `show` and `diff` never read it as markup or pass escapes through."""

from __future__ import annotations

import pytest

from repro_common.text import FIELD_MAX_CHARS, printable
from support.git import make_repo
from support.procs import clean_env, run_cli
from support.records import MLFLOW_TRAIN, read_run, run_mlflow_script

ESCAPE = "\x1b]0;owned\x07\x1b[31m"  # sets the window title, turns the text red
MARKUP_ARGS = ["--note", "[/]", "data.files=[train.csv,val.csv]", f"--title={ESCAPE}done"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(store, run with markup and escapes in argv, a plain run of the same script)."""
    base = tmp_path_factory.mktemp("terminal")
    repo = make_repo(base / "project", {"train.py": MLFLOW_TRAIN})
    uri = f"sqlite:///{base / 'mlflow.db'}"
    odd = read_run(uri, run_mlflow_script(repo, uri, MARKUP_ARGS))
    plain = read_run(uri, run_mlflow_script(repo, uri, ["--note", "plain"]))
    return uri, odd.run_id, plain.run_id


def _cli(*args: str) -> tuple[int, str, str]:
    proc = run_cli(*args, env=clean_env(COLUMNS="400"))
    return proc.returncode, proc.stdout, proc.stderr


def test_show_prints_brackets_as_written_and_escapes_control_characters(
    runs: tuple[str, str, str],
) -> None:
    uri, odd, _ = runs
    code, out, err = _cli("show", odd, "--tracking-uri", uri)
    assert code == 0, err
    assert "[/]" in out
    assert "data.files=[train.csv,val.csv]" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "--title=\\x1b]0;owned\\x07\\x1b[31mdone" in out  # visible, inert


def test_diff_prints_both_argvs_as_text_and_exits_1_not_2(runs: tuple[str, str, str]) -> None:
    uri, odd, plain = runs
    code, out, err = _cli("diff", odd, plain, "--tracking-uri", uri)
    assert code == 1, err  # the runs differ; a markup error would exit 2
    assert "[/]" in out and "data.files=[train.csv,val.csv]" in out
    assert "\x1b" not in out and "\x07" not in out


def test_printable_escapes_newlines_bidi_overrides_and_cuts_huge_values_with_a_note() -> None:
    assert printable("a\nb\tc\u202ed") == "a\\nb\\tc\\u202ed"
    huge = printable("x" * (FIELD_MAX_CHARS * 10))
    assert len(huge) < FIELD_MAX_CHARS + 100
    assert huge.endswith(f"[{FIELD_MAX_CHARS * 9:,} more characters not shown]")
