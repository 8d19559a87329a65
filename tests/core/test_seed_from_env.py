"""`MLREPRO_SEED=42 python train.py`, no code change: the run is seeded before it starts, and says so.

Real scripts in fresh interpreters: one logging to a SQLite MLflow store (seeded at
the provider's first capture, inside `start_run`), one to offline W&B (seeded when
`attach` captures), and one whose code seeds itself, which wins and is recorded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from repro_common.runs import load_run
from support.git import make_repo
from support.procs import PYTHON, clean_env

MLFLOW_TRAIN = """\
import os
import sys

import mlflow
import torch

if len(sys.argv) > 1:
    import repro_common

    repro_common.seed_everything(int(sys.argv[1]))  # the code seeds itself: it wins
with mlflow.start_run() as run:
    mlflow.log_metric("acc", float(torch.rand(1)))
print("RUN_ID=" + run.info.run_id)
"""

WANDB_TRAIN = """\
from pathlib import Path

import torch
import wandb

import wandb_repro_plugin

run = wandb.init(project="seeds")
wandb_repro_plugin.attach(run)
value = float(torch.rand(1))
run.log({"acc": value})
run.finish()
print("RUN=" + str(Path(run.dir).parent) + " " + repr(value))
"""


def _run(repo: Path, script: str, *args: str, **env: str) -> str:
    proc = subprocess.run(
        [PYTHON, script, *args],
        cwd=repo,
        env=clean_env(GIT_PYTHON_REFRESH="quiet", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1].split("=", 1)[1]


@pytest.mark.slow
def test_mlrepro_seed_seeds_an_mlflow_run_with_no_code_change(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"train.py": MLFLOW_TRAIN})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = (
        _run(repo, "train.py", MLFLOW_TRACKING_URI=uri, MLREPRO_SEED="42") for _ in "ab"
    )
    a, b = load_run(first, uri), load_run(second, uri)
    assert a.metrics["acc"] == b.metrics["acc"]
    for record in (a, b):
        assert record.manifest is not None
        seeds = record.manifest.seeds
        assert (seeds["global"], seeds["source"], seeds["seeded"]) == (42, "environment", True)
        assert record.tags["repro.seed"] == "42"

    own = load_run(_run(repo, "train.py", "7", MLFLOW_TRACKING_URI=uri, MLREPRO_SEED="42"), uri)
    assert own.manifest is not None
    assert (own.manifest.seeds["global"], own.manifest.seeds["source"]) == (7, "argument")


@pytest.mark.slow
def test_mlrepro_seed_seeds_a_wandb_run_at_attach(tmp_path: Path, wandb_offline: Path) -> None:
    repo = make_repo(tmp_path / "project", {"train.py": WANDB_TRAIN})
    runs = [_run(repo, "train.py", MLREPRO_SEED="42").split(" ") for _ in "ab"]
    assert runs[0][1] == runs[1][1]  # the same draw after attach
    record = load_run(runs[0][0])
    assert record.manifest is not None
    assert (record.manifest.seeds["global"], record.manifest.seeds["source"]) == (42, "environment")
