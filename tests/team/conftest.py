"""The production deployment shape, started once for the session.

PostgreSQL (backend store) + moto S3 (artifact destination) + `mlflow server` in
front of both, on 127.0.0.1. Clients talk only to the tracking server: artifacts are
proxied (`mlflow-artifacts:/`), so client processes need no S3 credentials, just as
on a real team server. Fault tests stop and restart the pieces through `TeamStack`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from support.git import make_repo
from support.mlflow_server import mlflow_server
from support.postgres import missing_reason, postgres_cluster
from support.procs import clean_env, free_port
from support.s3 import S3Store, moto_s3

ARTIFACT_PREFIX = "mlflow-artifacts"

# The tags every enriched run carries (DESIGN.md), whatever the run did.
CORE_TAGS = (
    "repro.manifest.digest",
    "repro.env.digest",
    "repro.env.python",
    "repro.git.commit",
    "repro.git.dirty",
    "repro.seed",
    "repro.track",
)


class TeamStack:
    """Handles on the running stack, with the restarts the fault tests need."""

    CORE_TAGS = CORE_TAGS

    def __init__(self, workdir: Path, db_uri: str, s3: S3Store) -> None:
        self.workdir = workdir
        self.db_uri = db_uri
        self.s3 = s3
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: AbstractContextManager[str] | None = None

    def start_server(self) -> None:
        """Start `mlflow server` on this stack's port (again, after a stop: same URL, same data)."""
        if self._server is not None:
            return
        server_env = {
            **self.s3.env,
            # Fewer botocore retries than its default: a dead store answers in about a second, not 15.
            "AWS_MAX_ATTEMPTS": "2",
            # Tracking only: MLflow 3's job runner (7 huey consumer processes) serves GenAI jobs.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        server = mlflow_server(
            self.workdir / "server",
            backend_uri=self.db_uri,
            artifacts_destination=self.s3.uri(ARTIFACT_PREFIX),
            port=self.port,
            extra_env=server_env,
        )
        server.__enter__()
        self._server = server

    def stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.__exit__(None, None, None)

    def client_env(self, **extra: str) -> dict[str, str]:
        """A training process's environment: the tracking URI and nothing of ours."""
        return clean_env(**{"MLFLOW_TRACKING_URI": self.url, **extra})

    def run_script(
        self, script: Path, *args: str, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`python script ARGS` from the script's folder against this server; fails the test if it fails."""
        proc = subprocess.run(
            [sys.executable, script.name, *args],
            cwd=script.parent,
            env=self.client_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"{script.name} failed ({proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc

    @staticmethod
    def printed(output: str, key: str) -> list[str]:
        """Values a script printed as `KEY value` lines (run ids, ranks...)."""
        return [
            line.split(None, 1)[1].strip()
            for line in output.splitlines()
            if line.startswith(key + " ")
        ]

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)

    def runs(self, experiment: str) -> list[Any]:
        """Every run of `experiment`, read back from the server."""
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return list(client.search_runs([exp.experiment_id], max_results=1000))

    def artifact_key(self, run: Any, path: str) -> str:
        """Where the server put a run's artifact in the bucket."""
        return f"{ARTIFACT_PREFIX}/{run.info.experiment_id}/{run.info.run_id}/artifacts/{path}"

    def s3_object(self, run: Any, path: str) -> bytes | None:
        """An artifact read straight from the object store, or None when it is not there."""
        try:
            obj = self.s3.client().get_object(
                Bucket=self.s3.bucket, Key=self.artifact_key(run, path)
            )
        except Exception as exc:  # botocore's NoSuchKey is generated at runtime
            if "NoSuchKey" in type(exc).__name__ or "NoSuchKey" in str(exc):
                return None
            raise
        return bytes(obj["Body"].read())

    def manifest(self, run: Any) -> dict[str, Any] | None:
        raw = self.s3_object(run, "repro/manifest.json")
        return json.loads(raw) if raw is not None else None

    def wait_for_object(self, run_id: str, path: str, timeout: float = 60) -> None:
        """Block until a run's artifact has landed in the bucket."""
        run = self.client().get_run(run_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.s3_object(run, path) is not None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{path} of run {run_id} not in the object store after {timeout}s")


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    """PostgreSQL + S3 + tracking server, shared by every team test; all stopped at the end."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("team-stack")
    with postgres_cluster() as db_uri, moto_s3(workdir / "s3") as s3:
        stack = TeamStack(workdir, db_uri, s3)
        stack.start_server()
        try:
            yield stack
        finally:
            stack.stop_server()


@pytest.fixture(autouse=True)
def _stack_whole_again(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fault test that fails half-way must not leave the store or the server down for the next."""
    yield
    if "team_stack" in request.fixturenames:
        stack: TeamStack = request.getfixturevalue("team_stack")
        stack.s3.start()
        stack.start_server()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A committed project the training scripts run from (a real team trains from git)."""
    return make_repo(
        tmp_path / "project",
        {"README.md": "team project\n", ".gitignore": "mlruns/\nwandb/\n*.flag\n"},
    )
