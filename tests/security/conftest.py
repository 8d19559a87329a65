"""Real runs to attack: MLflow runs on a SQLite store and W&B offline runs, made by the plugins.

Each test gets runs of its own (it edits them as an attacker with write access to
the artifact store would), made by a fresh interpreter running a small script in
a temp git checkout with a bare remote and an uncommitted edit, so the record
holds a remote, a branch, a checkout path and a stored diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.git import git, make_repo
from support.procs import PYTHON, clean_env, run_cli

TRAIN = """\
import sys
from pathlib import Path

import mlflow

import repro_common as repro

repro.seed_everything(7)
for arg in sys.argv[1:]:
    repro.track_data(Path(arg), name=Path(arg).name.replace(".", "_"))
with mlflow.start_run() as run:
    mlflow.log_metric("acc", 0.5)
print("RUN_ID=" + run.info.run_id)
"""

WANDB_TRAIN = """\
from pathlib import Path

import wandb

from wandb_repro_plugin import attach

run = wandb.init(project="mlrepro-security")
attach(run)
run.summary["acc"] = 0.5
print("RUN_DIR=" + str(Path(run.dir).parent))
run.finish()
"""


@dataclass
class MlflowRun:
    """One real run: its checkout, store and artifact folder (which the tests tamper with)."""

    base: Path
    repo: Path
    remote: Path
    uri: str
    run_id: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    @property
    def artifacts(self) -> Path:
        """The run's artifact root on disk (a local store: an attacker's view of it)."""
        from urllib.parse import urlparse

        uri = self.client.get_run(self.run_id).info.artifact_uri
        return Path(urlparse(uri).path) if uri.startswith("file:") else Path(uri)

    def read(self, path: str) -> bytes:
        return (self.artifacts / path).read_bytes()

    def write(self, path: str, content: bytes) -> None:
        target = self.artifacts / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

    def manifest(self) -> dict[str, Any]:
        return json.loads(self.read("repro/manifest.json"))

    def write_manifest(self, doc: dict[str, Any], redigest: bool = False) -> None:
        """Write an edited manifest; `redigest` makes it self-consistent (the tag still differs)."""
        if redigest:
            from repro_common.manifest import manifest_digest

            doc["digest"] = manifest_digest(doc)
        self.write("repro/manifest.json", json.dumps(doc, indent=2).encode())

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, cwd=cwd or self.base, timeout=600)


def _run_script(repo: Path, env: dict[str, str], args: list[str]) -> str:
    proc = subprocess.run(
        [PYTHON, "train.py", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _make_run(
    base: Path,
    track: str = "exploratory",
    inputs: list[Path] | None = None,
    ignored_inputs: dict[str, str] | None = None,
) -> MlflowRun:
    base.mkdir(parents=True)
    remote = base / "remote.git"
    git(base, "init", "-q", "--bare", str(remote))
    repo = make_repo(
        base / "project",
        {"train.py": TRAIN, "README.md": "demo\n", ".gitignore": "data/\nmlruns/\n"},
        remote=str(remote),
    )
    git(repo, "push", "-q", "origin", "main")
    (repo / "README.md").write_text("demo, edited\n")  # uncommitted: a stored diff
    inputs = list(inputs or [])
    for name, text in (ignored_inputs or {}).items():  # git-ignored files inside the checkout
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        inputs.append(Path(name))  # relative to the checkout, as a user types it
    uri = f"sqlite:///{base / 'mlflow.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=uri, MLREPRO_TRACK=track, PYTHON=PYTHON)
    out = _run_script(repo, env, [str(p) for p in inputs])
    run_id = out.strip().splitlines()[-1].removeprefix("RUN_ID=")
    run_env = clean_env(MLFLOW_TRACKING_URI=uri, PYTHON=PYTHON)
    return MlflowRun(base, repo, remote, uri, run_id, run_env)


@pytest.fixture
def make_mlflow_run(tmp_path: Path) -> Callable[..., MlflowRun]:
    """`make_mlflow_run(track=, inputs=[paths], ignored_inputs={"data/x": text})`: a fresh
    finished run of train.py in a dirty checkout, tracking the inputs."""
    counter = iter(range(100))

    def make(
        track: str = "exploratory",
        inputs: list[Path] | None = None,
        ignored_inputs: dict[str, str] | None = None,
    ) -> MlflowRun:
        return _make_run(tmp_path / f"original-{next(counter)}", track, inputs, ignored_inputs)

    return make


@pytest.fixture(scope="module")
def _pristine_run(tmp_path_factory: pytest.TempPathFactory) -> MlflowRun:
    return _make_run(tmp_path_factory.mktemp("security") / "original")


@pytest.fixture
def mlflow_run(_pristine_run: MlflowRun) -> Iterator[MlflowRun]:
    """The module's exploratory run; whatever a test tampers with is put back after it."""
    run = _pristine_run
    folder = run.artifacts / "repro"
    saved = run.base / "saved-repro"
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(folder, saved)
    tags = dict(run.client.get_run(run.run_id).data.tags)
    yield run
    shutil.rmtree(folder)
    shutil.copytree(saved, folder)
    digest_tag = "repro.manifest.digest"
    run.client.set_tag(run.run_id, digest_tag, tags[digest_tag])


@pytest.fixture
def wandb_run_dir(tmp_path: Path, wandb_offline: Path) -> Path:
    """A finished offline W&B run directory recorded by `attach(run)`."""
    repo = make_repo(tmp_path / "wb-project", {"train.py": WANDB_TRAIN})
    env = clean_env(WANDB_CONSOLE="off")
    out = _run_script(repo, env, [])
    line = next(ln for ln in out.splitlines() if ln.startswith("RUN_DIR="))
    return Path(line.split("=", 1)[1])
