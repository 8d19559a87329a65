"""Real MLflow stores for the adapter's tests; every run read back through `MlflowClient`.

In-process tests share one SQLite store per module (creating and migrating a
database costs seconds) and get a fresh experiment each, a clean git project as
the "script" being run, no tracked inputs and no warnings remembered from an
earlier test. Tests where process exit matters use fresh interpreters instead.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.git import make_repo


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-store') / 'mlflow.db'}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's checkout: a committed git repo whose train.py is the running script."""
    repo = make_repo(tmp_path / "project", {"train.py": "print('train')\n", "README.md": "demo\n"})
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py")])
    return repo


@pytest.fixture
def client(module_store: str, project: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An MlflowClient on the module's store; fluent runs go to a fresh experiment there."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlflow_repro_plugin import failures, live_inputs, uploader
    from support.inputs_registry import clear_registry

    clear_registry()
    live_inputs.install()
    failures._warned.clear()
    mlflow.set_tracking_uri(module_store)
    mlflow.set_experiment(f"{request.node.name[:60]}-{uuid.uuid4().hex[:8]}")
    yield MlflowClient(module_store)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    assert uploader.flush(60), "the uploader did not drain after the test"
    clear_registry()
    failures._warned.clear()
    # set_tracking_uri/set_experiment also export MLFLOW_* variables: later subprocesses must not see them.
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(key, None)
