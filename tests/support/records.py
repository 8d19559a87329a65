"""Real records to read back: MLflow runs made by a fresh interpreter, and a server that stalls.

The security tests look at what a run really left in its store (every tag, param
and artifact byte), so runs are made the way users make them: a script started
with `python train.py ...` in a git checkout, the plugin loaded by MLflow's entry
point, the record read back through `MlflowClient`.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support.procs import PYTHON, clean_env

MLFLOW_TRAIN = """\
import json, os, sys
import mlflow
import repro_common

for spec in json.loads(os.environ.get("TRACK_INPUTS", "[]")):
    repro_common.track_data(spec["path"], spec["name"], source=spec.get("source"))
with mlflow.start_run() as run:
    mlflow.log_param("lr", "0.1")
print("RUN_ID=" + run.info.run_id)
"""


@dataclass
class StoredRun:
    """Everything one MLflow run holds: tags, params and every artifact's bytes."""

    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    artifacts: dict[str, bytes]
    stderr: str

    def everything(self) -> bytes:
        """All of it as one blob, for canary searches."""
        parts = [json.dumps(self.tags), json.dumps(self.params)]
        blob = "\n".join(parts).encode()
        return blob + b"\n" + b"\n".join(self.artifacts.values())


def run_mlflow_script(
    repo: Path,
    uri: str,
    args: list[str] | None = None,
    script: str = "train.py",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`python <script> ARGS` in `repo` against the store `uri`, as a user starts training."""
    return subprocess.run(
        [PYTHON, script, *(args or [])],
        cwd=repo,
        env=clean_env(MLFLOW_TRACKING_URI=uri, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_run(uri: str, proc: subprocess.CompletedProcess[str]) -> StoredRun:
    """The run a script printed `RUN_ID=` for, read back through MlflowClient."""
    from mlflow.tracking import MlflowClient

    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = [line for line in proc.stdout.splitlines() if line.startswith("RUN_ID=")][-1][7:]
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    artifacts: dict[str, bytes] = {}
    pending = [""]
    while pending:
        for info in client.list_artifacts(run_id, pending.pop() or None):
            if info.is_dir:
                pending.append(info.path)
            else:
                local = client.download_artifacts(run_id, info.path)
                artifacts[info.path] = Path(local).read_bytes()
    return StoredRun(run_id, dict(run.data.tags), dict(run.data.params), artifacts, proc.stderr)


class _StallingHandler(BaseHTTPRequestHandler):
    server: _StallingServer

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and "/artifacts/" in self.path and self.server.take_failure():
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        upstream.request(self.command, self.path, body=body, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _StallingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _StallingHandler)
        host_port = upstream.split("://", 1)[1].rstrip("/")
        self.upstream_host, port = host_port.split(":")
        self.upstream_port = int(port)
        self.failures_left = failures
        self.failures_served = 0
        self._lock = threading.Lock()

    def take_failure(self) -> bool:
        with self._lock:
            if self.failures_left <= 0:
                return False
            self.failures_left -= 1
            self.failures_served += 1
            return True


@contextmanager
def stalling_proxy(upstream: str, failures: int) -> Iterator[_StallingServer]:
    """A tracking URI in front of `upstream` whose first `failures` artifact uploads get 503.

    A real server that is briefly overloaded: every other request goes through.
    """
    server = _StallingServer(upstream, failures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def proxy_url(server: _StallingServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
