"""`mlrepro init`: a new project trains on a tiny model and passes its own production gate."""

from __future__ import annotations

import py_compile
import subprocess
from pathlib import Path

import pytest

from support.procs import clean_env, run_cli
from support.template_project import TrainedProject, make

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
def test_a_new_project_trains_and_passes_its_own_gate(
    trained_project: TrainedProject, installed_python: str
):
    # made by the installed wheel and trained with `make train` (the shared fixture: the CI
    # workflow's test starts from the same project)
    project, train = trained_project.project, trained_project.trained
    env = clean_env(MLFLOW_TRACKING_URI=trained_project.store)
    assert train.returncode == 0, train.stdout + train.stderr
    run_id = (project / ".last-run").read_text().strip()
    assert run_id == trained_project.run_id
    assert f"run {run_id}" in train.stdout
    check = make(project, "check", installed_python, env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "production gate" in check.stdout and "FAILED" not in check.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    )
    assert status.stdout == ""  # the run's own files are ignored: the tree stays clean
