"""Whole-process cost of the MLflow plugin on a minimal tracked script, plugin on vs MLREPRO_DISABLE=1.

    .venv/bin/python benchmarks/bench_mlflow_overhead.py [--rounds 12]

The script is what every MLflow user runs: import mlflow, start a run on a SQLite
store, log 10 metrics, end the run, exit. It runs in a fresh interpreter each
time, inside a small committed git project, against a store created beforehand
(a first run creates and migrates the database; that is MLflow's cost, paid once).
The wall time includes everything we add: the background capture started at
`import mlflow`, the tags in `start_run`, and the wait at exit for the `repro/`
upload. Rounds alternate plugin/disabled so machine load hits both alike; medians.
Target: wall ratio <= 1.03.

Also printed: CPU time (user + system) of the same processes, which a busy machine
disturbs less than wall time; `start_run` as timed inside the script; and the import
cost of `mlflow_repro_plugin` alone (against a bare interpreter, alternated too):
lazily (all MLREPRO_DISABLE=1 pays) and with the core that the enabled provider
loads during `import mlflow` (which the wall ratio above includes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
SIDES = ("plugin", "disabled")
IMPORTS = {
    "lazy": "import mlflow_repro_plugin",  # what `import mlflow` pays with MLREPRO_DISABLE=1
    "core": "import mlflow_repro_plugin as repro; repro.capture",  # ... and with the plugin on
    "bare": "pass",
}


def _env(store: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLREPRO_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=store, **extra)
    return env


def _timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child: user + system, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{proc.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, proc.stdout


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


def compile_our_packages() -> None:
    """Byte-compile our sources as `pip install` does for MLflow's, so that an editable
    checkout under PYTHONDONTWRITEBYTECODE=1 is not charged for compiling on every run."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for folder in ("common/repro_common", "mlflow_repro_plugin", "wandb_repro_plugin"):
        compileall.compile_dir(root / folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=12, help="runs per side (>= 10)")
    opts = parser.parse_args()
    compile_our_packages()

    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    start: dict[str, list[float]] = {side: [] for side in SIDES}
    imports: dict[str, list[float]] = {"lazy": [], "core": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="mlrepro-bench-") as tmp:
        root = Path(tmp)
        project = _project(root)
        store = f"sqlite:///{root / 'mlflow.db'}"
        _timed(
            ["train.py"], project, _env(store, MLREPRO_DISABLE="1")
        )  # create + migrate the store
        _, _, out = _timed(
            ["train.py"], project, _env(store)
        )  # warm caches; prove the plugin works
        _check_recorded(store, out)

        for index in range(opts.rounds):
            for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                extra = {"MLREPRO_DISABLE": "1"} if side == "disabled" else {}
                elapsed, used, out = _timed(["train.py"], project, _env(store, **extra))
                wall[side].append(elapsed)
                cpu[side].append(used)
                start[side].append(json.loads(out.strip().splitlines()[-1])["start_run"])
            for kind, code in IMPORTS.items():
                imports[kind].append(_timed(["-c", code], project, _env(store))[0])

    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    smed = {k: statistics.median(v) for k, v in start.items()}
    imed = {k: statistics.median(v) for k, v in imports.items()}
    ratio = med["plugin"] / med["disabled"]
    verdict = "OK" if ratio <= 1.03 else "OVER TARGET"
    print(
        f"minimal tracked script, {opts.rounds} fresh processes per side, alternated, medians; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for side, label in (("plugin", "plugin enabled   "), ("disabled", "MLREPRO_DISABLE=1")):
        print(
            f"  {label}  wall {med[side]:.3f} s  cpu {cmed[side]:.3f} s  "
            f"start_run {smed[side] * 1000:.1f} ms"
        )
    print(f"  wall ratio         {ratio:.3f}  (target <= 1.03) {verdict}")
    print(
        f"  cpu ratio          {cmed['plugin'] / cmed['disabled']:.3f}  (less sensitive to machine load)"
    )
    print(f"  start_run overhead {(smed['plugin'] - smed['disabled']) * 1000:+.1f} ms")
    print(
        f"import mlflow_repro_plugin alone: {(imed['lazy'] - imed['bare']) * 1000:.1f} ms "
        f"(names resolved lazily), {(imed['core'] - imed['bare']) * 1000:.1f} ms with the core "
        f"(what the provider pulls in when enabled), over a bare interpreter ({imed['bare'] * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
