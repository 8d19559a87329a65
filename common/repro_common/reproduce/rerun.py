"""Run reproduce.sh: output to reproduce.log and, line by line, to the caller; a timeout stops it."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from repro_common.reproduce import tracking
from repro_common.reproduce.workspace import LOG, Step, Workspace


@dataclass
class RunResult:
    returncode: int
    started_at: float
    seconds: float
    log: Path
    tail: list[str]


def run_script(
    ws: Workspace, timeout: float | None = None, on_line: Step | None = None
) -> RunResult:
    """Run reproduce.sh, output to reproduce.log and, line by line, to `on_line`."""
    emit = on_line or (lambda _line: None)
    dropped = set(tracking.dropped_variables())
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(ws.secret_env)
    env["PYTHON"] = ws.python
    log_path = ws.root / LOG
    started = time.time()
    tail: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", str(ws.script)],
            cwd=ws.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                log.write(line)
                stripped = line.rstrip()
                if stripped:
                    tail.append(stripped)
                    del tail[:-20]
                    emit(stripped)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            tail.append(f"mlrepro: stopped after the {timeout:.0f}s timeout")
            code = 124
        reader.join(timeout=10)
    return RunResult(code, started, time.time() - started, log_path, list(tail))
