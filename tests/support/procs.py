"""Fresh Python processes and free ports: capture and seeding are per-process, so test them so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without our own switches, plus `extra`.

    Also without the seed variables seed_everything() sets, and the experiment MLflow exported: an earlier test's seeding in
    this process (or a module-scoped fixture that runs before the per-test cleanup) must
    not seed a child that is meant to be unseeded.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREPRO_")}
    for name in ("PYTHONHASHSEED", "PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"):
        env.pop(name, None)
    # mlflow.set_experiment() exports these: an experiment of another test's store must not
    # reach a child that has a store of its own.
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_python(
    code: str,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    args: list[str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run dedented `code` in a fresh interpreter; raise with its output if it fails."""
    proc = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code), *(args or [])],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"subprocess failed ({proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def train(repo: str | Path, env: dict[str, str], *args: str, timeout: float | None = 300) -> str:
    """`python train.py ARGS` in `repo`, a script whose last line is `RUN_ID=<id>`: the run id.

    Raises with the script's output if it fails."""
    proc = subprocess.run(
        [PYTHON, "train.py", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc.stdout.strip().splitlines()[-1].removeprefix("RUN_ID=")


def run_cli(
    *args: str,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`mlrepro ARGS` in a fresh process, as a user would type it."""
    return subprocess.run(
        [PYTHON, "-m", "repro_common", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
