"""What the registry gate adds to registering a model version.

Two `mlflow server`s on the same SQLite store and artifact folder: one plain, one
with `--app-name mlrepro-gate`. A production-complete run with one tracked input
is made once (by a wheel-installed mlrepro, as a user's would be); then each
server registers a new version of it, alternately, N times each after a warm-up.
Prints the medians, the ratio and the added milliseconds (target: <= 300 ms).

    .venv/bin/python benchmarks/bench_registry_gate.py --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.installed_env import build_installed_python  # noqa: E402
from support.mlflow_server import mlflow_server  # noqa: E402
from support.registry_runs import train_and_register, user_project  # noqa: E402


def register_once(url: str, name: str, run_id: str) -> float:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    started = time.perf_counter()
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-registry-gate-") as tmp:
        base = Path(tmp)
        python = build_installed_python(base / "env")
        store = f"sqlite:///{base / 'mlflow.db'}"
        artifacts = str(base / "artifacts")
        common = {"backend_uri": store, "artifacts_destination": artifacts, "python": python}
        with (
            mlflow_server(base / "plain", **common) as plain,
            mlflow_server(base / "gated", app_name="mlrepro-gate", **common) as gated,
        ):
            data = base / "train.csv"
            data.write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(1000)))
            plan = {"seed": 1, "data": {"train": str(data)}, "register": []}
            made = train_and_register(
                python, user_project(base / "project"), plain, plan, track="production"
            )
            run_id = made["run"]
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=plain, registry_uri=plain).create_registered_model("bench")
            for url in (plain, gated):  # warm-up: imports, connections, the first query plans
                register_once(url, "bench", run_id)
            times: dict[str, list[float]] = {"plain": [], "gated": []}
            for _ in range(args.rounds):
                times["plain"].append(register_once(plain, "bench", run_id))
                times["gated"].append(register_once(gated, "bench", run_id))
    plain_ms = statistics.median(times["plain"]) * 1000
    gated_ms = statistics.median(times["gated"]) * 1000
    print(f"register a model version, {args.rounds} alternated rounds, one SQLite store")
    print(f"  plain server : median {plain_ms:7.1f} ms")
    print(f"  gated server : median {gated_ms:7.1f} ms  (reads the record, checks, tags)")
    print(f"  ratio        : {gated_ms / plain_ms:5.2f}x")
    print(f"  added        : {gated_ms - plain_ms:7.1f} ms  (target <= 300 ms)")


if __name__ == "__main__":
    main()
