"""Tracked inputs show up in the run's Datasets panel, digest and source included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow_reads import artifact, inputs, profile

import mlflow_repro_plugin as repro
from mlflow_repro_plugin.datasets import digest_of, source_of
from repro_common.manifest import Manifest


def test_inputs_tracked_before_start_run_are_the_runs_datasets(client: Any, tmp_path: Path) -> None:
    table = tmp_path / "train.csv"
    table.write_text("x,y\n1,2\n3,4\n")
    item = repro.track_data(str(table), "train")
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)

    dataset = inputs(client, run.info.run_id)["train"]
    fingerprint = item["fingerprint"]
    assert fingerprint.startswith("blake3:") and len(dataset.digest) == 36
    assert dataset.digest == fingerprint.split(":", 1)[1][:36]
    assert dataset.source_type == "local"
    assert json.loads(dataset.source) == {"uri": str(table.resolve())}
    assert profile(dataset)["fingerprint"] == fingerprint
    assert client.get_run(run.info.run_id).data.tags["repro.data.train"] == fingerprint


def test_inputs_tracked_while_the_run_is_active_join_its_datasets_and_record(
    client: Any, tmp_path: Path
) -> None:
    features = np.arange(24, dtype=np.float32).reshape(6, 4)
    with mlflow.start_run() as run:
        item = repro.track_data(features, "features")
        mlflow.log_metric("loss", 0.1)
    assert repro.flush(60)

    dataset = inputs(client, run.info.run_id)["features"]
    assert dataset.digest == digest_of(item["fingerprint"])
    assert dataset.source_type == "code"
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["repro.data.features"] == item["fingerprint"]
    raw = artifact(client, run.info.run_id, "repro/manifest.json", tmp_path)
    manifest = Manifest.from_json(raw or b"")
    assert [d["name"] for d in manifest.data] == ["features"]
    assert manifest.digest == tags["repro.manifest.digest"] and manifest.digest_matches()


def test_on_the_production_track_inputs_tracked_during_the_run_get_their_snapshot(
    client: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MLREPRO_TRACK", "production")
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    early.write_text("a,b\n1,2\n")
    late.write_text("c,d\n3,4\n")
    repro.track_data(str(early), "early")
    with mlflow.start_run() as run:
        repro.track_data(str(late), "late")
    assert repro.flush(60)

    run_id = run.info.run_id
    assert (
        artifact(client, run_id, "repro/data/late/late.csv", tmp_path / "got") == late.read_bytes()
    )
    assert artifact(client, run_id, "repro/data/early/early.csv", tmp_path / "got") == (
        early.read_bytes()
    )
    manifest = Manifest.from_json(artifact(client, run_id, "repro/manifest.json", tmp_path) or b"")
    snapshots = {d["name"]: d.get("snapshot") for d in manifest.data}
    assert snapshots["late"] and snapshots["early"], snapshots


def test_inputs_tracked_with_no_active_run_schedule_nothing(client: Any, monkeypatch: Any) -> None:
    from mlflow_repro_plugin import uploader

    jobs: list[Any] = []
    monkeypatch.setattr(uploader, "schedule", jobs.append)
    repro.track_data(b"some bytes", "loose")
    assert jobs == []
    with mlflow.start_run():
        repro.track_data(b"more bytes", "during")
    assert [job.refresh_items[0]["name"] for job in jobs if job.refresh_items] == ["during"]


def test_sources_use_mlflow_shapes() -> None:
    assert source_of({"source": "s3://bucket/train.parquet"}) == (
        "s3",
        '{"uri": "s3://bucket/train.parquet"}',
    )
    assert source_of({"source": "https://example.com/d.csv"}) == (
        "http",
        '{"url": "https://example.com/d.csv"}',
    )
    assert source_of({"source": "/data/train.csv"}) == ("local", '{"uri": "/data/train.csv"}')
    assert source_of({"source": None, "kind": "ndarray"}) == (
        "code",
        '{"tags": {"repro.kind": "ndarray"}}',
    )
