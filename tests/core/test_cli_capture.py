"""`mlrepro capture` as a user types it: exit codes, JSON that follows the schema, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from repro_common.manifest import Manifest, validate_document
from support.git import git
from support.procs import clean_env, run_cli


def test_capture_prints_a_readable_summary_of_the_checkout(git_repo: Path) -> None:
    proc = run_cli("capture", cwd=git_repo, env=clean_env(COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    commit = git(git_repo, "rev-parse", "HEAD")
    assert commit in proc.stdout
    assert "exploratory" in proc.stdout and "main" in proc.stdout
    assert proc.stderr == ""


def test_capture_json_follows_the_schema_and_names_the_track(git_repo: Path) -> None:
    proc = run_cli("capture", "--json", "--track", "production", cwd=git_repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    validate_document(doc)
    manifest = Manifest.from_dict(doc)
    assert manifest.digest_matches()
    assert doc["track"] == "production"
    assert doc["code"]["commit"] == git(git_repo, "rev-parse", "HEAD")
    assert doc["code"]["argv"] == ["capture", "--json", "--track", "production"]


def test_capture_track_defaults_to_mlrepro_track(git_repo: Path) -> None:
    proc = run_cli("capture", "--json", cwd=git_repo, env=clean_env(MLREPRO_TRACK="production"))
    assert json.loads(proc.stdout)["track"] == "production"


def test_capture_output_writes_the_run_files_that_rebuild_the_code(
    git_repo: Path, tmp_path: Path
) -> None:
    (git_repo / "train.py").write_text("print('changed')\n")
    out = tmp_path / "repro"
    proc = run_cli("capture", "-o", str(out), cwd=git_repo)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"manifest.json", "requirements.txt", "code.diff"}
    assert "+print('changed')" in (out / "code.diff").read_text()
    assert "click==" in (out / "requirements.txt").read_text()
    Manifest.from_json((out / "manifest.json").read_text()).validate()

    git(git_repo, "checkout", "--", "train.py")  # clean again: a stale code.diff must go
    assert run_cli("capture", "-o", str(out), cwd=git_repo).returncode == 0
    assert not (out / "code.diff").exists()


def test_outside_git_capture_still_succeeds(tmp_path: Path) -> None:
    proc = run_cli("capture", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["code"]["commit"] is None and doc["code"]["reason"]
    assert doc["capture"]["errors"] == []


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mlrepro: error:")
    return lines[0]


def test_an_unknown_option_is_one_line_and_exit_2(git_repo: Path) -> None:
    line = _one_line_error(run_cli("capture", "--jsn", cwd=git_repo))
    assert "--jsn" in line and "mlrepro capture --help" in line


def test_a_bad_track_is_one_line_and_exit_2(git_repo: Path) -> None:
    line = _one_line_error(run_cli("capture", "--track", "staging", cwd=git_repo))
    assert "staging" in line


def test_an_unwritable_output_is_one_line_and_exit_2(git_repo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _one_line_error(run_cli("capture", "-o", str(blocker / "repro"), cwd=git_repo))
    assert "cannot write" in line


def test_help_teaches_by_example() -> None:
    proc = run_cli("capture", "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "mlrepro capture --json" in proc.stdout
    top = run_cli("--help")
    assert "mlrepro capture" in top.stdout
