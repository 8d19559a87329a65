"""The Trainer under torchrun, 2 CPU processes (gloo): one W&B run, with every rank's seed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import support.hf_training
from repro_common.manifest import Manifest
from support.procs import clean_env, free_port
from support.wandb_log import find_logs, read_run

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SEED = 100  # rank N uses SEED + N, so a record that copied one seed to every rank fails

TRAIN = """\
import os
import sys

from transformers import Trainer

from tiny import tiny_bert, token_dataset, training_args
from wandb_repro_plugin.transformers import ReproCallback

rank = int(os.environ["RANK"])
args = training_args("out", ["wandb"], seed=int(sys.argv[1]) + rank)
trainer = Trainer(model_init=tiny_bert, args=args, train_dataset=token_dataset(),
                  callbacks=[ReproCallback()])
trainer.train()
os.write(1, f"RANK {rank} of {args.world_size}\\n".encode())
"""


def test_torchrun_two_ranks_one_wandb_run_with_every_rank_seed(wandb_dir, tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "tiny.py").write_text(Path(support.hf_training.__file__).read_text())
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(
        [*launcher, "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "train.py", str(SEED)],
        cwd=tmp_path, env=clean_env(HF_HUB_OFFLINE="1"), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK "))
    assert ranks == ["RANK 0 of 2", "RANK 1 of 2"], proc.stdout

    (log_path,) = find_logs(wandb_dir)  # rank 1 started no run
    log = read_run(log_path)
    (artifact,) = log.artifacts_of_type("repro-manifest")
    manifest = Manifest.from_json(Path(artifact["files"]["manifest.json"]).read_bytes())
    assert log.config["repro"]["seed"] == SEED
    assert "capture_errors" not in log.config["repro"]
    assert manifest.seeds["ranks"] == {
        "world_size": 2,
        "global_rank": 0,
        "seeds": {"0": SEED, "1": SEED + 1},
    }
    assert manifest.seeds["trainer"]["seed"] == SEED
