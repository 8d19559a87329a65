"""`repro_common.reproduce.reproduce(run)`: the one call the CLI uses, called from Python.

A real seeded run on a SQLite MLflow store, made by a fresh interpreter in a
dirty git checkout with a bare remote; rebuilt without running, then rebuilt,
rerun and compared, all in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.git import git, make_repo
from support.procs import clean_env, train

TRAIN = """\
import mlflow

import repro_common as repro

repro.seed_everything(11)
with mlflow.start_run() as run:
    mlflow.log_metric("acc", 0.75)
print("RUN_ID=" + run.info.run_id)
"""


class _Recorder:
    """A Progress that remembers what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def step(self, message: str) -> None:
        self.events.append(f"step: {message}")

    def line(self, text: str) -> None:
        self.events.append("line")

    def rebuilt(self, rebuild) -> None:
        self.events.append(f"rebuilt: {rebuild.workspace.root.name}")


@pytest.fixture
def original(tmp_path: Path) -> tuple[str, str]:
    """(tracking URI, run id) of a finished run with one metric."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo = make_repo(tmp_path / "project", {"train.py": TRAIN}, remote=str(remote))
    git(repo, "push", "-q", "origin", "main")
    (repo / "train.py").write_text(TRAIN.replace("0.75", "0.5"))  # a stored diff to apply
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, train(repo, clean_env(MLFLOW_TRACKING_URI=uri))


@pytest.mark.slow
def test_reproduce_from_python_rebuilds_then_reruns_and_says_reproduced(
    original: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro_common.reproduce import Verdict, reproduce

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)  # the rerun inherits this process' environment

    uri, run_id = original
    rebuilt = reproduce(run_id, execute=False, directory=tmp_path / "rebuilt", tracking_uri=uri)
    assert isinstance(rebuilt, Verdict)
    assert (rebuilt.word, rebuilt.exit_code, rebuilt.ran) == ("REBUILT", 0, False)
    assert rebuilt.rebuild is not None and rebuilt.rerun is None
    ws = rebuilt.rebuild.workspace
    assert ws.root == (tmp_path / "rebuilt").resolve() and ws.reproduces == run_id
    assert "0.5" in (ws.code_dir / "train.py").read_text()  # the recorded diff, applied
    assert ws.tracker_env["MLFLOW_TRACKING_URI"] == uri  # the MLflow source's rerun setup
    assert not (ws.root / "reproduce.log").exists()  # nothing ran

    progress = _Recorder()
    verdict = reproduce(run_id, directory=tmp_path / "rerun", tracking_uri=uri, progress=progress)

    assert verdict.word == "REPRODUCED", verdict.reason
    assert verdict.exit_code == 0 and verdict.verified and verdict.ran
    assert verdict.rerun is not None and verdict.rerun.returncode == 0
    new = verdict.new_run
    assert new is not None and new.kind == "mlflow" and new.run_id not in (None, run_id)
    assert new.tags["repro.reproduces"] == run_id
    assert [
        (c.name, c.original, c.reproduced, c.ok) for c in verdict.checks if c.section == "metric"
    ] == [("acc", "0.5", "0.5", True)]
    steps = [e for e in progress.events if e != "line"]
    assert steps.index("rebuilt: rerun") < steps.index("step: checking inputs")
    assert steps[-1] == "step: finding the new run"
