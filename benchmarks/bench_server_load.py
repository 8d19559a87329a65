"""Runs per second on a shared team server, 16 processes at once, with the plugin vs MLREPRO_DISABLE=1.

The deployment is the one the team tests start: PostgreSQL backend store, moto S3
artifact destination, `mlflow server` in front (artifacts proxied). Each round starts
N worker processes; each imports mlflow, sets its seed, registers a data shard and
waits at a start line; the clock starts when all are released and stops when the last
one has exited, so it covers the plugin's capture (unless the background prefetch had
finished by then, as it usually has in real scripts), its tags, its `repro/` uploads
and the wait for them at exit. Modes alternate round by round on the same server;
the ratio of medians is printed (target >= 0.95). A run is a short training loop:
two params and one metric per step (--steps, default 10), one request each.

    .venv/bin/python benchmarks/bench_server_load.py [--processes 16] [--runs 4] [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.git import make_repo  # noqa: E402
from support.mlflow_server import mlflow_server  # noqa: E402
from support.postgres import missing_reason, postgres_cluster  # noqa: E402
from support.procs import clean_env  # noqa: E402
from support.s3 import moto_s3  # noqa: E402

WORKER = """\
import os
import sys
import time

import mlflow
import repro_common

worker, runs, experiment, go, steps = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
shard = f"shard-{worker}.bin"
with open(shard, "wb") as handle:
    handle.write(f"rows of worker {worker}\\n".encode() * 512)
repro_common.seed_everything(1000 + worker)
repro_common.track_data(shard, name="shard")
mlflow.set_experiment(experiment)
open(f"ready-{worker}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
for index in range(runs):
    with mlflow.start_run():
        mlflow.log_params({"worker": worker, "index": index})
        for step in range(steps):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
"""


REQUEST = re.compile(rb'"(GET|POST|PUT|PATCH|DELETE) (/api/[^ ?"]*)[^"]* HTTP/1.1" ')


def requests_logged(server_log: Path, offset: int) -> tuple[Counter[str], int]:
    """(API requests the server logged after `offset`, by endpoint; the new offset)."""
    with open(server_log, "rb") as handle:
        handle.seek(offset)
        text = handle.read()
    kinds: Counter[str] = Counter()
    for method, path in REQUEST.findall(text):
        if path.startswith(b"/api/2.0/mlflow-artifacts/"):
            path = b"/api/2.0/mlflow-artifacts/artifacts/<file>"
        kinds[f"{method.decode()} {path.decode()}"] += 1
    return kinds, offset + len(text)


def one_round(
    repo: Path,
    url: str,
    server_log: Path,
    experiment: str,
    processes: int,
    runs: int,
    steps: int,
    disabled: bool,
) -> tuple[float, Counter[str]]:
    """(seconds from the start line to the last worker's exit, requests the server served meanwhile)."""
    for stale in [*repo.glob("ready-*"), repo / "go.flag"]:
        stale.unlink(missing_ok=True)
    # Telemetry off in both modes: offline, MLflow's telemetry thread pops an environment variable
    # while other threads iterate os.environ (requests' proxy lookup), a race that kills runs.
    env = clean_env(
        MLFLOW_TRACKING_URI=url,
        MLFLOW_DISABLE_TELEMETRY="true",
        **({"MLREPRO_DISABLE": "1"} if disabled else {}),
    )
    go = repo / "go.flag"
    procs = [
        subprocess.Popen(
            [sys.executable, "worker.py", str(w), str(runs), experiment, str(go), str(steps)],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]
    while not all((repo / f"ready-{w}").exists() for w in range(processes)):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        if failed:
            raise SystemExit(
                f"a worker failed before the start line:\n{failed[0].communicate()[1][-3000:]}"
            )
        time.sleep(0.05)
    time.sleep(1.0)  # let import-time background work settle, as it would while a script loads data
    _, offset = requests_logged(server_log, 0)
    start = time.perf_counter()
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed:\n{err[-3000:]}")
    seconds = time.perf_counter() - start
    time.sleep(0.5)  # the server's last log lines
    return seconds, requests_logged(server_log, offset)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=4, help="runs per process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode (alternated)")
    parser.add_argument(
        "--steps", type=int, default=10, help="metric steps logged per run (one request each)"
    )
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        raise SystemExit(f"cannot start PostgreSQL: {reason}")

    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        work = Path(tmp)
        repo = make_repo(
            work / "project", {"worker.py": WORKER, ".gitignore": "shard-*\nready-*\ngo.flag\n"}
        )
        with postgres_cluster() as db_uri, moto_s3(work / "s3") as s3:
            server_env = {
                **s3.env,
                "AWS_MAX_ATTEMPTS": "2",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
            with mlflow_server(
                work / "server",
                backend_uri=db_uri,
                artifacts_destination=s3.uri("artifacts"),
                extra_env=server_env,
            ) as url:
                from mlflow.tracking import MlflowClient

                client = MlflowClient(tracking_uri=url)
                server_log = work / "server" / "server.log"
                times: dict[str, list[float]] = {"plugin": [], "disabled": []}
                served: dict[str, list[int]] = {"plugin": [], "disabled": []}
                kinds: dict[str, Counter[str]] = {"plugin": Counter(), "disabled": Counter()}
                # Warm-up round (server caches, connection pools, first S3 client), not counted.
                client.create_experiment("warmup")
                one_round(
                    repo, url, server_log, "warmup", args.processes, 1, args.steps, disabled=False
                )
                for number in range(args.rounds):
                    for mode in (
                        ("plugin", "disabled") if number % 2 == 0 else ("disabled", "plugin")
                    ):
                        experiment = f"load-{mode}-{number}"
                        experiment_id = client.create_experiment(experiment)
                        seconds, requests = one_round(
                            repo,
                            url,
                            server_log,
                            experiment,
                            args.processes,
                            args.runs,
                            args.steps,
                            disabled=mode == "disabled",
                        )
                        made = len(client.search_runs([experiment_id], max_results=10000))
                        assert made == args.processes * args.runs, (
                            f"{made} runs, expected {args.processes * args.runs}"
                        )
                        times[mode].append(seconds)
                        served[mode].append(sum(requests.values()))
                        kinds[mode].update(requests)
                        print(
                            f"round {number} {mode:8s} {seconds:6.2f}s  {made / seconds:6.2f} runs/s"
                            f"  {sum(requests.values()) / made:5.1f} server requests/run",
                            flush=True,
                        )

    total = args.processes * args.runs
    rate = {mode: total / statistics.median(values) for mode, values in times.items()}
    print(
        f"processes={args.processes} runs/process={args.runs} metric steps/run={args.steps} rounds/mode={args.rounds}"
    )
    per_run = {mode: statistics.median(values) / total for mode, values in served.items()}
    print(f"plugin:   {rate['plugin']:.2f} runs/s (median), {per_run['plugin']:.1f} requests/run")
    print(
        f"disabled: {rate['disabled']:.2f} runs/s (median), {per_run['disabled']:.1f} requests/run"
    )
    runs_per_mode = total * args.rounds
    print("requests per run by endpoint (plugin vs disabled):")
    for kind in sorted(set(kinds["plugin"]) | set(kinds["disabled"])):
        with_plugin = kinds["plugin"][kind] / runs_per_mode
        without = kinds["disabled"][kind] / runs_per_mode
        extra = f"  (+{with_plugin - without:.1f})" if with_plugin - without >= 0.05 else ""
        print(f"   {with_plugin:5.1f} {without:5.1f}  {kind}{extra}")
    print(f"ratio plugin/disabled: {rate['plugin'] / rate['disabled']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
