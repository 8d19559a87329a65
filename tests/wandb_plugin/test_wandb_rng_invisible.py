"""Fingerprinting an augmenting dataset never changes the training, and is not taken for content.

An ordinary augmentation draws noise in `__getitem__` from the global RNGs. The
callback reads the dataset at train start to fingerprint it: those reads must
leave every stream exactly where it was, so the weights are bitwise those of the
same training without the callback, and the record says the items are random
(kind `augmented`, with the reason) instead of fingerprinting one random draw.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repro_common.manifest import Manifest
from support.wandb_log import read_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede the first keras import
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


def record_of(run) -> Manifest:
    return Manifest.from_json((Path(run.dir) / "repro" / "manifest.json").read_bytes())


def keras_weights(keras, new_run, with_callback: bool):
    """Noise from numpy's global RandomState and from Keras' global SeedGenerator per batch."""
    import numpy as np

    from wandb_repro_plugin.keras import ReproCallback

    class Noisy(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.x = rng.normal(size=(64, 4)).astype("float32")
            self.y = (self.x.sum(axis=1, keepdims=True) > 0).astype("float32")

        def __len__(self):
            return 4

        def __getitem__(self, index):
            rows = slice(index * 16, (index + 1) * 16)
            noise = np.random.normal(scale=0.1, size=(16, 4)).astype("float32")
            jitter = keras.ops.convert_to_numpy(keras.random.normal((16, 4), stddev=0.01))
            return self.x[rows] + noise + jitter, self.y[rows]

    run = new_run()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    dataset = Noisy()
    callbacks = [ReproCallback(data={"train": dataset})] if with_callback else []
    model.fit(dataset, epochs=2, verbose=0, callbacks=callbacks)
    run.finish()
    return model.get_weights(), run


def test_an_augmenting_pydataset_trains_bitwise_alike_with_the_callback(keras, new_run):
    import numpy as np

    without, _ = keras_weights(keras, new_run, with_callback=False)
    with_callback, run = keras_weights(keras, new_run, with_callback=True)
    assert all(np.array_equal(a, b) for a, b in zip(without, with_callback, strict=True))

    (item,) = record_of(run).data
    assert item["name"] == "train" and item["kind"] == "augmented"
    assert item["fingerprint"] is None and "differs between two reads" in item["reason"]
    summary = read_run(Path(run.dir).parent).config["repro"]
    assert summary["data"] == {}  # fingerprinted inputs only, as in the MLflow tags
    assert "differs between two reads" in summary["data_skipped"]["train"]


def lightning_weights(new_run, with_callback: bool):
    """Noise from torch's CPU generator and Python's random per item."""
    import random

    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, Dataset

    from wandb_repro_plugin.lightning import ReproCallback

    class Jittered(Dataset):
        def __init__(self):
            generator = torch.Generator().manual_seed(0)
            self.x = torch.randn(64, 4, generator=generator)
            self.y = self.x.sum(dim=1, keepdim=True)

        def __len__(self):
            return 64

        def __getitem__(self, index):
            scale = 0.1 if random.random() < 0.5 else 0.05
            return self.x[index] + scale * torch.randn(4), self.y[index]

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    run = new_run()
    random.seed(5)
    torch.manual_seed(5)
    model, dataset = Model(), Jittered()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        callbacks=[ReproCallback(data={"train": dataset})] if with_callback else [],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(dataset, batch_size=16))
    run.finish()
    return model.state_dict(), run


def test_an_augmenting_torch_dataset_trains_bitwise_alike_under_lightning(new_run):
    import torch

    without, _ = lightning_weights(new_run, with_callback=False)
    with_callback, run = lightning_weights(new_run, with_callback=True)
    assert without.keys() == with_callback.keys()
    assert all(torch.equal(without[k], with_callback[k]) for k in without)

    (item,) = record_of(run).data
    assert item["kind"] == "augmented" and item["fingerprint"] is None
    assert "Jittered differs between two reads" in item["reason"]
    record_of(run).validate()  # the schema allows an input without a fingerprint, with its reason
