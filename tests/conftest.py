"""Shared fixtures: temp git repos, SQLite stores, a started `mlflow server`, offline W&B dirs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.git import make_repo
from support.inputs_registry import clear_registry
from support.mlflow_server import mlflow_server

# Set by seed_everything() for child processes; one test's seeding must not leak into the next.
SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")


@pytest.fixture(autouse=True)
def _isolated_mlrepro(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Each test starts with no cached capture, no registered data and its own cache dir."""
    for key in list(os.environ):
        if key.startswith("MLREPRO_") or key in SEED_VARIABLES:
            monkeypatch.delenv(key)
    monkeypatch.setenv("MLREPRO_CACHE_DIR", str(tmp_path_factory.mktemp("mlrepro-cache")))
    import repro_common
    from repro_common import seeds

    repro_common.reset_cache()
    seeds._forget()
    clear_registry()
    yield
    repro_common.reset_cache()
    seeds._forget()
    clear_registry()
    if "torch" in sys.modules:  # a test's torch.manual_seed must not make the next run look seeded
        sys.modules["torch"].seed()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A committed repository with a train.py, clean."""
    return make_repo(tmp_path / "project", {"train.py": "print('hello')\n", "README.md": "demo\n"})


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real tracking server for the session (SQLite backend, local artifacts)."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline W&B with every directory it writes inside the test's tmp dir."""
    root = tmp_path / "wandb-root"
    root.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(root / "config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("WANDB_ARTIFACT_DIR", str(root / "artifacts"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    return root
