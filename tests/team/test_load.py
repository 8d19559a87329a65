"""Sixteen training processes hit the shared server at once: no run loses or swaps its record."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support.git import make_repo

pytestmark = [pytest.mark.team, pytest.mark.slow]

PROCESSES = 16
RUNS_PER_PROCESS = 2

# Each worker has its own seed and its own data shard, and logs who it is: a record
# attached to the wrong run shows up as a seed, shard or pid that is not the run's.
WORKER = """\
import os
import sys
import time

import mlflow
import repro_common

worker, runs, experiment, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
shard = f"shard-{worker}.bin"
with open(shard, "wb") as handle:
    handle.write(f"rows of worker {worker}\\n".encode() * 512)
repro_common.seed_everything(1000 + worker)
repro_common.track_data(shard, name="shard")
mlflow.set_experiment(experiment)
open(f"ready-{worker}", "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
for index in range(runs):
    with mlflow.start_run() as run:
        mlflow.log_params({"worker": worker, "index": index, "pid": os.getpid()})
        mlflow.log_metric("loss", worker + index / 10)
    print("RUN_ID", run.info.run_id, flush=True)
"""


def start_workers(repo: Path, experiment: str, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    """Start every worker, wait until all are connected and ready, then release them together."""
    go = repo / "go.flag"
    procs = [
        subprocess.Popen(
            [sys.executable, "worker.py", str(worker), str(RUNS_PER_PROCESS), experiment, str(go)],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(PROCESSES)
    ]
    deadline = time.monotonic() + 150
    while not all((repo / f"ready-{worker}").exists() for worker in range(PROCESSES)):
        failed = [proc for proc in procs if proc.poll() not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            detail = failed[0].communicate()[1][-4000:] if failed else "timed out"
            raise AssertionError(f"workers did not get ready: {detail}")
        time.sleep(0.05)
    go.touch()
    return procs


def test_sixteen_processes_at_once_each_run_keeps_its_own_record(
    team_stack: Any, tmp_path: Path
) -> None:
    import repro_common
    from repro_common.manifest import Manifest

    repo = make_repo(
        tmp_path / "project", {"worker.py": WORKER, ".gitignore": "shard-*\nready-*\ngo.flag\n"}
    )
    experiment = "team-load"
    team_stack.client().create_experiment(
        experiment
    )  # 16 racing set_experiment calls would each try to create it

    procs = start_workers(repo, experiment, team_stack.client_env())
    printed: dict[int, list[str]] = {}
    for worker, proc in enumerate(procs):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"worker {worker} failed:\n{err[-4000:]}"
        printed[worker] = team_stack.printed(out, "RUN_ID")
        assert len(printed[worker]) == RUNS_PER_PROCESS

    runs = {run.info.run_id: run for run in team_stack.runs(experiment)}
    assert sorted(runs) == sorted(run_id for ids in printed.values() for run_id in ids), (
        "runs lost or extra"
    )

    shards = {
        worker: repro_common.fingerprint(repo / f"shard-{worker}.bin")
        for worker in range(PROCESSES)
    }
    for worker, run_ids in printed.items():
        for index, run_id in enumerate(run_ids):
            run = runs[run_id]
            tags, params = run.data.tags, run.data.params
            where = f"worker {worker} run {index} ({run_id})"
            assert run.info.status == "FINISHED", where
            assert (params["worker"], params["index"]) == (str(worker), str(index)), where
            assert [name for name in team_stack.CORE_TAGS if name not in tags] == [], where
            assert "repro.capture.errors" not in tags, f"{where}: {tags['repro.capture.errors']}"
            assert tags["repro.seed"] == str(1000 + worker), where
            assert tags["repro.data.shard"] == shards[worker], where

            raw = team_stack.s3_object(run, "repro/manifest.json")
            assert raw is not None, f"{where}: no repro/manifest.json in the object store"
            # An exploratory record is this one file, as the tag set at creation announced.
            assert tags["repro.artifacts"] == "manifest.json", where
            assert team_stack.s3_object(run, "repro/requirements.txt") is None, where
            manifest = Manifest.from_json(raw)
            assert manifest.digest == tags["repro.manifest.digest"], (
                f"{where}: manifest of another run"
            )
            assert manifest.digest_matches(), where
            assert manifest.capture["pid"] == int(params["pid"]), (
                f"{where}: manifest from another process"
            )
            assert manifest.seeds["global"] == 1000 + worker, where
            assert [(item["name"], item["fingerprint"]) for item in manifest.data] == [
                ("shard", shards[worker])
            ], where
