"""Cold capture() against `import mlflow`: like with like, in fresh processes, order rotated.

The record is taken inside `mlflow.start_run`, so its cost is judged against what
every MLflow user already pays: importing MLflow. Target: a cold capture() costs
at most 5% of that import.

    .venv/bin/python benchmarks/bench_capture.py [--rounds 9] [--repo PATH]

Each round starts three new interpreters, in an order rotated from round to round
(with a multiple of 3 rounds each goes first, second and third equally often, so
machine load hits every side alike):
  capture process    times, inside the process, `import repro_common` and the first capture()
  mlflow process     times, inside the process, `import mlflow`
  bare process       `python -c pass`: interpreter start-up alone
Every process is also timed whole (wall clock, from the parent).

Two comparisons, each with both sides measured the same way:
  in-process         both after interpreter start-up, inside the process:
                     capture() / import mlflow, and (import repro_common + capture()) / import mlflow
  whole process      both as wall time minus a bare interpreter:
                     (capture process - bare) / (mlflow process - bare)
Every figure is the median over the rounds.
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

CAPTURE = (
    "import time, json\n"
    "t0 = time.perf_counter()\n"
    "import repro_common\n"
    "t1 = time.perf_counter()\n"
    "m = repro_common.capture()\n"
    "t2 = time.perf_counter()\n"
    "print(json.dumps({'import': t1 - t0, 'capture': t2 - t1, 'errors': m.errors,"
    " 'packages': len(m.environment.get('packages') or []), 'commit': m.code.get('commit')}))\n"
)
MLFLOW = (
    "import time, json\n"
    "t0 = time.perf_counter()\n"
    "import mlflow\n"
    "t1 = time.perf_counter()\n"
    "print(json.dumps({'import': t1 - t0}))\n"
)
BARE = "pass"
KINDS = ("capture", "mlflow", "bare")
CODE = {"capture": CAPTURE, "mlflow": MLFLOW, "bare": BARE}


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
    parser.add_argument("--rounds", type=int, default=9, help="rounds (a multiple of 3)")
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
        k: []
        for k in ("capture", "import_capture", "import_mlflow", "wall_capture", "wall_mlflow")
        + ("wall_bare",)
    }
    info: dict = {}
    for round_no in range(args.rounds):
        shift = round_no % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            wall, out = _wall(CODE[kind], args.repo, env)
            samples[f"wall_{kind}"].append(wall)
            if kind == "capture":
                info = json.loads(out)
                samples["capture"].append(info["capture"])
                samples["import_capture"].append(info["import"] + info["capture"])
            elif kind == "mlflow":
                samples["import_mlflow"].append(json.loads(out)["import"])

    med = {k: statistics.median(v) for k, v in samples.items()}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} rounds "
        f"(order rotated each round), repo {args.repo}; every figure is a median over the rounds"
    )
    print(
        f"distributions recorded: {info['packages']}, commit: {info['commit']}, "
        f"capture errors: {info['errors']}"
    )
    print("in-process (timed inside a fresh interpreter, after its start-up):")
    print(f"  {'first capture()':<40}{med['capture'] * 1000:>10.1f} ms")
    print(
        f"  {'import repro_common + first capture()':<40}{med['import_capture'] * 1000:>10.1f} ms"
    )
    print(f"  {'import mlflow':<40}{med['import_mlflow'] * 1000:>10.1f} ms")
    print("whole process (wall clock from the parent, start-up included):")
    print(
        f"  {'python -c <import repro_common; capture()>':<44}{med['wall_capture'] * 1000:>6.1f} ms"
    )
    print(f"  {'python -c <import mlflow>':<44}{med['wall_mlflow'] * 1000:>6.1f} ms")
    print(f"  {'python -c pass (bare interpreter)':<44}{med['wall_bare'] * 1000:>6.1f} ms")
    ratio = med["capture"] / med["import_mlflow"]
    with_import = med["import_capture"] / med["import_mlflow"]
    whole = (med["wall_capture"] - med["wall_bare"]) / (med["wall_mlflow"] - med["wall_bare"])
    verdict = "met" if ratio <= 0.05 else "NOT met"
    print(f"in-process: capture() / import mlflow = {ratio:.2%} (target <= 5%: {verdict})")
    print(f"in-process: (import repro_common + capture()) / import mlflow = {with_import:.2%}")
    print(f"whole process minus bare interpreter: capture / import mlflow = {whole:.2%}")


if __name__ == "__main__":
    main()
