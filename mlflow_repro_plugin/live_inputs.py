"""Inputs tracked while an MLflow run is active join that run: its Datasets panel and record.

The core tells its listeners about every input tracked (`track_data`) and about the
inputs a training's callback found (the run-inputs event); each becomes a refresh
job for the upload worker, so the user's thread makes no request.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from mlflow_repro_plugin import datasets, uploader
from mlflow_repro_plugin.failures import warn_once
from mlflow_repro_plugin.tags import CAPTURE_ID_TAG, TRACK_TAG, disabled


def on_track(item: dict[str, Any]) -> None:
    """Core data listener: an input tracked while a fluent run is active joins that run."""
    mlflow = sys.modules.get("mlflow")
    if disabled() or mlflow is None:
        return
    try:
        run = mlflow.active_run()
        if run is None:
            return
        from mlflow.tracking import MlflowClient

        tags = run.data.tags
        uploader.schedule(
            uploader.UploadJob(
                capture_id=tags.get(CAPTURE_ID_TAG, ""),
                manifest=None,
                client=MlflowClient(),
                run_id=run.info.run_id,
                refresh_items=[dict(item)],
                track=tags.get(TRACK_TAG),
            )
        )
    except Exception as exc:  # tracking data must never fail because of MLflow
        warn_once(
            "datasets",
            "mlrepro could not add input %r to the active MLflow run: %r",
            item.get("name"),
            exc,
        )


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
    if disabled() or "mlflow" not in sys.modules:
        return
    try:
        for client, run_id in training_runs(hosts):
            datasets.remember_run_inputs(run_id, items)
            capture_id, track = "", None
            mlflow = sys.modules["mlflow"]
            active = mlflow.active_run()
            if active is not None and active.info.run_id == run_id:
                capture_id = active.data.tags.get(CAPTURE_ID_TAG, "")
                track = active.data.tags.get(TRACK_TAG)
            uploader.schedule(
                uploader.UploadJob(
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
