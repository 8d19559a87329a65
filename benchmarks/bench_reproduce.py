"""Time from `mlrepro reproduce RUN --run` to its verdict, for the quickstart's training run.

    .venv/bin/python benchmarks/bench_reproduce.py [--repeat N (default 3, at least 3)] [--epochs E]

Measured side by side in one process, all as fresh subprocesses:
  original   `python examples/quickstart.py train` (the run being reproduced)
  reproduce  `mlrepro reproduce RUN --run` with the current interpreter
  venv       `mlrepro reproduce RUN --run --venv --system-site-packages` (a new venv that
             sees this interpreter's packages, so only missing or mismatched pins install)
A full `--venv` without --system-site-packages downloads every pinned package
(torch included) and is not timed here.
Prints each run, then medians over N repeats (at least 3: a median of one run is no
statistic) and the ratio to the original run's median; "the reproduced training" is the
median time the rerun itself took (from the verdict), "overhead" the median whole command
minus it (clone, diff, checks, finding and comparing the new run).
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

ROOT = Path(__file__).resolve().parents[1]


def timed(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repeats, at least 3 (default 3)")
    parser.add_argument("--epochs", type=int, default=4)
    options = parser.parse_args()
    if options.repeat < 3:
        parser.error("--repeat must be at least 3: the figures are medians")
    work = Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREPRO_")}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(work),
        MLREPRO_TRACK="production",
        PYTHONHASHSEED="0",
    )
    python = sys.executable
    cli = [python, "-m", "repro_common", "reproduce"]
    rows: dict[str, list[float]] = {"original": [], "reproduce": [], "venv": []}
    rerun: dict[str, list[float]] = {"reproduce": [], "venv": []}
    for i in range(options.repeat):
        seconds, proc = timed(
            [python, "examples/quickstart.py", "train", "--epochs", str(options.epochs)], env, ROOT
        )
        if proc.returncode != 0:
            sys.exit(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        rows["original"].append(seconds)
        print(f"  repeat {i + 1}: original  training {seconds:6.1f}s", flush=True)
        run_id = next(
            ln.split("=", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("RUN_ID=")
        )
        for name, extra in (("reproduce", []), ("venv", ["--venv", "--system-site-packages"])):
            target = work / f"{name}-{i}"
            seconds, proc = timed(
                [*cli, run_id, "--run", "--json", "--dir", str(target), *extra], env, ROOT
            )
            try:
                report = json.loads(proc.stdout)
            except ValueError:
                sys.exit(f"{name} gave no report (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            verdict = report.get("verdict") or {}
            print(
                f"  repeat {i + 1}: {name:9s} whole command {seconds:6.1f}s  exit {proc.returncode}  "
                f"{verdict.get('reason', proc.stderr.strip()[-200:])}",
                flush=True,
            )
            rows[name].append(seconds)
            rerun[name].append(float(report.get("seconds") or 0.0))
    base = statistics.median(rows["original"])
    print(f"\nmedians of {options.repeat} repeats (fresh processes, {os.cpu_count()} CPUs)")
    print(f"  {'command':30s} {'median':>7s}  {'/ original':>10s}")
    print(f"  original training run          {base:6.1f}s  1.00x")
    for name, label in (("reproduce", "reproduce --run"), ("venv", "reproduce --run --venv (*)")):
        total, inner = statistics.median(rows[name]), statistics.median(rerun[name])
        print(
            f"  {label:30s} {total:6.1f}s  {total / base:4.2f}x   "
            f"(of which the reproduced training {inner:.1f}s, overhead {total - inner:.1f}s)"
        )
    print("  (*) with --system-site-packages; the promise is a rebuild within 30 minutes")
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
