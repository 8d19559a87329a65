"""`Trainer(report_to=["mlflow"])` with no code change: the Trainer's seeds and datasets in the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_reads import artifact, fresh_env

import support.hf_training
from repro_common import fingerprint
from support.git import make_repo
from support.procs import run_cli, run_python

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

# Two runs of one script: the model built before the Trainer, as most scripts do. The user
# tracked their own "eval" input; the Trainer's eval set must not replace it.
TRAIN = """
import numpy as np
from transformers import Trainer

import repro_common
from tiny import tiny_bert, token_dataset, training_args

repro_common.track_data(np.arange(5), "eval")
for attempt in range(2):
    trainer = Trainer(model=tiny_bert(), args=training_args("out", ["mlflow"]),
                      train_dataset=token_dataset(), eval_dataset=token_dataset(8, offset=1))
    trainer.train()
    import mlflow
    print("RUN", mlflow.last_active_run().info.run_id)
"""


def test_mlflow_trainer_run_records_trainer_seeds_and_datasets_and_diff_says_what_seed_misses(
    tmp_path: Path,
) -> None:
    import numpy as np

    repo = make_repo(
        tmp_path / "project",
        {"train.py": TRAIN, "tiny.py": Path(support.hf_training.__file__).read_text()},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python(
        (repo / "train.py").read_text(), cwd=repo, env=fresh_env(uri, HF_HUB_OFFLINE="1")
    )
    first, second = [
        line.split()[1] for line in proc.stdout.splitlines() if line.startswith("RUN ")
    ]

    client = MlflowClient(uri)
    tags = client.get_run(first).data.tags
    assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
    assert tags["repro.seed"] == "7"
    assert tags["repro.data.train"] == fingerprint(support.hf_training.token_dataset())
    assert tags["repro.data.eval"] == fingerprint(np.arange(5))  # the user's input wins
    manifest = json.loads(artifact(client, first, "repro/manifest.json", tmp_path) or b"{}")
    trainer = manifest["seeds"]["trainer"]
    assert (trainer["seed"], trainer["data_seed"], trainer["full_determinism"]) == (7, 11, False)
    assert trainer["model_seeded"] is False and "model_init=" in trainer["note"]
    train_item = next(d for d in manifest["data"] if d["name"] == "train")
    assert train_item["kind"] == "hf_dataset" and train_item["rows"] == 16

    diff = run_cli("diff", first, second, env=fresh_env(uri))
    assert "seeds: the model's initial weights in A and B were not covered" in diff.stdout, (
        diff.stdout + diff.stderr
    )
    assert "use model_init=" in diff.stdout
