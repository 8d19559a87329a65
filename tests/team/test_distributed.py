"""Distributed training on CPU (gloo, 2 processes): one run, one record written by rank zero.

The record must still describe the whole job: its world size and the seed of every
rank. No rank may wait on our work (a collective on one rank only would hang the job).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.procs import free_port

pytestmark = [pytest.mark.team, pytest.mark.slow]

SEED = 100  # rank zero's seed; rank N seeds SEED + N, so a record that copied one seed to all fails

LIGHTNING = """\
import os
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    from lightning.pytorch.loggers import MLFlowLogger

    name, with_wandb = sys.argv[1], sys.argv[3] == "wandb"
    # Lightning's launcher re-runs this script for rank one with LOCAL_RANK set: a seed per rank.
    seed = int(sys.argv[2]) + int(os.environ.get("LOCAL_RANK", "0"))
    L.seed_everything(seed)
    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    mlflow_logger = MLFlowLogger(experiment_name=name, tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    loggers, callbacks = [mlflow_logger], []
    if with_wandb:
        from lightning.pytorch.loggers import WandbLogger
        from wandb_repro_plugin.lightning import ReproCallback

        loggers.append(WandbLogger(project=name, offline=True, save_dir=os.environ["WANDB_DIR"]))
        callbacks.append(ReproCallback())
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=2,
        logger=loggers, callbacks=callbacks,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(Tiny(), DataLoader(data, batch_size=16))
    # os.write: one system call per line, so ranks sharing stdout never split a line
    if trainer.global_rank == 0:
        os.write(1, f"RUN_ID {mlflow_logger.run_id}\\n".encode())
    os.write(1, f"RANK {trainer.global_rank} of {trainer.world_size}\\n".encode())
"""

TORCHRUN = """\
import os
import sys

import mlflow
import repro_common
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
seed = int(sys.argv[2]) + rank  # a different seed per rank
repro_common.seed_everything(seed)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
if rank == 0:
    mlflow.set_experiment(sys.argv[1])
    run = mlflow.start_run()
for step in range(5):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if rank == 0:
        mlflow.log_metric("loss", loss.item(), step=step)
if rank == 0:
    mlflow.end_run()
    os.write(1, f"RUN_ID {run.info.run_id}\\n".encode())
dist.barrier()
dist.destroy_process_group()
os.write(1, f"RANK {rank} of 2\\n".encode())
"""


def assert_whole_job_recorded(manifest: dict[str, Any], seed: int) -> None:
    """Each rank's own seed (rank N seeded `seed + N`), and rank zero's as the run's seed."""
    ranks = manifest["seeds"].get("ranks") or {}
    assert ranks.get("world_size") == 2, manifest["seeds"]
    assert ranks.get("global_rank") == 0, manifest["seeds"]
    assert {str(rank): value for rank, value in (ranks.get("seeds") or {}).items()} == {
        "0": seed,
        "1": seed + 1,
    }, manifest["seeds"]
    assert manifest["seeds"]["global"] == seed


def assert_both_ranks_finished(stdout: str) -> None:
    assert sorted(line for line in stdout.splitlines() if line.startswith("RANK ")) == [
        "RANK 0 of 2",
        "RANK 1 of 2",
    ], stdout


def assert_one_mlflow_run_with_one_record(stack: Any, experiment: str, stdout: str) -> None:
    runs = stack.runs(experiment)
    assert len(runs) == 1, f"{len(runs)} runs for one training"
    run = runs[0]
    assert stack.printed(stdout, "RUN_ID") == [run.info.run_id]
    tags = run.data.tags
    assert [name for name in stack.CORE_TAGS if name not in tags] == []
    assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
    assert tags["repro.seed"] == str(SEED)
    listed = [item.path for item in stack.client().list_artifacts(run.info.run_id, "repro")]
    assert listed.count("repro/manifest.json") == 1, listed
    manifest = stack.manifest(run)
    assert manifest is not None and manifest["digest"] == tags["repro.manifest.digest"]
    assert_whole_job_recorded(manifest, SEED)


def test_lightning_ddp_with_mlflow_and_wandb_loggers_one_run_each_recorded_once(
    team_stack: Any, project: Path, wandb_offline: Path
) -> None:
    """Both loggers on one DDP training (as teams often do): one MLflow run, one W&B run."""
    (project / "train.py").write_text(LIGHTNING)
    experiment = "team-ddp-lightning"
    proc = team_stack.run_script(
        project / "train.py", experiment, str(SEED), "wandb", timeout=300, OMP_NUM_THREADS="1"
    )
    assert_both_ranks_finished(proc.stdout)

    run_dirs = sorted(wandb_offline.glob("wandb/offline-run-*"))
    assert len(run_dirs) == 1, run_dirs
    manifests = sorted(wandb_offline.rglob("repro/manifest.json"))
    assert manifests == [run_dirs[0] / "files" / "repro" / "manifest.json"], manifests
    assert_whole_job_recorded(json.loads(manifests[0].read_text()), SEED)

    assert_one_mlflow_run_with_one_record(team_stack, experiment, proc.stdout)


def test_lightning_ddp_with_mlflow_logger_alone_records_every_rank(
    team_stack: Any, project: Path
) -> None:
    """No code of ours in the script: MLFlowLogger creates the run on rank zero only, and
    rank one, which never calls MLflow, still gets its seed into the record."""
    (project / "train.py").write_text(LIGHTNING)
    experiment = "team-ddp-mlflow-only"
    proc = team_stack.run_script(
        project / "train.py", experiment, str(SEED), "mlflow", timeout=300, OMP_NUM_THREADS="1"
    )
    assert_both_ranks_finished(proc.stdout)
    assert_one_mlflow_run_with_one_record(team_stack, experiment, proc.stdout)


def test_torchrun_plain_loop_with_mlflow_on_rank_zero(team_stack: Any, project: Path) -> None:
    (project / "train.py").write_text(TORCHRUN)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(
        [
            *launcher,
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "train.py",
            "team-torchrun",
            str(SEED),
        ],
        cwd=project,
        env=team_stack.client_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert_both_ranks_finished(proc.stdout)
    assert_one_mlflow_run_with_one_record(team_stack, "team-torchrun", proc.stdout)


LATE_RANKS = """\
import os
import sys
import time

import mlflow
import mlflow_repro_plugin
import repro_common
import torch.distributed as dist
from torch.distributed import distributed_c10d

dist.init_process_group("gloo")
rank = dist.get_rank()
store = distributed_c10d._get_default_store()
base, late_after = int(sys.argv[2]), float(sys.argv[3])
if rank == 0:
    repro_common.seed_everything(base)
    mlflow.set_experiment(sys.argv[1])
    run = mlflow.start_run()
    store.set("test/run-created", "1")  # the record's wait for other ranks starts about now
    mlflow.log_metric("loss", 0.5)
    mlflow.end_run()
    assert mlflow_repro_plugin.flush(120), "the record was not uploaded"
    os.write(1, f"RUN_ID {run.info.run_id}\\n".encode())
else:
    store.wait(["test/run-created"])
    # Rank one seeds (and so posts its seed) inside the wait, rank two long after it.
    time.sleep(0.5 if rank == 1 else late_after)
    repro_common.seed_everything(base + rank)
dist.barrier()
dist.destroy_process_group()
os.write(1, f"RANK {rank} of 3\\n".encode())
"""


def test_a_rank_that_posts_its_seed_after_the_wait_is_recorded_as_missing(
    team_stack: Any, project: Path
) -> None:
    """The record waits RANK_SEEDS_WAIT (3 s) for other ranks' seeds, then is written as it is.

    Rank one posts 0.5 s after the run began: inside the wait, so recorded. Rank two posts
    8 s after: the record keeps the world size (3) and leaves rank two out, rather than
    waiting on it or filling in another rank's seed.
    """
    from mlflow_repro_plugin.uploader import RANK_SEEDS_WAIT

    late_after = RANK_SEEDS_WAIT + 5
    (project / "train.py").write_text(LATE_RANKS)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(
        [
            *launcher,
            "--nproc_per_node",
            "3",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "train.py",
            "team-late-rank",
            str(SEED),
            str(late_after),
        ],
        cwd=project,
        env=team_stack.client_env(MLREPRO_UPLOAD_TIMEOUT="120", OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK ")) == [
        f"RANK {rank} of 3" for rank in range(3)
    ], proc.stdout
    runs = team_stack.runs("team-late-rank")
    assert len(runs) == 1 and team_stack.printed(proc.stdout, "RUN_ID") == [runs[0].info.run_id]
    manifest = team_stack.manifest(runs[0])
    assert manifest is not None
    ranks = manifest["seeds"]["ranks"]
    assert ranks["world_size"] == 3 and ranks["global_rank"] == 0, ranks
    assert ranks["seeds"] == {"0": SEED, "1": SEED + 1}, ranks
    assert manifest["seeds"]["global"] == SEED
