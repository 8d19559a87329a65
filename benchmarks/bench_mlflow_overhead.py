"""Whole-process cost of the MLflow plugin on a minimal tracked script, plugin on vs MLREPRO_DISABLE=1.

    .venv/bin/python benchmarks/bench_mlflow_overhead.py [--rounds 12]

The script is what every MLflow user runs: import mlflow, start a run on a SQLite
store, log 10 metrics, end the run, exit. It runs in a fresh interpreter each
time, inside a small committed git project, against a store created beforehand
(a first run creates and migrates the database; that is MLflow's cost, paid once).
The wall time includes everything we add: the background capture started at
`import mlflow`, the tags in `start_run`, and the wait at exit for the `repro/`
upload. Rounds alternate plugin/disabled so machine load hits both alike; medians.
Target: ratio <= 1.03.

Also printed: `start_run` as timed inside the script, and the import cost of
`mlflow_repro_plugin` alone (against a bare interpreter, alternated too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import json, time
import mlflow
mlflow.set_experiment("bench")
t0 = time.perf_counter()
run = mlflow.start_run()
t1 = time.perf_counter()
for step in range(10):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
mlflow.end_run()
print(json.dumps({"start_run": t1 - t0, "run_id": run.info.run_id}))
"""


def _env(store: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLREPRO_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=store, **extra)
    return env


def _wall(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{proc.stderr[-4000:]}")
    return elapsed, proc.stdout


def _project(root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    (project / "train.py").write_text(SCRIPT)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], cwd=project, check=True)
    return project


def _check_recorded(store: str, stdout: str) -> None:
    from mlflow.tracking import MlflowClient

    run_id = json.loads(stdout.strip().splitlines()[-1])["run_id"]
    client = MlflowClient(store)
    tags = client.get_run(run_id).data.tags
    names = {a.path for a in client.list_artifacts(run_id, "repro")}
    if "repro.manifest.digest" not in tags or "repro/manifest.json" not in names:
        raise SystemExit(
            f"the plugin did not record run {run_id}: tags={sorted(tags)} artifacts={names}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=12, help="runs per side (>= 10)")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        root = Path(tmp)
        project = _project(root)
        store = f"sqlite:///{root / 'mlflow.db'}"
        _wall(["train.py"], project, _env(store, MLREPRO_DISABLE="1"))  # create + migrate the store
        _, out = _wall(
            ["train.py"], project, _env(store)
        )  # warm caches; and prove the plugin works
        _check_recorded(store, out)

        wall: dict[str, list[float]] = {"plugin": [], "disabled": []}
        start: dict[str, list[float]] = {"plugin": [], "disabled": []}
        for index in range(opts.rounds):
            order = ("plugin", "disabled") if index % 2 == 0 else ("disabled", "plugin")
            for side in order:
                extra = {} if side == "plugin" else {"MLREPRO_DISABLE": "1"}
                elapsed, out = _wall(["train.py"], project, _env(store, **extra))
                wall[side].append(elapsed)
                start[side].append(json.loads(out.strip().splitlines()[-1])["start_run"])

        imports: dict[str, list[float]] = {"mlflow_repro_plugin": [], "bare": []}
        for _ in range(opts.rounds):
            imports["mlflow_repro_plugin"].append(
                _wall(["-c", "import mlflow_repro_plugin"], project, _env(store))[0]
            )
            imports["bare"].append(_wall(["-c", "pass"], project, _env(store))[0])

    med = {k: statistics.median(v) for k, v in wall.items()}
    smed = {k: statistics.median(v) for k, v in start.items()}
    imed = {k: statistics.median(v) for k, v in imports.items()}
    ratio = med["plugin"] / med["disabled"]
    print(f"minimal tracked script, {opts.rounds} fresh processes per side, alternated (medians)")
    print(
        f"  plugin enabled     {med['plugin']:.3f} s   (start_run {smed['plugin'] * 1000:.1f} ms)"
    )
    print(
        f"  MLREPRO_DISABLE=1  {med['disabled']:.3f} s   (start_run {smed['disabled'] * 1000:.1f} ms)"
    )
    print(
        f"  ratio              {ratio:.3f}   (target <= 1.03) {'OK' if ratio <= 1.03 else 'OVER TARGET'}"
    )
    print(f"  start_run overhead {(smed['plugin'] - smed['disabled']) * 1000:+.1f} ms")
    print(
        f"import mlflow_repro_plugin: {(imed['mlflow_repro_plugin'] - imed['bare']) * 1000:.1f} ms over a bare "
        f"interpreter ({imed['bare'] * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
