"""The mlrepro quickstart: one tracked training run, its record, the CI gate, and a rebuild.

    python examples/quickstart.py          # run from the repository root

It trains a small Lightning model on a fixed CSV dataset, logged to MLflow
(`sqlite:///mlflow.db` in the current directory, mlrepro's plugin adds the record
by itself) and to W&B offline (through mlrepro's Lightning callback). Then it runs
what a teammate or CI would:

    mlrepro show RUN                          the run's reproducibility card
    mlrepro check RUN --track production      the gate before model registration
    mlrepro reproduce RUN --run               rebuild from the record, rerun, compare

`python examples/quickstart.py train` is the training alone: that is what the
record names as the entry point, so that is what `reproduce` reruns.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "quickstart.csv"
EXPERIMENT = "mlrepro-quickstart"


def write_dataset(path: Path, rows: int = 512, seed: int = 1234) -> None:
    """Two interleaved half-moons with noise: the same bytes on every machine."""
    import math

    rng = random.Random(seed)
    lines = ["x1,x2,label"]
    for i in range(rows):
        label = i % 2
        angle = rng.uniform(0.0, math.pi)
        x1 = math.cos(angle) if label == 0 else 1.0 - math.cos(angle)
        x2 = math.sin(angle) if label == 0 else 0.5 - math.sin(angle)
        lines.append(f"{x1 + rng.gauss(0, 0.15):.6f},{x2 + rng.gauss(0, 0.15):.6f},{label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def train(epochs: int, seed: int) -> None:
    """The tracked run. Nothing here asks for the record: installing mlrepro[mlflow] is enough."""
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    os.environ.setdefault("WANDB_MODE", "offline")  # the quickstart needs no W&B account
    import lightning as L
    import mlflow
    import mlflow.pytorch
    import torch
    from lightning.pytorch.loggers import WandbLogger
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    import mlflow_repro_plugin as repro
    from wandb_repro_plugin.lightning import ReproCallback

    repro.seed_everything(seed, deterministic=True)
    if not DATA.exists():
        write_dataset(DATA)
    repro.track_data(DATA, name="moons")  # fingerprinted in full; a Dataset in the MLflow UI

    class MoonsCsv(Dataset):
        """Rows of the CSV file: the file is the input mlrepro fingerprints and snapshots."""

        def __init__(self, path: Path, indices: list[int]) -> None:
            table = [line.split(",") for line in path.read_text().splitlines()[1:]]
            self.x = torch.tensor([[float(table[i][0]), float(table[i][1])] for i in indices])
            self.y = torch.tensor([float(table[i][2]) for i in indices])

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self.x[index], self.y[index]

        def __fingerprint__(self) -> str:
            """The rows this split holds, so the callback records `train` and `val` in full."""
            return repro.fingerprint(torch.cat([self.x, self.y[:, None]], dim=1))

    split = torch.Generator().manual_seed(repro.derive_seed("split"))
    order = torch.randperm(512, generator=split).tolist()
    train_loader = DataLoader(
        MoonsCsv(DATA, order[:400]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(repro.derive_seed("shuffle")),
    )
    val_loader = DataLoader(MoonsCsv(DATA, order[400:]), batch_size=256)

    class Moons(L.LightningModule):
        def __init__(self, hidden: int = 32, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.Linear(2, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
                nn.Linear(hidden, 1),
            )

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.net(inputs).squeeze(-1)

        def training_step(self, batch, _index):
            inputs, target = batch
            loss = nn.functional.binary_cross_entropy_with_logits(self(inputs), target)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, _index):
            inputs, target = batch
            logits = self(inputs)
            self.log("val_loss", nn.functional.binary_cross_entropy_with_logits(logits, target))
            self.log("val_acc", ((logits > 0).float() == target).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    mlflow.set_experiment(EXPERIMENT)
    mlflow.pytorch.autolog(log_models=False, checkpoint=False)
    wandb_logger = WandbLogger(project=EXPERIMENT)
    with mlflow.start_run() as run:
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            deterministic=True,
            logger=wandb_logger,
            callbacks=[ReproCallback()],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(Moons(), train_loader, val_loader)
    wandb_logger.experiment.finish()
    metrics = ", ".join(f"{k}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()))
    print(f"RUN_ID={run.info.run_id}")
    print(f"trained: {metrics}")


def step(
    title: str, args: list[str], ok_codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    """Run one command as the user would type it, show it and its output."""
    shown = " ".join(shlex.quote(a) for a in args)
    print(f"\n\033[1m== {title}\033[0m\n$ {shown}", flush=True)
    command = [sys.executable, "-m", "repro_common", *args[1:]] if args[0] == "mlrepro" else args
    started = time.perf_counter()
    proc = subprocess.run(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout.rstrip(), flush=True)
    print(f"[exit {proc.returncode}, {time.perf_counter() - started:.1f}s]", flush=True)
    if proc.returncode not in ok_codes:
        sys.exit(f"quickstart: `{shown}` failed with exit {proc.returncode}")
    return proc


def main() -> None:
    store = Path.cwd() / "mlflow.db"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    # Production track: the run also stores its environment spec and a data snapshot.
    os.environ.setdefault("MLREPRO_TRACK", "production")
    # Hash randomisation is fixed when an interpreter starts: set it for the training process.
    os.environ.setdefault("PYTHONHASHSEED", "0")
    entry = os.path.relpath(__file__)
    started = time.perf_counter()
    trained = step("1. Train (Lightning, MLflow + W&B offline)", [sys.executable, entry, "train"])
    run_id = next(
        line.split("=", 1)[1] for line in trained.stdout.splitlines() if line.startswith("RUN_ID=")
    )
    step("2. The run's reproducibility card", ["mlrepro", "show", run_id])
    step(
        "3. The gate CI runs before registering a model",
        ["mlrepro", "check", run_id, "--track", "production"],
        ok_codes=(0, 1),
    )
    step(
        "4. Rebuild the run from its record alone, rerun it, compare",
        ["mlrepro", "reproduce", run_id, "--run"],
        ok_codes=(0, 1),
    )
    uri = os.environ["MLFLOW_TRACKING_URI"]
    if uri == f"sqlite:///{store}":
        uri = "sqlite:///mlflow.db"  # as typed from this directory
    print(
        f"\nDone in {time.perf_counter() - started:.0f}s. See the enriched run (repro.* tags, "
        f"repro/ artifacts, the dataset) in the MLflow UI:\n"
        f"  mlflow ui --backend-store-uri {uri}\n"
        f"  then open http://127.0.0.1:5000 > {EXPERIMENT} > run {run_id}\n"
        "The W&B runs are offline under ./wandb/ (config.repro, repro-manifest artifact); "
        "`wandb sync` uploads them."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="mlrepro quickstart")
    parser.add_argument("mode", nargs="?", choices=["all", "train"], default="all")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    options = parser.parse_args()
    if options.mode == "train":
        train(options.epochs, options.seed)
    else:
        main()
