"""Several runs in one process, as a sweep agent makes them: each run records its own data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro_common import inputs as registry
from repro_common.cli import main
from repro_common.manifest import Manifest
from support.wandb_log import read_run

pytestmark = pytest.mark.slow


def fit_on_rows(rows: int):
    """A fresh Trainer and ReproCallback, as a sweep agent's train() builds them; returns the set."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from wandb_repro_plugin.lightning import ReproCallback

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    generator = torch.Generator().manual_seed(rows)
    train = TensorDataset(torch.randn(rows, 4, generator=generator), torch.randn(rows, 1))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        callbacks=[ReproCallback()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Model(), DataLoader(train, batch_size=64))
    return train


def test_three_runs_in_one_process_each_record_their_own_data(new_run, capsys):
    import wandb_repro_plugin as repro

    runs = []
    for rows in (256, 320, 384):
        run = new_run()
        train = fit_on_rows(rows)
        run.finish()
        runs.append((Path(run.dir).parent, train))

    sizes = []
    for run_dir, train in runs:
        summary = read_run(run_dir).config["repro"]
        manifest = Manifest.from_json((run_dir / "files" / "repro" / "manifest.json").read_bytes())
        (item,) = manifest.data
        assert item["name"] == "train"
        assert item["fingerprint"] == repro.fingerprint(train) == summary["data"]["train"]
        sizes.append(item["size_bytes"])
        assert manifest.digest_matches()
    assert sizes == [rows * 5 * 4 for rows in (256, 320, 384)]  # 4 features + 1 target, float32
    # What a callback found belongs to its run: the process-wide registry holds only what the
    # user tracked (nothing here).
    assert registry.collect_data([]) == []

    first, second = str(runs[0][0]), str(runs[1][0])
    assert main(["diff", first, second, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert "data" in result["differing"]
    assert [c["field"] for c in result["groups"]["data"]] == ["train"]
