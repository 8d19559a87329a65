"""A real `mlflow server` on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.procs import clean_env, free_port


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout}s")


@contextmanager
def mlflow_server(
    workdir: Path,
    backend_uri: str | None = None,
    artifacts_destination: str | None = None,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    app_name: str | None = None,
    python: str | None = None,
) -> Iterator[str]:
    """Yield the server's http URI; stop it (and its workers) afterwards.

    `app_name` serves an `mlflow.app` entry point; `python` runs the server with
    another interpreter (one whose installed mlrepro declares that entry point)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    backend_uri = backend_uri or f"sqlite:///{workdir / 'server.db'}"
    artifacts_destination = artifacts_destination or str(workdir / "artifacts")
    mlflow_bin = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    url = f"http://127.0.0.1:{port}"
    launcher = [python, "-m", "mlflow"] if python else [mlflow_bin]
    command = [
        *launcher, "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts_destination,
        "--workers", "1",
        *(["--app-name", app_name] if app_name else []),
    ]  # fmt: skip
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            # MLflow 3's job runner adds 7 worker processes the tests never use.
            env=clean_env(**{"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(extra_env or {})}),
            start_new_session=True,
        )
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server and its workers, SIGKILL after 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# uvicorn's access log line: `"POST /api/2.0/mlflow/runs/create HTTP/1.1" 200`.
REQUEST = re.compile(rb'"(GET|POST|PUT|PATCH|DELETE) (/api/[^ ?"]*)[^"]* HTTP/1.1" ')
ARTIFACT_ENDPOINT = "/api/2.0/mlflow-artifacts/"


def requests_logged(server_log: Path, offset: int = 0) -> tuple[Counter[str], int]:
    """(API requests the server logged after byte `offset`, by endpoint; the new offset).

    Artifact requests are one endpoint whatever the file: `PUT .../mlflow-artifacts/artifacts/<file>`.
    """
    with open(server_log, "rb") as handle:
        handle.seek(offset)
        text = handle.read()
    kinds: Counter[str] = Counter()
    for method, path in REQUEST.findall(text):
        name = path.decode()
        if name.startswith(ARTIFACT_ENDPOINT):
            name = ARTIFACT_ENDPOINT + "artifacts/<file>"
        kinds[f"{method.decode()} {name}"] += 1
    return kinds, offset + len(text)
