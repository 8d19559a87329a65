"""`mlrepro init`: a new project trains on a tiny model and passes its own production gate."""

from __future__ import annotations

import py_compile
import shutil
import subprocess
from pathlib import Path

import pytest

from support.git import commit_all
from support.procs import clean_env, run_cli

EXPECTED = {
    "train.py",
    "register.py",
    "requirements.txt",
    "Dockerfile",
    "Makefile",
    "README.md",
    ".gitignore",
    ".dockerignore",
    ".github/workflows/train-and-register.yml",
    "data/train.csv",
}


def _make(project: Path, target: str, python: str, env: dict[str, str], **variables: str):
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


def test_init_writes_a_project_ready_for_both_tracks(tmp_path: Path):
    proc = run_cli("init", "churn-model", "--wandb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "churn-model"
    written = {
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and ".git/" not in str(p)
    }
    assert written >= EXPECTED
    assert (project / ".git").is_dir()
    train = (project / "train.py").read_text()
    for wired in ("seed_everything(", "track_data(", "mlflow.pytorch.autolog(", "ReproCallback()"):
        assert wired in train
    py_compile.compile(str(project / "train.py"), doraise=True)
    py_compile.compile(str(project / "register.py"), doraise=True)
    pins = [
        ln
        for ln in (project / "requirements.txt").read_text().splitlines()
        if not ln.startswith("#")
    ]
    assert {ln.split("==")[0] for ln in pins} >= {
        "mlrepro",
        "mlflow",
        "lightning",
        "torch",
        "wandb",
    }
    assert all("==" in ln for ln in pins)
    workflow = (project / ".github/workflows/train-and-register.yml").read_text()
    gate, register = workflow.index("--track production"), workflow.index("register.py")
    assert gate < register  # the gate runs before registration
    makefile = (project / "Makefile").read_text()
    for target in ("train:", "check:", "reproduce:", "register: check"):
        assert f"\n{target}" in makefile
    assert "FROM python:3." in (project / "Dockerfile").read_text()
    assert "@@" not in "".join((project / name).read_text() for name in EXPECTED)


def test_init_refuses_a_folder_in_use_and_a_bad_name(tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    taken = run_cli("init", "taken", cwd=tmp_path)
    assert taken.returncode == 2 and "not empty" in taken.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    bad = run_cli("init", "9lives", cwd=tmp_path)
    assert bad.returncode == 2 and "not a usable project name" in bad.stderr
    assert "Traceback" not in taken.stderr + bad.stderr


@pytest.mark.slow
def test_a_new_project_trains_and_passes_its_own_gate(tmp_path: Path, installed_python: str):
    # made by the installed wheel: the templates ship as package data
    made = subprocess.run(
        [installed_python, "-m", "repro_common", "init", "demo"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"
    commit_all(project, "Start demo")
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}")
    train = _make(project, "train", installed_python, env, ARGS="--epochs 1 --no-log-model")
    assert train.returncode == 0, train.stdout + train.stderr
    run_id = (project / ".last-run").read_text().strip()
    assert f"run {run_id}" in train.stdout
    check = _make(project, "check", installed_python, env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "production gate" in check.stdout and "FAILED" not in check.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    )
    assert status.stdout == ""  # the run's own files are ignored: the tree stays clean
