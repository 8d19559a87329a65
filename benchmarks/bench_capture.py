"""Cold capture() against `import mlflow`, each in fresh processes, alternated.

The record is taken inside `mlflow.start_run`, so its cost is judged against what
every MLflow user already pays: importing MLflow. Target: a cold capture() costs
at most 5% of that import.

    .venv/bin/python benchmarks/bench_capture.py [--rounds 9] [--repo PATH]

Measured per round, each in a new interpreter, in this order (alternated so
machine load hits both sides alike):
  capture()          time inside the process around the first `repro_common.capture()`
  import+capture     the same process: `import repro_common` plus the capture
  process            wall time of `python -c 'import repro_common; repro_common.capture()'`
  import mlflow      wall time of `python -c 'import mlflow'`
  bare python        wall time of `python -c pass` (interpreter start-up, for reference)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

INNER = (
    "import time, json\n"
    "t0 = time.perf_counter()\n"
    "import repro_common\n"
    "t1 = time.perf_counter()\n"
    "m = repro_common.capture()\n"
    "t2 = time.perf_counter()\n"
    "print(json.dumps({'import': t1 - t0, 'capture': t2 - t1, 'errors': m.errors,"
    " 'packages': len(m.environment.get('packages') or []), 'commit': m.code.get('commit')}))\n"
)


def _wall(code: str, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{proc.stderr}")
    return elapsed, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="checkout to capture in",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREPRO_")}
    env["PYTHONWARNINGS"] = "ignore"

    samples: dict[str, list[float]] = {
        k: [] for k in ("capture", "import_capture", "process", "mlflow", "bare")
    }
    info: dict = {}
    for _ in range(args.rounds):
        _, out = _wall(INNER, args.repo, env)
        info = json.loads(out)
        samples["capture"].append(info["capture"])
        samples["import_capture"].append(info["import"] + info["capture"])
        samples["process"].append(
            _wall("import repro_common; repro_common.capture()", args.repo, env)[0]
        )
        samples["mlflow"].append(_wall("import mlflow", args.repo, env)[0])
        samples["bare"].append(_wall("pass", args.repo, env)[0])

    med = {k: statistics.median(v) for k, v in samples.items()}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} rounds, repo {args.repo}"
    )
    print(
        f"distributions recorded: {info['packages']}, commit: {info['commit']}, capture errors: {info['errors']}"
    )
    print(f"{'measure':<34}{'median ms':>12}{'/ import mlflow':>18}")
    rows = [
        ("capture() (cold, in-process)", "capture"),
        ("import repro_common + capture()", "import_capture"),
        ("process: python -c capture", "process"),
        ("process: python -c 'import mlflow'", "mlflow"),
        ("process: python -c pass", "bare"),
    ]
    for label, key in rows:
        print(f"{label:<34}{med[key] * 1000:>12.1f}{med[key] / med['mlflow']:>17.1%}")
    ratio = med["capture"] / med["mlflow"]
    extra = (med["process"] - med["bare"]) / (med["mlflow"] - med["bare"])
    print(
        f"ratio capture()/import mlflow = {ratio:.2%} (target <= 5%: {'met' if ratio <= 0.05 else 'NOT met'})"
    )
    print(f"start-up excluded, whole process: (process - bare) / (mlflow - bare) = {extra:.2%}")


if __name__ == "__main__":
    main()
