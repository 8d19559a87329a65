"""Delta and Iceberg inputs on a real MLflow SQLite store, read back with MlflowClient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow_reads import artifact, inputs, profile

import mlflow_repro_plugin as repro
from repro_common.manifest import Manifest

pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")


def _delta(path: Path) -> str:
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(str(path), pa.table({"a": [1, 2, 3]}))
    write_deltalake(str(path), pa.table({"a": [4]}), mode="append")
    return str(path)


def test_a_delta_version_0_is_in_datasets_tags_and_manifest(client: Any, tmp_path: Path) -> None:
    table = _delta(tmp_path / "events")
    item = repro.track_data(f"{table}@v0", "events")
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)

    run_id = run.info.run_id
    dataset = inputs(client, run_id)["events"]
    assert dataset.source_type == "delta_table"
    source = json.loads(dataset.source)
    # MLflow's DeltaDatasetSource fields, with version 0 kept (MLflow's own to_dict drops it).
    assert source == {"path": table, "delta_table_version": 0, "delta_table_id": item["table_id"]}
    assert profile(dataset)["version"] == 0 and profile(dataset)["basis"] == "delta-files/1"
    assert client.get_run(run_id).data.tags["repro.data.events"] == item["fingerprint"]
    manifest = Manifest.from_json(artifact(client, run_id, "repro/manifest.json", tmp_path) or b"")
    (recorded,) = manifest.data
    assert recorded["version"] == 0 and recorded["table_id"] == item["table_id"]


def test_an_iceberg_snapshot_is_in_datasets_as_a_string(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    (tmp_path / "wh").mkdir()
    lake = SqlCatalog("lake", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    lake.create_namespace("db")
    table = lake.create_table("db.events", schema=pa.schema([("a", pa.int64())]))
    table.append(pa.table({"a": pa.array([1, 2], pa.int64())}))
    with mlflow.start_run() as run:
        item = repro.track_data(table, "events")
    assert repro.flush(60)

    dataset = inputs(client, run.info.run_id)["events"]
    assert dataset.source_type == "iceberg"
    source = json.loads(dataset.source)
    assert source["snapshot_id"] == str(table.current_snapshot().snapshot_id)
    assert source["table"] == "db.events" and source["uuid"] == item["uuid"]
    assert client.get_run(run.info.run_id).data.tags["repro.data.events"] == item["fingerprint"]


def test_a_missing_version_is_a_capture_error_and_the_run_goes_on(
    client: Any, tmp_path: Path
) -> None:
    table = _delta(tmp_path / "events")
    with pytest.warns(RuntimeWarning, match="version 5 of Delta table"):
        repro.track_data(f"{table}@v5", "events")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    assert repro.flush(60)

    data = client.get_run(run.info.run_id).data
    assert data.metrics["loss"] == 0.5
    errors = data.tags.get("repro.capture.errors", "")
    assert "data.events" in errors and "does not exist (newest is v1)" in errors


def test_on_the_production_track_a_table_version_is_not_copied_and_passes_the_data_rule(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro_common.gate import check_run
    from repro_common.runs import load_run

    monkeypatch.setenv("MLREPRO_TRACK", "production")
    table = _delta(tmp_path / "events")
    repro.track_data(f"{table}@v0", "events")
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)

    run_id = run.info.run_id
    stored = [a.path for a in client.list_artifacts(run_id, "repro")]
    assert "repro/data" not in stored  # the table keeps the version; nothing is copied
    rule = check_run(load_run(run_id, mlflow.get_tracking_uri()), "production").rule("data")
    assert rule.passed and "1 by table version" in rule.reason, rule.reason
