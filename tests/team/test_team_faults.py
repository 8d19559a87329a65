"""Faults of a shared deployment: the object store goes away, the tracking server restarts.

Training must never wait on us for longer than MLREPRO_UPLOAD_TIMEOUT, a run that lost
its artifacts must say so (and the gate must see it), and a brief server restart must
cost nothing once the server is back.
"""

from __future__ import annotations

import http.client
import itertools
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.procs import run_cli

pytestmark = [pytest.mark.team, pytest.mark.slow]

UPLOAD_TIMEOUT = 4  # seconds; small so that the test is quick
# Two runs and the exit on a busy 2-core machine, with room: what the bound must catch is a
# wait on MLflow's own HTTP retries (7 retries, backoff up to 120 s: minutes), not seconds.
SLACK = 75

TRAIN = """\
import os
import sys
import time

import mlflow

mlflow.set_experiment(sys.argv[1])


def train(name):
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_metric("loss", 0.5)
    print("RUN_ID", run.info.run_id, flush=True)


def wait_for(flag):
    while not os.path.exists(flag):
        time.sleep(0.05)


train("before")
wait_for("store-stopped.flag")
print("RESUMED", time.time(), flush=True)
train("during-1")
train("during-2")
"""

HELD_RUN = """\
import os
import sys
import time

import mlflow

mlflow.set_experiment(sys.argv[1])
run = mlflow.start_run()
print("RUN_ID", run.info.run_id, flush=True)
while not os.path.exists("server-back.flag"):
    time.sleep(0.05)
mlflow.end_run()
"""


def _gate(stack: Any, run_id: str) -> subprocess.CompletedProcess[str]:
    """`mlrepro check RUN --json` against the team server, as CI would run it."""
    return run_cli(
        "check", run_id, "--json", "--tracking-uri", stack.url, env=stack.client_env(), timeout=120
    )


def _show(stack: Any, run_id: str) -> subprocess.CompletedProcess[str]:
    """`mlrepro show RUN` against the team server, as a user would type it."""
    return run_cli("show", run_id, "--tracking-uri", stack.url, env=stack.client_env(), timeout=120)


def _wait_line(proc: subprocess.Popen[str], key: str, timeout: float) -> str:
    """Read stdout until a `KEY value` line; the value."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(key + " "):
            return line.split(None, 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(
        f"no {key} line from the script; stderr:\n{proc.stderr.read()[-4000:] if proc.stderr else ''}"
    )


def test_object_store_down_runs_finish_in_bounded_time_and_say_what_is_missing(
    team_stack: Any, project: Path
) -> None:
    experiment = "team-store-down"
    (project / "train.py").write_text(TRAIN)
    proc = subprocess.Popen(
        [sys.executable, "train.py", experiment],
        cwd=project,
        env=team_stack.client_env(MLREPRO_UPLOAD_TIMEOUT=str(UPLOAD_TIMEOUT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = _wait_line(proc, "RUN_ID", 120)
        team_stack.wait_for_object(before, "repro/manifest.json")
        passed = _gate(team_stack, before)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        team_stack.s3.stop()  # moto forgets its objects: this run's record is checked above
        (project / "store-stopped.flag").touch()
        out, err = proc.communicate(timeout=UPLOAD_TIMEOUT + SLACK + 90)
        finished = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
        team_stack.s3.start()
    assert proc.returncode == 0, err[-4000:]
    resumed = float(team_stack.printed(out, "RESUMED")[0])
    during = team_stack.printed(out, "RUN_ID")
    assert len(during) == 2
    # The documented bound: at exit the process waits at most MLREPRO_UPLOAD_TIMEOUT for uploads,
    # not for MLflow's own HTTP retries (minutes with its default backoff): a bound with room.
    assert finished - resumed < UPLOAD_TIMEOUT + SLACK, (
        f"took {finished - resumed:.1f}s with the store down"
    )

    client = team_stack.client()
    healthy = client.get_run(before)
    assert "repro.capture.errors" not in healthy.data.tags
    for run_id in during:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags.get("repro.manifest.digest"), "the tags do not depend on the store"
        # Its creation tags announced the manifest; a reader finds it never arrived. (The process
        # also tags the failure when it sees it before its exit bound runs out.)
        shown = _show(team_stack, run_id)
        assert shown.returncode == 1, shown.stdout + shown.stderr
        assert "record incomplete: repro/manifest.json never arrived" in shown.stdout, (
            f"run {run_id} does not say its artifacts are missing: {shown.stdout}"
        )

    # CI's gate sees it too (one run is enough: the gate reads the same artifacts).
    gate = _gate(team_stack, during[0])
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "manifest" in json.loads(gate.stdout)["failed"], gate.stdout


HOP_HEADERS = (
    "transfer-encoding",
    "connection",
    "content-length",
    "keep-alive",
    "server",
    "date",
    "host",
)
CREATE_RUN = "/api/2.0/mlflow/runs/create"


class RestartGateway:
    """A reverse proxy in front of the tracking server, as teams put nginx in front of MLflow.

    It forwards every request, until the server has answered a `runs/create`: from then
    on, until `reopen()`, it answers 502 Bad Gateway (what nginx says while its upstream
    restarts) and notes when each attempt came. So the run exists, and nothing the
    process sends after that reaches the server before it has been restarted.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.created = threading.Event()
        self.refused: list[tuple[float, str, str]] = []  # (time, method, path) answered 502
        self.uploads: list[str] = []  # artifact paths stored through the gateway
        self._down = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def reopen(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gateway._down.is_set():
                    gateway.refused.append((time.monotonic(), self.command, self.path))
                    self._reply(502, [("Content-Type", "text/html")], b"<h1>502 Bad Gateway</h1>")
                    return
                upstream = http.client.HTTPConnection(
                    "127.0.0.1", gateway.upstream_port, timeout=120
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                reply = upstream.getresponse()
                data = reply.read()
                upstream.close()
                if (
                    self.path.startswith(CREATE_RUN)
                    and reply.status == 200
                    and not gateway.created.is_set()
                ):
                    gateway._down.set()  # before the client even reads the reply
                    gateway.created.set()
                if (
                    self.command == "PUT"
                    and "/mlflow-artifacts/" in self.path
                    and reply.status == 200
                ):
                    gateway.uploads.append(self.path)
                self._reply(reply.status, reply.getheaders(), data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        return Forward


def test_server_restart_between_run_creation_and_upload_upload_retries_and_succeeds(
    team_stack: Any, project: Path
) -> None:
    from mlflow_repro_plugin.failures import FIRST_BACKOFF
    from repro_common.manifest import Manifest

    experiment = "team-server-restart"
    team_stack.client().create_experiment(experiment)
    (project / "train.py").write_text(HELD_RUN)
    gateway = RestartGateway(team_stack.port)
    proc = subprocess.Popen(
        [sys.executable, "train.py", experiment],
        cwd=project,
        # MLflow's own HTTP retries off: what must bridge the outage is the plugin's retry loop.
        env=team_stack.client_env(
            MLFLOW_TRACKING_URI=gateway.url,
            MLREPRO_UPLOAD_TIMEOUT="120",
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gateway.created.wait(120), "the run was never created"
        team_stack.stop_server()
        team_stack.start_server()  # same port, same database: the run is still there
        gateway.reopen()
        (project / "server-back.flag").touch()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        gateway.close()
    assert proc.returncode == 0, err[-4000:]
    [run_id] = team_stack.printed(out, "RUN_ID")

    run = team_stack.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "repro.capture.errors" not in run.data.tags, run.data.tags["repro.capture.errors"]
    raw = team_stack.s3_object(run, "repro/manifest.json")
    assert raw is not None, "the upload gave up instead of retrying until the server was back"
    assert Manifest.from_json(raw).digest == run.data.tags["repro.manifest.digest"]
    assert any(path.endswith("repro/manifest.json") for path in gateway.uploads), gateway.uploads

    # It kept trying while the server was away (the script's own thread was idle, waiting),
    # and backed off rather than hammering the gateway.
    attempts = [when for when, _, _ in gateway.refused]
    assert len(attempts) >= 3, gateway.refused
    # Counted, not timed (each delay is jittered by +-25 %): retrying every FIRST_BACKOFF
    # (50 ms) through the outage would make span/0.05 attempts; backing off makes a few.
    span = attempts[-1] - attempts[0]
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) <= 4 + span / (4 * FIRST_BACKOFF), (
        f"no backoff: {len(attempts)} attempts in {span:.1f}s, gaps {gaps[:12]}..."
    )
