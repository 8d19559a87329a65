"""Runs MLflow creates for the frameworks: Lightning's MLFlowLogger, pytorch and keras autolog."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_reads import fresh_env, inputs, repro_names

from support.git import make_repo
from support.procs import run_python

pytestmark = pytest.mark.slow

LIGHTNING = """
import sys
import torch
import lightning as L
import mlflow
from lightning.pytorch.loggers import MLFlowLogger
import mlflow_repro_plugin as repro

logger_uri, autolog_uri = sys.argv[1], sys.argv[2]


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    x = torch.randn(32, 4)
    repro.track_data(x, "features")
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def trainer(logger):
    return L.Trainer(max_epochs=1, logger=logger, accelerator="cpu", enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)


repro.seed_everything(11)
# MLFlowLogger creates the run through its own client and tracking URI.
logger = MLFlowLogger(experiment_name="lightning", tracking_uri=logger_uri)
trainer(logger).fit(Tiny(), loader())
print("LOGGER_RUN", logger.run_id)

mlflow.set_tracking_uri(autolog_uri)
mlflow.pytorch.autolog(log_models=False)
trainer(False).fit(Tiny(), loader())
print("AUTOLOG_RUN", mlflow.last_active_run().info.run_id)
"""

KERAS = """
import numpy as np
import keras
import mlflow
import mlflow_repro_plugin as repro

repro.seed_everything(5)
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
repro.track_data(x, "x")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
mlflow.keras.autolog(log_models=False)
model.fit(x, y, epochs=1, batch_size=8, verbose=0)
print("KERAS_RUN", mlflow.last_active_run().info.run_id)
"""


def _value(stdout: str, key: str) -> str:
    return stdout.split(key + " ", 1)[1].split()[0]


def _assert_recorded(client: MlflowClient, run_id: str, seed: str) -> dict[str, str]:
    run = client.get_run(run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert tags.get("repro.manifest.digest", "").startswith("blake3:"), tags
    assert tags["repro.seed"] == seed
    assert tags["repro.git.dirty"] == "false"
    assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
    assert repro_names(client, run_id) == {"manifest.json"}
    return tags


def test_lightning_mlflow_logger_and_pytorch_autolog_runs_are_recorded(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "project", {"train.py": LIGHTNING})
    logger_uri = f"sqlite:///{tmp_path / 'logger.db'}"
    autolog_uri = f"sqlite:///{tmp_path / 'autolog.db'}"
    proc = run_python(
        "import runpy; runpy.run_path('train.py', run_name='__main__')",
        cwd=project,
        env=fresh_env(f"sqlite:///{tmp_path / 'unused.db'}"),
        args=[logger_uri, autolog_uri],
    )
    logger_client = MlflowClient(logger_uri)
    logger_run = _value(proc.stdout, "LOGGER_RUN")
    tags = _assert_recorded(logger_client, logger_run, "11")
    assert "loss" in logger_client.get_run(logger_run).data.metrics
    assert tags["repro.data.features"].startswith("blake3:")
    assert "features" in inputs(logger_client, logger_run)

    autolog_client = MlflowClient(autolog_uri)
    autolog_run = _value(proc.stdout, "AUTOLOG_RUN")
    _assert_recorded(autolog_client, autolog_run, "11")
    assert autolog_client.get_run(autolog_run).data.tags.get("mlflow.autologging") == "pytorch"


def test_keras_autolog_runs_are_recorded(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "project", {"train.py": KERAS})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python(
        "import runpy; runpy.run_path('train.py', run_name='__main__')",
        cwd=project,
        env=fresh_env(uri, KERAS_BACKEND="torch"),
    )
    client = MlflowClient(uri)
    run_id = _value(proc.stdout, "KERAS_RUN")
    tags = _assert_recorded(client, run_id, "5")
    assert tags["repro.data.x"].startswith("blake3:")
    assert "x" in inputs(client, run_id)
    assert client.get_run(run_id).data.metrics, "keras autolog logged its metrics"
