"""One file name that is not UTF-8 never costs the record, and is recorded losslessly."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mlflow_repro_plugin import failures
from repro_common.text import MESSAGE_MAX_CHARS, json_safe, quote_name, unquote_name
from support.git import make_repo
from support.records import MLFLOW_TRAIN, read_run, run_mlflow_script

BAD = b"bad\xffname.txt"


def test_a_non_utf8_name_in_the_checkout_keeps_the_record_and_round_trips(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"train.py": MLFLOW_TRAIN})
    (Path(os.fsdecode(os.path.join(os.fsencode(repo), BAD)))).write_text(
        "x\n"
    )  # `touch $'bad\xffname.txt'`
    data = Path(os.fsdecode(os.fsencode(tmp_path) + b"/in\xfeputs"))
    data.mkdir()
    (data / "part-0.csv").write_text("a,b\n1,2\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    inputs = json.dumps([{"path": str(data), "name": "raw"}])
    run = read_run(uri, run_mlflow_script(repo, uri, TRACK_INPUTS=inputs))

    assert "repro/manifest.json" in run.artifacts, run.stderr[-2000:]
    manifest = json.loads(run.artifacts["repro/manifest.json"].decode("utf-8"))  # strict UTF-8
    untracked = manifest["code"]["untracked"]
    assert untracked == ['"bad\\377name.txt"']
    assert unquote_name(untracked[0]) == BAD
    (item,) = manifest["data"]
    assert unquote_name(item["source"]) == os.fsencode(data)
    assert "repro.capture.errors" not in run.tags, run.tags.get("repro.capture.errors")
    assert "mlrepro" not in run.stderr  # no warning at all, let alone a 25 KB one


@pytest.mark.parametrize(
    "name",
    [
        b"plain.txt",
        "café-ünïcode.csv".encode(),
        b"bad\xffname.txt",
        b'"quoted".txt',
        b'"starts-and-ends"',
        b"back\\slash",
        b"new\nline\ttab",
        b"\xe2\x80\xaeevil\xc3",  # bidi override, then a cut multi-byte sequence
    ],
)
def test_names_are_quoted_only_when_needed_and_always_round_trip(name: bytes) -> None:
    text = quote_name(name)
    text.encode("utf-8")  # always valid UTF-8 (JSON-safe)
    assert unquote_name(text) == name
    assert quote_name(os.fsdecode(name)) == text  # the same from surrogateescape'd text
    if name in (b"plain.txt", "café-ünïcode.csv".encode(), b"back\\slash"):
        assert text == name.decode()


def test_json_safe_quotes_only_what_utf8_cannot_carry() -> None:
    doc = {"code": {"untracked": ["ok.txt", os.fsdecode(BAD)]}, os.fsdecode(b"k\xff"): 1}
    fixed = json_safe(doc)
    assert fixed == {"code": {"untracked": ["ok.txt", '"bad\\377name.txt"']}, '"k\\377"': 1}
    clean = {"a": ["b"]}
    assert json_safe(clean) is clean  # nothing to fix: no copy


def test_warnings_stay_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    huge = "manifest {\n" + "x" * 25_000 + "\n}"
    failures._warned.clear()
    with caplog.at_level(logging.WARNING, logger="mlrepro"):
        failures.warn_once("upload", "mlrepro could not complete a run's repro/ record: %r", huge)
    failures._warned.clear()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "mlrepro"]
    assert "\n" not in message and len(message) < MESSAGE_MAX_CHARS + 100
