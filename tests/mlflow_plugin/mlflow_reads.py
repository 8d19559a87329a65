"""Reading runs back the way a user would: MlflowClient, artifacts, inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def fresh_env(tracking_uri: str, **extra: str) -> dict[str, str]:
    """A clean environment for a fresh interpreter that tracks to `tracking_uri`."""
    from support.procs import clean_env

    env = clean_env(MLFLOW_TRACKING_URI=tracking_uri, **extra)
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    return env


def artifact(client: Any, run_id: str, path: str, tmp: Path) -> bytes | None:
    """The bytes of one artifact of the run, or None when it is not there."""
    folder, _, name = path.rpartition("/")
    listed = {a.path for a in client.list_artifacts(run_id, folder or None)}
    if path not in listed:
        return None
    local = client.download_artifacts(run_id, path, str(tmp))
    return Path(local).read_bytes()


def repro_names(client: Any, run_id: str) -> set[str]:
    return {a.path.split("/", 1)[1] for a in client.list_artifacts(run_id, "repro")}


def inputs(client: Any, run_id: str) -> dict[str, Any]:
    """name -> mlflow.entities.Dataset of the run's logged inputs."""
    run = client.get_run(run_id)
    return {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}


def profile(dataset: Any) -> dict[str, Any]:
    return json.loads(dataset.profile or "{}")
