"""`mlrepro reproduce` says REPRODUCED only when an outcome was compared and agreed.

Real scripts in a git checkout, logged to a real SQLite MLflow store, rebuilt and
rerun by the CLI in a fresh process: an unseeded run that logs no metric (rebuilt,
not verified: exit 3), and a seeded run that logs only a clock metric and an MLflow
model saved with `mlflow.sklearn.save_model` (the model's files are the outcome;
its MLmodel, which holds a creation time and uuid, is listed as not compared).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.git import git, make_repo
from support.procs import clean_env, run_cli, train

TRAIN = """\
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

import repro_common as repro

started = time.perf_counter()
if sys.argv[1] == "unseeded":
    with mlflow.start_run() as run:
        accuracy = float(np.random.rand())  # printed, never logged
    print(f"accuracy {accuracy}")
else:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    repro.seed_everything(3)
    x = np.random.normal(size=(64, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + np.random.normal(size=64) > 0).astype(int)
    with mlflow.start_run() as run:
        model = LogisticRegression(max_iter=200).fit(x, y)
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "model"
            mlflow.sklearn.save_model(
                model,
                str(saved),
                pip_requirements=["scikit-learn"],
                serialization_format=sys.argv[2],
            )
            mlflow.log_artifacts(str(saved), "model")
        mlflow.log_metric("train_runtime", time.perf_counter() - started)  # Trainer's clock
print("RUN_ID=" + run.info.run_id)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("verdicts")
    remote = base / "remote.git"
    git(base, "init", "-q", "--bare", str(remote))
    repo = make_repo(
        base / "project",
        {"train.py": TRAIN, ".gitignore": "mlflow.db\nmlruns/\n"},
        remote=str(remote),
    )
    git(repo, "push", "-q", "origin", "main")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=uri, XDG_CACHE_HOME=str(base / "cache"))
    made = {}
    for mode, args in {
        "unseeded": ["unseeded"],
        "model": ["model", "cloudpickle"],
        "skops": ["model", "skops"],
    }.items():
        made[mode] = train(repo, env, *args, timeout=None)
    return {"repo": repo, "env": env, "cache": base / "cache", **made}


def _reproduce(project: dict, *args: str, cwd: Path | None = None):
    return run_cli("reproduce", *args, env=project["env"], cwd=cwd, timeout=600)


@pytest.mark.slow
def test_an_unseeded_run_without_metrics_is_rebuilt_not_verified(
    project: dict, tmp_path: Path
) -> None:
    proc = _reproduce(project, project["unseeded"], "--run", "--dir", str(tmp_path / "r"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    verdict = proc.stdout[proc.stdout.index("REBUILT, NOT VERIFIED") :].replace("\n", " ")
    assert verdict.startswith("REBUILT, NOT VERIFIED: the original run was not seeded")
    assert "nothing was compared" in verdict and "log an outcome to compare" in verdict
    assert "REPRODUCED" not in proc.stdout.replace("NOT VERIFIED", "")


@pytest.mark.slow
def test_clock_metrics_are_listed_not_compared_and_artifacts_verify_the_run(
    project: dict, tmp_path: Path
) -> None:
    only_clock = _reproduce(
        project, project["model"], "--run", "--dir", str(tmp_path / "a"), "--json"
    )
    assert only_clock.returncode == 3, only_clock.stdout + only_clock.stderr
    verdict = json.loads(only_clock.stdout)["verdict"]
    assert verdict["verdict"] == "REBUILT, NOT VERIFIED"
    assert "only timing metrics (train_runtime)" in verdict["reason"]
    rows = {c["name"]: c for c in verdict["checks"] if c["section"] == "metric"}
    assert rows["train_runtime"]["ok"] is None
    assert rows["train_runtime"]["note"] == "not compared (timing)"

    proc = _reproduce(
        project,
        project["model"],
        "--run",
        "--compare",
        "artifacts",
        "--dir",
        str(tmp_path / "b"),
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["verdict"]
    assert verdict["verdict"] == "REPRODUCED" and verdict["reproduced"] is True
    files = {c["name"]: c for c in verdict["checks"] if c["section"] == "artifact"}
    assert files["model/model.pkl"]["ok"] is True
    assert verdict["reason"].startswith("inputs match and 1 artifact(s) agree")
    assert files["model/MLmodel"]["ok"] is None
    assert "run id, creation time and model uuid" in files["model/MLmodel"]["note"]
    assert files["model/conda.yaml"]["ok"] is None  # the environment, not an outcome
    assert not any(name.startswith("repro/") for name in files)
    assert "not compared (timing): train_runtime" in verdict["reason"]


@pytest.mark.slow
def test_a_model_format_that_differs_on_every_save_is_not_claimed_verified(
    project: dict, tmp_path: Path
) -> None:
    proc = _reproduce(
        project,
        project["skops"],
        "--run",
        "--compare",
        "artifacts",
        "--dir",
        str(tmp_path / "s"),
        "--json",
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["verdict"]
    files = {c["name"]: c for c in verdict["checks"] if c["section"] == "artifact"}
    assert files["model/model.skops"]["ok"] is None
    assert "memory address" in files["model/model.skops"]["note"]


@pytest.mark.slow
def test_the_default_directory_is_outside_the_repository_and_printed(project: dict) -> None:
    repo = project["repo"]
    proc = _reproduce(project, project["unseeded"], cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = project["cache"] / "mlrepro" / "reproduce" / project["unseeded"]
    assert (expected / "reproduce.sh").is_file()
    assert str(expected) in proc.stderr.replace("\n", "")
    assert git(repo, "status", "--porcelain") == ""  # nothing untracked in the user's checkout
    again = _reproduce(project, project["unseeded"], cwd=repo)  # a second rebuild: a new folder
    assert again.returncode == 0, again.stdout + again.stderr
    assert (expected.with_name(expected.name + "-2") / "reproduce.sh").is_file()
