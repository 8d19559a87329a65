"""`mlrepro diff` says same / differs / unknown, and never calls runs identical that it did not compare.

Each run is a real script in a git checkout, run in its own interpreter (torch
draws its start-up seed per process) and logged to a real SQLite MLflow store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro_common.cli import main
from repro_common.diff import diff_runs
from repro_common.runs import load_run
from support.git import make_repo
from support.procs import clean_env, train

SCRIPT = """\
import os
import time

started = time.perf_counter()
import mlflow
import torch

import repro_common as repro

early = float(torch.rand(1))  # e.g. a model built before anything seeded
if os.environ.get("SEED"):
    repro.seed_everything(int(os.environ["SEED"]))
with mlflow.start_run() as run:
    value = early if os.environ.get("DRAW_EARLY") else float(torch.rand(1))
    mlflow.log_metric("acc", value)
    mlflow.log_metric("train_runtime", time.perf_counter() - started)  # a clock: not compared
print("RUN_ID=" + run.info.run_id)
"""


def _run(repo: Path, uri: str, **env: str) -> str:
    return train(repo, clean_env(MLFLOW_TRACKING_URI=uri, GIT_PYTHON_REFRESH="quiet", **env))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("diff-verdicts")
    repo = make_repo(base / "project", {"train.py": SCRIPT, ".gitignore": "mlruns/\n"})
    uri = f"sqlite:///{base / 'mlflow.db'}"
    return {
        "uri": uri,
        "unseeded": [_run(repo, uri), _run(repo, uri)],
        "early_draw": [_run(repo, uri, SEED="1", DRAW_EARLY="1") for _ in range(2)],
        "seeded": [_run(repo, uri, SEED="1") for _ in range(2)],
    }


@pytest.mark.slow
def test_two_unseeded_runs_are_never_called_identical(
    runs: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = runs["uri"]
    a, b = runs["unseeded"]
    result = diff_runs(load_run(a, uri), load_run(b, uri))
    assert not result.identical
    assert result.unknown["seeds"] == "not recorded in A and B — outcomes can differ"
    # torch drew a fresh start-up seed in each process: the RNG digests show it.
    assert "rng.torch_initial_seed" in {c.field for c in result.groups["seeds"]}

    assert main(["diff", a, b, "--tracking-uri", uri]) == 1
    out = capsys.readouterr().out
    assert "identical" not in out
    assert "seeds: differs; not recorded in A and B — outcomes can differ" in out
    assert "not compared (timing): train_runtime" in out

    assert main(["diff", a, b, "--tracking-uri", uri, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["identical"] is False and doc["status"]["seeds"] == "differs"
    assert doc["status"]["packages"] == "same" and doc["status"]["code"] == "same"
    assert doc["not_compared"]["data"] == "no inputs tracked in A or B"
    assert doc["differing_metrics"] == ["acc"]  # train_runtime differs too, but is a clock


@pytest.mark.slow
def test_same_record_different_outcome_is_said_and_fails(
    runs: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = runs["uri"]
    a, b = runs["early_draw"]
    result = diff_runs(load_run(a, uri), load_run(b, uri))
    assert result.records_match and not result.identical
    assert [m.name for m in result.differing_metrics] == ["acc"]

    assert main(["diff", a, b, "--tracking-uri", uri]) == 1
    out = capsys.readouterr().out
    assert out.startswith(
        "inputs identical, outcomes differ: something the record does not hold changed, "
        "e.g. randomness drawn before seeding"
    )
    assert "identical:" not in out


@pytest.mark.slow
def test_seeded_runs_with_equal_outcomes_are_identical_and_clocks_can_be_compared(
    runs: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = runs["uri"]
    a, b = runs["seeded"]
    assert main(["diff", a, b, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert out.startswith("identical:") and "seeds: same" in out
    assert "metrics: 1 compared, all equal" in out
    # Asked to compare a clock metric, diff compares it: the clock is never the same twice.
    assert main(["diff", a, b, "--tracking-uri", uri, "--compare-metric", "train_runtime"]) == 1
    assert "metrics: 1 of 2 compared differ" in capsys.readouterr().out


def test_clock_metrics_of_hugging_face_lightning_and_keras_are_timing() -> None:
    from repro_common.outcomes import is_timing

    for name in (
        "train_runtime",
        "eval_runtime",
        "train_samples_per_second",
        "eval_steps_per_second",
        "epoch_duration",
        "epoch_time",
        "fit_seconds",
        "_runtime",
        "system/cpu_utilization_percentage",
    ):
        assert is_timing(name), name
    for name in ("loss", "eval_loss", "val_acc", "accuracy", "total_flos", "epoch"):
        assert not is_timing(name), name
    assert not is_timing("train_runtime", compare_anyway=("train_*",))
