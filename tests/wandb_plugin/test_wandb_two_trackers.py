"""One Lightning training logged to W&B and MLflow at once: one record, the same in both.

The W&B ReproCallback finds the training set in the trainer's loaders. That input
belongs to this training, so it must reach the MLflow run of the MLFlowLogger too
(its `repro.data.train` tag, its Datasets panel and a refreshed manifest): the two
trackers then hold the same manifest digest and `mlrepro diff` finds no data change.
The adapters never import each other; the input travels through the core's
run-inputs event.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro_common.cli import main
from repro_common.manifest import Manifest
from support.git import make_repo
from support.training_runs import train
from support.wandb_log import read_run

pytestmark = pytest.mark.slow

SCRIPT = """\
import json, os
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger
from torch.utils.data import DataLoader, TensorDataset

import mlflow_repro_plugin as repro
from wandb_repro_plugin.lightning import ReproCallback


class Model(pl.LightningModule):
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


repro.seed_everything(4)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
wandb_logger = WandbLogger(project="demo", save_dir=os.environ["WANDB_DIR"], offline=True)
mlflow_logger = MLFlowLogger(
    experiment_name="demo",
    tracking_uri=os.environ["TRACKING"],
    artifact_location=os.environ["ARTIFACTS"],
)
trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=[wandb_logger, mlflow_logger],
                     callbacks=[ReproCallback()], enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
trainer.fit(Model(), DataLoader(data, batch_size=16))
run = wandb_logger.experiment
run.finish()
assert repro.flush(60), "the MLflow record was not complete in time"
print("FINGERPRINT", repro.fingerprint(data))
print("RUNS=" + json.dumps([{"mlflow": mlflow_logger.run_id, "wandb": str(Path(run.dir).parent)}]))
"""


def test_an_input_found_by_the_wandb_callback_reaches_the_mlflow_logger_run(
    tmp_path: Path, wandb_offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    repo = make_repo(
        tmp_path / "project", {"train.py": SCRIPT, ".gitignore": "__pycache__/\nlightning_logs/\n"}
    )
    [made] = train(repo, [], tracking_uri=uri, trackers="mlflow,wandb")
    run_id, run_dir = made["mlflow"], made["wandb"]

    summary = read_run(run_dir).config["repro"]
    wandb_manifest = Manifest.from_json(
        (Path(run_dir) / "files" / "repro" / "manifest.json").read_bytes()
    )
    fingerprint = summary["data"]["train"]
    assert fingerprint.startswith("blake3:")
    assert [item["name"] for item in wandb_manifest.data] == ["train"]

    mlflow_run = MlflowClient(uri).get_run(run_id)
    tags = mlflow_run.data.tags
    assert tags["repro.data.train"] == fingerprint
    assert tags["repro.manifest.digest"] == summary["manifest_digest"] == wandb_manifest.digest
    datasets = {d.dataset.name: d.dataset for d in mlflow_run.inputs.dataset_inputs}
    assert datasets["train"].digest == fingerprint.split(":", 1)[1][:36]

    assert main(["diff", run_dir, run_id, "--tracking-uri", uri, "--json"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
    assert "data" not in result["differing"] and result["groups"]["data"] == []
    assert result["a"]["digest"] == result["b"]["digest"] == wandb_manifest.digest
