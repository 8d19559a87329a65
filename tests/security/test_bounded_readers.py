"""Huge or skeletal records: readers cap what they read and print, and name a mistyped field."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from repro_common.manifest import Manifest
from support.git import make_repo
from support.procs import clean_env, run_cli
from support.records import MLFLOW_TRAIN, StoredRun, read_run, run_mlflow_script


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, StoredRun]:
    base = tmp_path_factory.mktemp("bounded")
    repo = make_repo(base / "project", {"train.py": MLFLOW_TRAIN})
    uri = f"sqlite:///{base / 'mlflow.db'}"
    return uri, read_run(uri, run_mlflow_script(repo, uri, ["--epochs", "2"]))


def _edited(run: StoredRun, folder: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The run's manifest with `edit` applied and its digest recomputed, as a manifest.json file."""
    doc = json.loads(run.artifacts["repro/manifest.json"])
    edit(doc)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in run.artifacts.items():  # the files the manifest lists, next to it
        if name.startswith("repro/") and name != "repro/manifest.json":
            (folder / name[len("repro/") :]).parent.mkdir(parents=True, exist_ok=True)
            (folder / name[len("repro/") :]).write_bytes(content)
    path = folder / "manifest.json"
    try:
        manifest = Manifest.from_dict(doc)
        manifest.refresh_digest()
        path.write_text(manifest.to_json())
    except ValueError:  # a mistyped record is written as the attacker left it
        path.write_text(json.dumps(doc))
    return path


def _unwrapped(table: str) -> str:
    """A rich table's text with borders and line folds taken out."""
    return re.sub(r"[\s│┃|]+", "", table)


def _cli(*args: str, **env: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = run_cli(*args, env=clean_env(COLUMNS="200", **env), timeout=240)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def test_show_on_a_50_mb_argv_answers_with_the_field_cut_and_a_note(
    real_run: tuple[str, StoredRun], tmp_path: Path
) -> None:
    def huge_argv(doc: dict[str, Any]) -> None:
        doc["code"]["argv"] = ["--blob", "A" * 50_000_000]

    path = _edited(real_run[1], tmp_path, huge_argv)
    code, out, err, took = _cli("show", str(path))
    assert code == 0, err
    assert "morecharactersnotshown]" in _unwrapped(out)
    assert len(out) < 100_000  # not 50 MB on the terminal
    assert took < 120  # did not finish in 300 s before


def test_show_and_check_on_200000_inputs_print_a_bounded_card(
    real_run: tuple[str, StoredRun], tmp_path: Path
) -> None:
    def many_inputs(doc: dict[str, Any]) -> None:
        doc["data"] = [
            {"name": f"shard-{i}", "kind": "file", "fingerprint": f"blake3:{i:064x}",
             "size_bytes": i, "dvc": {"md5": f"{i:032x}"}}
            for i in range(200_000)
        ]  # fmt: skip

    path = _edited(real_run[1], tmp_path, many_inputs)
    code, out, err, took = _cli("show", str(path))
    assert code == 0, err
    assert "199,950 more inputs not shown" in out
    assert out.count("shard-") == 50
    assert took < 120  # 138 s before
    code, out, err, took = _cli("check", str(path))
    assert code == 0, out + err
    assert took < 120


def test_a_record_over_the_size_limit_is_refused_in_one_line_exit_2(
    real_run: tuple[str, StoredRun], tmp_path: Path
) -> None:
    uri, run = real_run
    path = _edited(run, tmp_path, lambda doc: doc["code"].update(argv=["x" * 2_000_000]))
    for args in (["show", str(path)], ["check", str(path)], ["diff", str(path), str(path)]):
        code, out, err, _ = _cli(*args, MLREPRO_MAX_RECORD_MB="1")
        assert code == 2, (args, out, err)
        assert err.count("\n") == 1 and "over the 1 MB limit" in err, err
    # The same limit holds for a run read from the tracking store.
    code, out, err, _ = _cli(
        "show", run.run_id, "--tracking-uri", uri, MLREPRO_MAX_RECORD_MB="0.001"
    )
    assert code == 2 and "over the" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda doc: doc.update(data={"train": "blake3:0"}), "data: expected a list, got object"),
        (
            lambda doc: doc["environment"].update(packages=["numpy"]),
            "environment.packages[0]: expected an object, got string",
        ),
        (lambda doc: doc["code"].update(argv="--lr 0.1"), "code.argv: expected a list, got string"),
        (lambda doc: doc.update(seeds=[7]), "seeds: expected an object, got array"),
        (
            lambda doc: doc["code"].update(unversioned_sources=["utils.py"]),
            "code.unversioned_sources[0]: expected an object, got string",
        ),
    ],
)
def test_a_mistyped_field_is_named_instead_of_a_python_error(
    real_run: tuple[str, StoredRun], tmp_path: Path, edit: Any, named: str
) -> None:
    path = _edited(real_run[1], tmp_path, edit)
    code, out, err, _ = _cli("show", str(path))
    assert code == 2 and f"manifest field {named}" in err, err
    assert "object has no attribute" not in err
    code, out, err, _ = _cli("check", str(path))
    assert code == 1 and f"manifest field {named}" in out, out + err
    code, out, err, _ = _cli("diff", str(path), str(path))
    assert code == 2 and f"manifest field {named}" in err, err


def test_the_fast_schema_check_agrees_with_jsonschema(real_run: tuple[str, StoredRun]) -> None:
    """Readers validate with fastjsonschema (jsonschema took ~20 s for 200,000 inputs): same verdicts."""
    import jsonschema

    from repro_common.manifest import schema
    from repro_common.schema_check import first_problem

    good = json.loads(real_run[1].artifacts["repro/manifest.json"])
    edits: list[Callable[[dict[str, Any]], None]] = [
        lambda doc: None,
        lambda doc: doc.update(track="staging"),
        lambda doc: doc.update(digest="md5:0"),
        lambda doc: doc.pop("seeds"),
        lambda doc: doc["seeds"].update({"global": -1}),
        lambda doc: doc["seeds"].update({"global": True}),
        lambda doc: doc["seeds"].update(derived={"init": 1.5}),
        lambda doc: doc.update(data=[{"name": "x", "kind": "file", "fingerprint": "blake3:00"}]),
        lambda doc: doc.update(data=[{"name": "x", "kind": "augmented", "fingerprint": None}]),
        lambda doc: doc.update(
            data=[{"name": "x", "kind": "augmented", "fingerprint": None, "reason": "random crops"}]
        ),
        lambda doc: doc["environment"]["packages"].append({"name": "x", "version": "1"}),
        lambda doc: doc["capture"].update(errors=[{"collector": "code"}]),
    ]
    for edit in edits:
        doc = json.loads(json.dumps(good))
        edit(doc)
        ours = first_problem(doc, schema())
        theirs = next(iter(jsonschema.Draft202012Validator(schema()).iter_errors(doc)), None)
        assert (ours is None) == (theirs is None), (ours, theirs)
