"""An input the callback cannot fingerprint is still part of the run's record, and the gate says so.

A generator handed to Keras and a custom Lightning Dataset have no content we can
hash at train start. The run read them all the same: the record lists them with
no fingerprint and the reason, `mlrepro show` prints them, and the production
data rule fails them, naming the input and the remedy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro_common.cli import main
from repro_common.manifest import Manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede the first keras import
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


def assert_skipped_input_is_recorded(run_dir: Path, name: str, because: str, capsys) -> None:
    manifest = Manifest.from_json((run_dir / "files" / "repro" / "manifest.json").read_bytes())
    manifest.validate()
    (item,) = [i for i in manifest.data if i["name"] == name]
    assert item["kind"] == "skipped" and item["fingerprint"] is None
    assert because in item["reason"]
    assert manifest.digest_matches()

    assert main(["show", str(run_dir)]) == 0
    card = capsys.readouterr().out.replace("\n", " ")
    assert name in card and "not fingerprinted" in card

    assert main(["check", str(run_dir), "--track", "production", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    data_rule = next(rule for rule in report["rules"] if rule["name"] == "data")
    assert not data_rule["passed"] and "data" in report["failed"]
    (detail,) = [d for d in data_rule["details"] if repr(name) in d]
    assert "not fingerprinted" in detail and "track the file it comes from" in detail


def fit_with_callback(train_loader, val_loader=None) -> None:
    """One CPU epoch of a tiny Lightning model with the W&B ReproCallback."""
    import lightning.pytorch as pl
    import torch

    from wandb_repro_plugin.lightning import ReproCallback

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        callbacks=[ReproCallback()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Model(), train_loader, val_loader)


def test_a_generator_given_to_keras_is_in_the_record_and_fails_the_data_rule(
    keras, new_run, capsys
):
    import numpy as np

    from wandb_repro_plugin.keras import ReproCallback

    def batches():
        rng = np.random.default_rng(0)
        while True:
            x = rng.normal(size=(8, 4)).astype("float32")
            yield x, (x.sum(axis=1, keepdims=True) > 0).astype("float32")

    run = new_run()
    stream = batches()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    model.fit(
        stream,
        steps_per_epoch=4,
        epochs=1,
        verbose=0,
        callbacks=[ReproCallback(data={"train": stream})],
    )
    run.finish()
    assert_skipped_input_is_recorded(
        Path(run.dir).parent, "train", "cannot fingerprint builtins.generator", capsys
    )


def test_a_custom_lightning_dataset_is_in_the_record_and_fails_the_data_rule(new_run, capsys):
    import torch
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    class Generated(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((4,), float(i)), torch.tensor([float(i % 2)])

    run = new_run()
    train = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    fit_with_callback(DataLoader(train, batch_size=8), DataLoader(Generated(), batch_size=4))
    run.finish()
    assert_skipped_input_is_recorded(
        Path(run.dir).parent, "val", "Generated is not fingerprinted automatically", capsys
    )


def test_a_dataset_with_its_own_fingerprint_method_is_recorded_in_full(new_run):
    """A Dataset that says how to hash itself (`__fingerprint__`) is not skipped."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    import repro_common

    class Rows(Dataset):
        def __init__(self):
            self.x = torch.arange(32, dtype=torch.float32).reshape(8, 4)

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return self.x[i], self.x[i, :1]

        def __fingerprint__(self):
            return repro_common.fingerprint(self.x)

    run = new_run()
    rows = Rows()
    fit_with_callback(DataLoader(rows, batch_size=4))
    run.finish()
    manifest_file = Path(run.dir).parent / "files" / "repro" / "manifest.json"
    manifest = Manifest.from_json(manifest_file.read_bytes())
    (item,) = [i for i in manifest.data if i["name"] == "train"]
    assert item["kind"] == "custom" and item["fingerprint"] == repro_common.fingerprint(rows), item
