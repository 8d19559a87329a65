"""`mlrepro reproduce --run` of a seeded Hugging Face Trainer run on MLflow (no code change).

The Trainer builds the model itself (`model_init`), after seeding, so its seed covers the
initial weights: the rerun gives the same losses, and the clocks the Trainer logs
(`train_runtime`, `*_per_second`) are listed but set aside. A script that passes a model
it built before the Trainer is told, in reproduce's warnings, that the seed does not
cover those weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import support.hf_training
from support.git import make_repo
from support.procs import clean_env, run_cli, train

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

TRAIN = """
import sys

import mlflow
from transformers import Trainer

from tiny import tiny_bert, token_dataset, training_args

built = sys.argv[1:] == ["--prebuilt"]
model = {"model": tiny_bert()} if built else {"model_init": tiny_bert}
trainer = Trainer(args=training_args("out", ["mlflow"]), train_dataset=token_dataset(),
                  eval_dataset=token_dataset(8, offset=1), **model)
trainer.train()
print("RUN_ID=" + mlflow.last_active_run().info.run_id)
"""


def original_run(tmp_path: Path, *args: str) -> tuple[str, dict[str, str]]:
    repo = make_repo(
        tmp_path / "project",
        {"train.py": TRAIN, "tiny.py": Path(support.hf_training.__file__).read_text()},
    )
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", HF_HUB_OFFLINE="1")
    run_id = train(repo, env, *args)
    return run_id, env


def test_a_seeded_trainer_run_is_reproduced_with_clocks_set_aside(tmp_path: Path) -> None:
    run_id, env = original_run(tmp_path)
    proc = run_cli(
        "reproduce", run_id, "--run", "--dir", str(tmp_path / "again"), "--json",
        env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    verdict = report["verdict"]
    assert verdict["reproduced"] is True, verdict["reason"]
    metrics = {c["name"]: c for c in verdict["checks"] if c["section"] == "metric"}
    assert metrics["train_loss"]["ok"] is True and metrics["loss"]["ok"] is True
    assert metrics["train_runtime"]["note"] == "not compared (timing)"
    assert metrics["train_samples_per_second"]["note"] == "not compared (timing)"
    assert not [w for w in report["warnings"] if "model_init" in w]


def test_a_model_built_before_the_trainer_is_named_in_reproduce_warnings(tmp_path: Path) -> None:
    run_id, env = original_run(tmp_path, "--prebuilt")
    proc = run_cli("reproduce", run_id, "--dir", str(tmp_path / "again"), "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = json.loads(proc.stdout)["warnings"]
    assert any("args.seed does not cover its initial weights" in w for w in warnings), warnings
