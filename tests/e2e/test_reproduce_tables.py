"""`mlrepro reproduce` with a Delta table input: the rerun reads the recorded version, and a
version that was vacuumed stops the reproduction before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.git import make_repo
from support.procs import clean_env, run_cli, train

pytest.importorskip("deltalake")

TRAIN = """\
import sys

import mlflow
from deltalake import DeltaTable

import repro_common as repro

pinned = repro.data_version("events")  # set by `mlrepro reproduce`
table = DeltaTable(sys.argv[1], version=int(pinned)) if pinned else DeltaTable(sys.argv[1])
repro.track_data(table, "events")
rows = table.to_pyarrow_table().num_rows
with mlflow.start_run() as run:
    mlflow.log_metric("rows", rows)
print("RUN_ID=" + run.info.run_id)
"""


@pytest.mark.slow
def test_the_rerun_reads_the_recorded_version_and_a_vacuumed_one_stops_it(tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    table = str(tmp_path / "events")
    write_deltalake(table, pa.table({"a": [1, 2]}))
    write_deltalake(table, pa.table({"a": [3]}), mode="append")  # v1: 3 rows
    repo = make_repo(tmp_path / "project", {"train.py": TRAIN, "README.md": "demo\n"})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=uri)
    run_id = train(repo, env, table)

    # The table moves on; the reproduction must still train on v1.
    write_deltalake(table, pa.table({"a": [4, 5]}), mode="append")
    again = run_cli(
        "reproduce", run_id, "--run", "--dir", str(tmp_path / "r1"), env=env, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    script = (tmp_path / "r1" / "reproduce.sh").read_text()
    assert "export MLREPRO_DATA_EVENTS_VERSION=1\n" in script

    # v1's files vacuumed away: exit 1, nothing run.
    write_deltalake(table, pa.table({"a": [9]}), mode="overwrite")
    DeltaTable(table).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    gone = run_cli(
        "reproduce", run_id, "--run", "--dir", str(tmp_path / "r2"), env=env, timeout=600
    )
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert "version 1 of Delta table" in gone.stdout and "vacuumed" in gone.stdout
    assert not (tmp_path / "r2" / "reproduce.log").exists()
