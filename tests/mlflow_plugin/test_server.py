"""Against a real `mlflow server`: artifacts go through its proxy, everything read back over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_reads import artifact, fresh_env, inputs, repro_names

from repro_common.manifest import Manifest
from support.git import git, make_repo
from support.procs import run_python

pytestmark = pytest.mark.slow

SCRIPT = """
import mlflow
import mlflow_repro_plugin as repro

mlflow.set_experiment("server-e2e")
repro.seed_everything(3)
repro.track_data("data/train.csv", "train")
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.5)
print("RUN", run.info.run_id)
"""


def test_a_script_tracked_on_a_server_has_tags_artifacts_and_datasets(
    mlflow_server_uri: str, tmp_path: Path
) -> None:
    project = make_repo(tmp_path / "project", {"train.py": SCRIPT, "data/train.csv": "x,y\n1,2\n"})
    (project / "notes.txt").write_text("untracked\n")
    git(project, "rm", "-q", "--cached", "data/train.csv")  # data not in git: a staged deletion
    proc = run_python(
        "import runpy; runpy.run_path('train.py', run_name='__main__')",
        cwd=project,
        env=fresh_env(mlflow_server_uri),
    )
    run_id = proc.stdout.split("RUN ", 1)[1].split()[0]

    client = MlflowClient(mlflow_server_uri)
    run = client.get_run(run_id)
    tags = run.data.tags
    assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
    assert repro_names(client, run_id) == {"manifest.json", "code.diff"}
    manifest = Manifest.from_json(artifact(client, run_id, "repro/manifest.json", tmp_path) or b"")
    assert manifest.digest == tags["repro.manifest.digest"] and manifest.digest_matches()
    assert tags["repro.git.dirty"] == "true" and tags["repro.seed"] == "3"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "the server's proxy stored them"

    train = inputs(client, run_id)["train"]
    assert json.loads(train.source) == {"uri": str((project / "data" / "train.csv").resolve())}
    assert train.digest == tags["repro.data.train"].split(":", 1)[1][:36]
