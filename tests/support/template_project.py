"""A project made by `mlrepro init` from the installed wheel and trained once, as a user would.

Training the template imports torch, Lightning and MLflow in a fresh process (the slow
part of every end-to-end test that uses it). The tests that start from "a new project
has one production run" share one such project: `make train` once per session.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.git import commit_all
from support.procs import clean_env


@dataclass
class TrainedProject:
    project: Path
    store: str  # the project's own SQLite store, as the template's Makefile uses it
    trained: subprocess.CompletedProcess[str]  # `make train`, as it ran
    run_id: str  # the production run it made (.last-run)


def make(project: Path, target: str, python: str, env: dict[str, str], **variables: str):
    """`make TARGET` when make is installed, else the command its recipe runs."""
    if shutil.which("make"):
        assigns = [f"PYTHON={python}", *(f"{k}={v}" for k, v in variables.items())]
        args = ["make", "--no-print-directory", target, *assigns]
    elif target == "train":
        args = [python, "train.py", *variables.get("ARGS", "").split()]
    else:
        run_id = (project / ".last-run").read_text().strip()
        args = [python, "-m", "repro_common", "check", run_id, "--track", "production"]
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def train_new_project(base: Path, installed_python: str) -> TrainedProject:
    """`mlrepro init demo` by the installed wheel, committed, then `make train` for one epoch.

    The model is logged (the template's default): a registration step needs it.
    """
    # made by the installed wheel: the templates ship as package data
    made = subprocess.run(
        [installed_python, "-m", "repro_common", "init", "demo"],
        cwd=base,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    project = base / "demo"
    commit_all(project, "Start demo")
    store = f"sqlite:///{project / 'mlflow.db'}"
    trained = make(
        project, "train", installed_python, clean_env(MLFLOW_TRACKING_URI=store), ARGS="--epochs 1"
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run_id = (project / ".last-run").read_text().strip()
    return TrainedProject(project, store, trained, run_id)
