"""Screenshot an MLflow run page with the mlrepro record on it (by hand, not in CI).

    .venv/bin/python docs/screenshot_run_page.py [--out docs/mlflow-run-page.png]

Starts `mlflow server` on 127.0.0.1 with a throwaway SQLite store, runs a small
tracked script from a throwaway git project (an input tracked with `track_data`,
a seed, a few metrics), then has headless Chromium (Debian's `chromium` package:
`apt-get install -y chromium`) take two pictures of the run: its overview (tags,
the dataset, parameters, metrics) and its artifacts tab (`repro/manifest.json`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SCRIPT = """\
import mlflow
import mlflow_repro_plugin as repro

mlflow.set_experiment("churn-model")
repro.seed_everything(42)
repro.track_data("data/train.csv", "train")
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_params({"lr": 0.01, "epochs": 3})
    for epoch, loss in enumerate([0.9, 0.6, 0.45]):
        mlflow.log_metric("loss", loss, step=epoch)
print(run.info.experiment_id, run.info.run_id)
"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow server at {url} not healthy after {timeout}s")


def _project(root: Path) -> Path:
    project = root / "churn"
    (project / "data").mkdir(parents=True)
    (project / "train.py").write_text(SCRIPT.replace('"lr": 0.01', '"lr": 0.1'))
    (project / "data" / "train.csv").write_text("tenure,churned\n3,1\n40,0\n12,0\n")
    git = ["git", "-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run(["git", "add", "train.py"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "baseline model"], cwd=project, check=True)
    (project / "train.py").write_text(SCRIPT)  # an uncommitted tweak: the run gets repro/code.diff
    return project


def _screenshot(chromium: str, url: str, out: Path, profile: Path, size: str) -> None:
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DOCS / "mlflow-run-page.png")
    parser.add_argument("--artifacts-out", type=Path, default=DOCS / "mlflow-run-artifacts.png")
    parser.add_argument("--size", default="1400,1250", help="browser window, WIDTH,HEIGHT")
    opts = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get update && apt-get install -y chromium")

    with tempfile.TemporaryDirectory(prefix="mlrepro-shot-") as tmp:
        root = Path(tmp)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_healthy(url, server)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLREPRO_", "MLFLOW_"))}
            env["MLFLOW_TRACKING_URI"] = url
            done = subprocess.run(
                [sys.executable, "train.py"],
                cwd=_project(root),
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            experiment_id, run_id = done.stdout.split()[-2:]
            page = f"{url}/#/experiments/{experiment_id}/runs/{run_id}"
            _screenshot(chromium, page, opts.out, root / "chromium-1", opts.size)
            artifacts = f"{page}/artifacts/repro/manifest.json"
            _screenshot(chromium, artifacts, opts.artifacts_out, root / "chromium-2", "1400,1000")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
