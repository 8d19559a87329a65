"""What ReproCallback adds to a short Lightning fit logged to W&B (offline). Target: <= 1.03.

    .venv/bin/python benchmarks/bench_wandb_callback.py [--rounds 7] [--epochs 20]

Both sides are the same fit (CPU, one thread, WandbLogger offline, run created
before the clock starts; the clock covers building the callback and the Trainer,
the fit, and `run.finish()`, where W&B writes the run's files and the record's
artifact); one side adds `ReproCallback()`. Pairs are alternated so
machine load hits both alike, and medians are compared.
  fresh  each fit in a new interpreter: the cold capture (environment, packages,
         git) is paid inside the fit, as in a training script
  warm   both sides alternated in one process: capture cached, the callback's
         steady cost is the artifact write and config update
`callback` is the time spent inside the callback's on_train_start; `best-of` the
ratio of the fastest fits and `process CPU` the ratio of this process's CPU time
(all its threads, not wandb-core's): both steadier than wall medians when other
work shares the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def fit_once(with_callback: bool, epochs: int, wandb_dir: str) -> dict[str, float]:
    """One timed fit (Trainer built and fit) and the seconds spent inside our hook."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import WandbLogger
    from torch.utils.data import DataLoader, TensorDataset

    from wandb_repro_plugin.lightning import ReproCallback

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 32, generator=generator)
    y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.net(batch[0]), batch[1]
            )
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    logger = WandbLogger(project="mlrepro-bench", save_dir=wandb_dir, offline=True)
    run = logger.experiment  # wandb.init outside the clock, for both sides
    started = time.perf_counter()  # from building the callback: its prefetch counts
    cpu_started = time.process_time()
    hook_seconds = [0.0]
    callbacks = []
    if with_callback:
        callback = ReproCallback()
        timed = callback.on_train_start

        def on_train_start(trainer: Any, module: Any) -> None:
            hook_started = time.perf_counter()
            timed(trainer, module)
            hook_seconds[0] += time.perf_counter() - hook_started

        callback.on_train_start = on_train_start  # type: ignore[method-assign]
        callbacks.append(callback)

    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=generator)
    trainer.fit(Model(), loader)
    finishing = time.perf_counter()
    run.finish()  # inside the clock: the record's files and artifact are written here
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "fit": elapsed,
        "cpu": cpu,
        "callback": hook_seconds[0],
        "finish": elapsed - (finishing - started),
    }


def _fresh(with_callback: bool, epochs: int, wandb_dir: str) -> dict[str, float]:
    args = [sys.executable, __file__, "--worker", str(int(with_callback)), str(epochs), wandb_dir]
    proc = subprocess.run(args, capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREPRO_")}
    env.update(
        WANDB_MODE="offline", WANDB_SILENT="true", WANDB_CONSOLE="off", PYTHONWARNINGS="ignore"
    )
    return env


def _report(label: str, samples: dict[str, list[dict[str, float]]]) -> None:
    without = [s["fit"] for s in samples["without"]]
    with_cb = [s["fit"] for s in samples["with"]]
    base, median_with = statistics.median(without), statistics.median(with_cb)
    hook = statistics.median(s["callback"] for s in samples["with"])
    cpu_ratio = statistics.median(s["cpu"] for s in samples["with"]) / statistics.median(
        s["cpu"] for s in samples["without"]
    )
    finish_without = statistics.median(s["finish"] for s in samples["without"])
    finish_with = statistics.median(s["finish"] for s in samples["with"])
    print(
        f"{label}: build + fit + run.finish(), median of n={len(with_cb)} per side: "
        f"without {base:6.3f} s, with ReproCallback {median_with:6.3f} s"
    )
    print(
        f"  ratio of medians {median_with / base:5.3f} (target <= 1.03); ratio of fastest "
        f"{min(with_cb) / min(without):5.3f}; ratio of median process CPU time {cpu_ratio:5.3f}"
    )
    print(
        f"  inside the callback's on_train_start {hook * 1000:6.1f} ms (median) = "
        f"{hook / base * 100:4.1f}% of the median without; run.finish() alone (median): "
        f"without {finish_without * 1000:6.1f} ms, with {finish_with * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mode", choices=("fresh", "warm", "both"), default="both")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.worker:
        with_callback, epochs, wandb_dir = args.worker
        print(json.dumps(fit_once(bool(int(with_callback)), int(epochs), wandb_dir)))
        return

    os.environ.update(_env())
    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        os.environ["WANDB_DIR"] = tmp
        os.chdir(Path(__file__).resolve().parents[1])  # capture a real checkout
        if args.mode in ("fresh", "both"):
            fresh: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
            for i in range(args.rounds):
                order = ("with", "without") if i % 2 else ("without", "with")
                for side in order:
                    fresh[side].append(_fresh(side == "with", args.epochs, tmp))
            _report("fresh", fresh)
        if args.mode in ("warm", "both"):
            fit_once(True, 1, tmp)  # imports and first capture out of the way
            warm: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
            for i in range(args.rounds):
                order = ("with", "without") if i % 2 else ("without", "with")
                for side in order:
                    warm[side].append(fit_once(side == "with", args.epochs, tmp))
            _report("warm", warm)


if __name__ == "__main__":
    main()
