"""A training process killed with SIGKILL right after `start_run` returns: nothing of ours ran
after the run was created, nothing was written afterwards, and yet every reader tells the truth.

The run's creation tags announced `repro/manifest.json`; it never arrived. `mlrepro show` says
the record is incomplete, the production gate fails naming the file, exit 1, no traceback.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.procs import run_cli

pytestmark = [pytest.mark.team, pytest.mark.slow]

KILLED = """\
import os
import signal
import sys

import mlflow

mlflow.set_experiment(sys.argv[1])
run = mlflow.start_run()
print("RUN_ID", run.info.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

MISSING = "record incomplete: repro/manifest.json never arrived"
HOP_HEADERS = ("transfer-encoding", "connection", "content-length", "keep-alive", "server", "date")


class HoldingGateway:
    """Forwards every request to the tracking server except artifact uploads, which it holds
    unanswered: whatever the race between the kill and the uploader thread, no upload lands."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.held: list[str] = []
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "/mlflow-artifacts/" in self.path:
                    gateway.held.append(self.path)
                    gateway._release.wait(120)
                    return
                upstream = http.client.HTTPConnection(
                    "127.0.0.1", gateway.upstream_port, timeout=120
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                reply = upstream.getresponse()
                data = reply.read()
                upstream.close()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Forward


def test_a_run_killed_right_after_start_run_reads_as_incomplete(
    team_stack: Any, project: Path
) -> None:
    experiment = "team-killed"
    team_stack.client().create_experiment(experiment)
    (project / "train.py").write_text(KILLED)
    gateway = HoldingGateway(team_stack.port)
    try:
        proc = subprocess.run(
            [sys.executable, "train.py", experiment],
            cwd=project,
            env=team_stack.client_env(MLFLOW_TRACKING_URI=gateway.url),
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        gateway.close()
    assert proc.returncode == -9, proc.stderr[-4000:]  # SIGKILL: no exit hook of ours ran
    [run_id] = team_stack.printed(proc.stdout, "RUN_ID")

    run = team_stack.client().get_run(run_id)
    assert run.info.status == "RUNNING"  # nobody ended it
    assert run.data.tags["repro.manifest.digest"].startswith("blake3:")
    assert run.data.tags["repro.artifacts"] == "manifest.json,code.diff"  # train.py is uncommitted
    assert "repro.capture.errors" not in run.data.tags  # no note written, none to delete
    assert team_stack.s3_object(run, "repro/manifest.json") is None

    env = team_stack.client_env()
    shown = run_cli("show", run_id, "--tracking-uri", team_stack.url, env=env, timeout=120)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert MISSING in shown.stdout, shown.stdout + shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr

    gate = run_cli(
        "check", run_id, "--track", "production", "--tracking-uri", team_stack.url,
        env=env, timeout=120,
    )  # fmt: skip
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "repro/manifest.json" in gate.stdout and MISSING in gate.stdout, gate.stdout
    assert "Traceback" not in gate.stdout + gate.stderr
