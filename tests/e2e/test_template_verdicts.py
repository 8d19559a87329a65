"""The `mlrepro init` project as a user first runs it: warnings visible under autolog, and
`mlrepro check-determinism train.py` passes on the template itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.procs import PYTHON, clean_env, run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proc = run_cli("init", "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "demo"


@pytest.mark.slow
def test_the_template_passes_check_determinism_and_shows_production_warnings(
    project: Path, tmp_path: Path
) -> None:
    env = clean_env(GIT_PYTHON_REFRESH="quiet")
    # The suite's mlrepro is an editable install: the production track warns at run start,
    # and the warning survives the template's mlflow.pytorch.autolog(). That run does not
    # depend on the two below, so it trains alongside them (a store of its own, outside the
    # checkout): CI's second core is otherwise idle while they import torch and Lightning.
    warned = subprocess.Popen(
        [PYTHON, "train.py", "--epochs", "1", "--no-log-model", "--seed", "1"],
        cwd=project,
        env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'warning-run.db'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc = run_cli(
            "check-determinism",
            "--seed",
            "5",
            "train.py",
            "--epochs",
            "1",
            "--no-log-model",
            cwd=project,
            env=env,
            timeout=600,
        )
        stdout, stderr = warned.communicate(timeout=600)
    finally:
        warned.kill()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("deterministic: 2 runs of train.py with seed 5")

    assert warned.returncode == 0, stdout + stderr
    assert stderr.count("mlrepro production track: environment:") == 1, stderr
