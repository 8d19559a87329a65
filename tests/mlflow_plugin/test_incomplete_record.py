"""A record whose manifest arrived but whose announced `repro/code.diff` did not: every reader
names the missing file instead of judging the run on half a record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow_reads import repro_names

import mlflow_repro_plugin as repro
from repro_common.cli import main

MISSING = "record incomplete: repro/code.diff never arrived"


def test_a_diff_that_never_arrived_fails_the_gate_and_stops_reproduce(
    client: Any,
    project: Path,
    module_store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "train.py").write_text("print('train, edited')\n")
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)
    run_id = run.info.run_id
    assert client.get_run(run_id).data.tags["repro.artifacts"] == "manifest.json,code.diff"
    # The second file of the upload never landed (what a store that died half-way leaves).
    local = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (local / "repro" / "code.diff").unlink()
    assert repro_names(client, run_id) == {"manifest.json"}

    assert main(["check", run_id, "--tracking-uri", module_store, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == ["manifest"] and report["rules"][0]["reason"] == MISSING, report

    assert main(["show", run_id, "--tracking-uri", module_store]) == 0
    assert MISSING in capsys.readouterr().out

    target = tmp_path / "rebuilt"
    assert main(["reproduce", run_id, "--tracking-uri", module_store, "--dir", str(target)]) == 2
    out, err = capsys.readouterr()
    assert MISSING in err and "Traceback" not in out + err, out + err
    shutil.rmtree(target, ignore_errors=True)
