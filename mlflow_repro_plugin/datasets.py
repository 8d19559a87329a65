"""Tracked inputs in the run's **Datasets** panel: our fingerprint as digest, the path/URI as source.

Inputs tracked before the run starts are in its manifest and are logged by the
uploader; inputs tracked while a run is active are logged the same way, in the
background (`live_inputs`).
MLflow allows 36 characters of digest, so the digest is a prefix of our hex; the
full fingerprint is in the dataset profile, the `repro.data.<name>` tag and the
manifest.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlparse

from mlflow_repro_plugin.failures import retry, warn_once

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


_run_inputs: dict[str, dict[str, dict[str, Any]]] = {}
_run_inputs_lock = threading.Lock()


def run_inputs(run_id: str) -> list[dict[str, Any]]:
    """The inputs that belong to one MLflow run only (found by a callback of its training)."""
    with _run_inputs_lock:
        return [dict(item) for item in _run_inputs.get(run_id, {}).values()]


def remember_run_inputs(run_id: str, items: list[dict[str, Any]]) -> None:
    """Keep the inputs a training found for one run, for that run's refreshed record."""
    with _run_inputs_lock:
        _run_inputs.setdefault(run_id, {}).update({str(i["name"]): i for i in items})
