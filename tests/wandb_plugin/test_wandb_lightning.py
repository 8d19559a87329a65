"""Lightning Trainer on CPU with WandbLogger (offline) and our callback."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest

import wandb_repro_plugin as repro
from repro_common.manifest import Manifest
from support.procs import PYTHON, clean_env
from support.wandb_log import find_logs, read_run
from wandb_repro_plugin import core

pytestmark = pytest.mark.slow


def make_trainer(wandb_dir=None, callbacks=(), track=None, **kwargs):
    import lightning.pytorch as pl

    from wandb_repro_plugin.lightning import ReproCallback

    logger = False
    if wandb_dir is not None:
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(project="mlrepro-tests", save_dir=str(wandb_dir), offline=True)
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=logger,
        callbacks=[ReproCallback(track=track), *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kwargs,
    )


def tiny_fit(trainer):
    """Two epochs of logistic regression; the val set is not fingerprintable automatically."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

    class Generated(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((4,), float(i)), torch.tensor([float(i % 2)])

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log(
                "val_loss", torch.nn.functional.binary_cross_entropy_with_logits(self.layer(x), y)
            )

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    generator = torch.Generator().manual_seed(0)
    full = TensorDataset(
        torch.randn(40, 4, generator=generator),
        torch.randint(0, 2, (40, 1), generator=generator).float(),
    )
    train = Subset(full, range(32))
    trainer.fit(Model(), DataLoader(train, batch_size=8), DataLoader(Generated(), batch_size=4))
    return train


def test_fit_with_wandb_logger_records_data_ranks_and_artifact(wandb_dir):
    trainer = make_trainer(wandb_dir)
    repro.seed_everything(7)  # after torch is imported, so torch is seeded too
    train = tiny_fit(trainer)
    run = trainer.logger.experiment
    run.finish()

    assert trainer.state.finished
    log = read_run(Path(run.dir).parent)
    summary = log.config["repro"]
    assert summary["seed"] == 7
    assert summary["data"] == {"train": repro.fingerprint(train)}
    assert "Generated is not fingerprinted" in summary["data_skipped"]["val"]
    assert "capture_errors" not in summary
    (artifact,) = log.artifacts_of_type("repro-manifest")
    manifest = Manifest.from_json(Path(artifact["files"]["manifest.json"]).read_bytes())
    assert manifest.digest == summary["manifest_digest"]
    assert manifest.seeds["ranks"] == {"world_size": 1, "global_rank": 0, "seeds": {"0": 7}}
    assert (Path(run.dir) / "repro" / "manifest.json").read_bytes() == Path(
        artifact["files"]["manifest.json"]
    ).read_bytes()
    assert "history" in log.record_types  # WandbLogger's own metrics are there too


def test_the_callback_is_a_lightning_callback_that_survives_pickling():
    import pickle

    import lightning.pytorch as pl

    from wandb_repro_plugin.lightning import ReproCallback

    callback = pickle.loads(pickle.dumps(ReproCallback(track="production")))  # as ddp_spawn does
    assert isinstance(callback, ReproCallback) and isinstance(callback, pl.Callback)
    assert callback.track == "production"
    with pytest.raises(ValueError, match="unknown track 'prod'"):
        ReproCallback(track="prod")  # a typo fails at once, not in the middle of training


def test_without_wandb_logger_it_uses_wandb_run(new_run):
    run = new_run()
    tiny_fit(make_trainer())
    run.finish()
    assert read_run(Path(run.dir).parent).config["repro"]["manifest_digest"].startswith("blake3:")


def test_no_run_at_all_warns_once_and_training_goes_on(wandb_dir):
    trainer = make_trainer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_fit(trainer)
    assert trainer.state.finished and trainer.current_epoch == 2
    ours = [w for w in caught if issubclass(w.category, repro.ReproWarning)]
    assert len(ours) == 1 and "no active W&B run" in str(ours[0].message)


@pytest.mark.parametrize(
    ("module", "name", "collector"),
    [("core", "capture", "capture"), ("lightning", "trainer_datasets", "datasets")],
)
def test_failure_inside_the_callback_is_recorded_and_training_goes_on(
    wandb_dir, monkeypatch, module, name, collector
):
    import wandb_repro_plugin.lightning as lightning_adapter

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr({"core": core, "lightning": lightning_adapter}[module], name, boom)
    trainer = make_trainer(wandb_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_fit(trainer)
    run = trainer.logger.experiment
    run.finish()

    assert trainer.state.finished and trainer.current_epoch == 2
    assert len([w for w in caught if issubclass(w.category, repro.ReproWarning)]) == 1
    errors = read_run(Path(run.dir).parent).config["repro"]["capture_errors"]
    assert {"collector": collector, "error": "RuntimeError: injected failure"} in errors


DDP_SCRIPT = """
import os, sys
import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import DataLoader, TensorDataset

import repro_common
from wandb_repro_plugin.lightning import ReproCallback

repro_common.seed_everything(100 + int(os.environ.get("LOCAL_RANK", "0")))  # a different seed per rank


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


data = TensorDataset(torch.arange(16.0).reshape(8, 2))
logger = WandbLogger(project="mlrepro-tests", save_dir=sys.argv[1], offline=True)
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=logger,
                     callbacks=[ReproCallback()], enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False)
trainer.fit(Model(), DataLoader(data, batch_size=2))
if trainer.is_global_zero:
    logger.experiment.finish()
"""


def test_ddp_logs_once_from_rank_zero_with_every_rank_seed(wandb_dir, tmp_path):
    """Lightning relaunches the script for rank 1, so it runs as a real file in its own process."""
    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run(
        [PYTHON, str(script), str(wandb_dir)],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    (log_path,) = find_logs(wandb_dir)  # rank 1 started no run
    summary = read_run(log_path).config["repro"]
    assert summary["seed"] == 100
    assert "capture_errors" not in summary
    manifest = Manifest.from_json(
        (log_path.parent / "files" / "repro" / "manifest.json").read_bytes()
    )
    assert manifest.seeds["ranks"] == {
        "world_size": 2,
        "global_rank": 0,
        "seeds": {"0": 100, "1": 101},
    }


def test_the_production_track_stores_dockerfile_and_data_snapshot(wandb_dir, tmp_path):
    """`ReproCallback(track="production")`: a Dockerfile for the recorded environment and a
    copy of each input that has a file behind it (here the labels file the script tracked)."""
    from repro_common.spec import render_dockerfile

    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(32)))
    repro.track_data(str(labels), "labels")
    trainer = make_trainer(wandb_dir, track="production")
    tiny_fit(trainer)
    run = trainer.logger.experiment
    run.finish()

    log = read_run(Path(run.dir).parent)
    assert log.config["repro"]["track"] == "production"
    (artifact,) = log.artifacts_of_type("repro-manifest")
    files = {name: Path(staged).read_bytes() for name, staged in artifact["files"].items()}
    manifest = Manifest.from_json(files["manifest.json"])
    assert manifest.track == "production"
    assert files["Dockerfile"].decode() == render_dockerfile(manifest)
    assert b"\nFROM python:" in files["Dockerfile"]
    snapshots = {name: body for name, body in files.items() if name.startswith("data/")}
    assert snapshots == {"data/labels/labels.csv": labels.read_bytes()}, sorted(files)
