"""Tracked inputs in the run's **Datasets** panel: our fingerprint as digest, the path/URI as source.

Inputs tracked before the run starts are in its manifest and are logged by the
uploader; inputs tracked while a fluent run is active reach us through the core's
data listener, and are logged (and added to the run's record) in the background.
MLflow allows 36 characters of digest, so the digest is a prefix of our hex; the
full fingerprint is in the dataset profile, the `repro.data.<name>` tag and the
manifest.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

MAX_DIGEST = 36  # mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE
MAX_NAME = 500  # mlflow.utils.validation.MAX_DATASET_NAME_SIZE


def digest_of(fingerprint: str) -> str:
    """`blake3:<hex>` -> the first 36 hex characters."""
    return fingerprint.split(":", 1)[-1][:MAX_DIGEST]


def source_of(item: dict[str, Any]) -> tuple[str, str]:
    """(source_type, source JSON) in the shapes MLflow's own dataset sources use."""
    if item.get("kind") in ("delta", "iceberg"):
        return table_source(item)
    source = item.get("source")
    if isinstance(source, str) and source:
        scheme = urlparse(source).scheme.lower()
        if scheme in ("http", "https"):
            return "http", json.dumps({"url": source})
        if scheme in ("", "file") or len(scheme) == 1:  # a Windows drive letter is a path
            return "local", json.dumps({"uri": source})
        return scheme, json.dumps({"uri": source})
    return "code", json.dumps({"tags": {"repro.kind": str(item.get("kind") or "object")}})


def table_source(item: dict[str, Any]) -> tuple[str, str]:
    """Delta: the fields of MLflow's `DeltaDatasetSource` (written here, so version 0 stays:
    MLflow's own `to_dict` drops a falsy version, and building one needs Spark). Iceberg: a
    source of the same shape under type `iceberg`."""
    if item.get("kind") == "delta":
        fields = {
            "path": item.get("uri"),
            "delta_table_version": item.get("version"),
            "delta_table_id": item.get("table_id"),
        }
        return "delta_table", json.dumps(fields)
    fields = {
        "catalog": item.get("catalog"),
        "table": item.get("table"),
        "snapshot_id": item.get("snapshot_id"),
        "uuid": item.get("uuid"),
    }
    return "iceberg", json.dumps(fields)


def dataset_input(item: dict[str, Any]) -> Any:
    """The MLflow entity for one tracked input (its profile holds the full fingerprint)."""
    from mlflow.entities import Dataset, DatasetInput

    source_type, source = source_of(item)
    profile = {
        k: item[k]
        for k in (
            "fingerprint",
            "kind",
            "size_bytes",
            "files",
            "partial",
            *("version", "table_id", "snapshot_id", "uuid", "basis", "version_id", "commit"),
        )
        if k in item
    }
    dataset = Dataset(
        name=str(item.get("name"))[:MAX_NAME],
        digest=digest_of(str(item.get("fingerprint") or "")),
        source_type=source_type,
        source=source,
        profile=json.dumps(profile, sort_keys=True, default=str),
    )
    return DatasetInput(dataset=dataset, tags=[])


def log_items(client: Any, run_id: str, items: list[dict[str, Any]], deadline: float) -> None:
    """Log `items` as the run's inputs; a failure is one warning, never an exception."""
    from mlflow_repro_plugin.uploader import retry, warn_once

    try:
        inputs = [
            dataset_input(item) for item in items if item.get("name") and item.get("fingerprint")
        ]
        if inputs:
            retry(lambda: client.log_inputs(run_id, datasets=inputs), deadline)
    except Exception as exc:
        warn_once(
            "datasets", "mlrepro could not log tracked inputs to MLflow run %s: %r", run_id, exc
        )


def on_track(item: dict[str, Any]) -> None:
    """Core data listener: an input tracked while a fluent run is active joins that run."""
    from mlflow_repro_plugin.provider import CAPTURE_ID_TAG, disabled
    from mlflow_repro_plugin.uploader import UploadJob, schedule, warn_once

    mlflow = sys.modules.get("mlflow")
    if disabled() or mlflow is None:
        return
    try:
        run = mlflow.active_run()
        if run is None:
            return
        from mlflow.tracking import MlflowClient

        tags = run.data.tags
        schedule(
            UploadJob(
                capture_id=tags.get(CAPTURE_ID_TAG, ""),
                manifest=None,
                client=MlflowClient(),
                run_id=run.info.run_id,
                refresh_items=[dict(item)],
                track=tags.get("repro.track"),
            )
        )
    except Exception as exc:  # tracking data must never fail because of MLflow
        warn_once(
            "datasets",
            "mlrepro could not add input %r to the active MLflow run: %r",
            item.get("name"),
            exc,
        )


_run_inputs: dict[str, dict[str, dict[str, Any]]] = {}
_run_inputs_lock = threading.Lock()


def run_inputs(run_id: str) -> list[dict[str, Any]]:
    """The inputs that belong to one MLflow run only (found by a callback of its training)."""
    with _run_inputs_lock:
        return [dict(item) for item in _run_inputs.get(run_id, {}).values()]


def training_runs(hosts: Sequence[Any]) -> list[tuple[Any, str]]:
    """(client, run id) of the MLflow runs a training logs to: its MLFlowLoggers, else the
    active fluent run (autolog). Only runs that exist already: nothing is created here."""
    targets = [
        (host.experiment, str(host.run_id))
        for host in hosts
        if type(host).__name__ == "MLFlowLogger" and getattr(host, "_run_id", None)
    ]
    if targets:
        return targets
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None else None
    if run is None:
        return []
    from mlflow.tracking import MlflowClient

    return [(MlflowClient(), run.info.run_id)]


def on_run_inputs(items: list[dict[str, Any]], hosts: Sequence[Any]) -> None:
    """Core run-inputs listener: the inputs another tracker's callback found for a training
    join the MLflow runs of the same training (tags, Datasets panel, refreshed manifest)."""
    from mlflow_repro_plugin.provider import CAPTURE_ID_TAG, disabled
    from mlflow_repro_plugin.uploader import UploadJob, schedule, warn_once

    if disabled() or "mlflow" not in sys.modules:
        return
    try:
        for client, run_id in training_runs(hosts):
            with _run_inputs_lock:
                _run_inputs.setdefault(run_id, {}).update({str(i["name"]): i for i in items})
            capture_id, track = "", None
            mlflow = sys.modules["mlflow"]
            active = mlflow.active_run()
            if active is not None and active.info.run_id == run_id:
                capture_id = active.data.tags.get(CAPTURE_ID_TAG, "")
                track = active.data.tags.get("repro.track")
            schedule(
                UploadJob(
                    capture_id=capture_id,  # empty: the uploader knows the runs it recorded
                    manifest=None,
                    client=client,
                    run_id=run_id,
                    refresh_items=[dict(item) for item in items],
                    track=track,
                )
            )
    except Exception as exc:  # recording inputs must never fail the training
        warn_once("run-inputs", "mlrepro could not add a training's inputs to MLflow: %r", exc)


def install() -> None:
    """Register `on_track` and `on_run_inputs` with the core (idempotent: it keeps one copy)."""
    from repro_common import inputs

    inputs.add_listener(on_track)
    inputs.add_run_listener(on_run_inputs)
