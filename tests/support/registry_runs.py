"""A user's script that trains and registers its model on the very next line (no flush).

It runs in a fresh interpreter (capture and seeding are per process), in a git
checkout, against a tracking server; the plan says whether it seeds, which inputs
it tracks, whether it logs an MLflow 3 logged model (`models:/<model_id>`) or a
model folder under the run (`runs:/<id>/model`), and which names it registers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support.git import make_repo
from support.procs import clean_env

TRAIN_AND_REGISTER = """\
import json
import os

import mlflow
from mlflow.exceptions import MlflowException

import mlflow_repro_plugin as repro

plan = json.loads(os.environ["PLAN"])
if plan.get("seed") is not None:
    repro.seed_everything(plan["seed"])
for name, path in plan.get("data", {}).items():
    repro.track_data(path, name)
mlflow.set_tracking_uri(os.environ["TRACKING"])
mlflow.set_experiment(plan.get("experiment", "gate"))


class Tiny(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.25)
    if plan.get("logged_model"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Tiny(), pip_requirements=["mlflow"]
        )
        uri = info.model_uri
    else:
        mlflow.log_text("artifact_path: model\\n", "model/MLmodel")  # a model saved by hand
        uri = f"runs:/{run.info.run_id}/model"
result = {"run": run.info.run_id, "uri": uri, "registered": {}, "refused": {}}
for name in plan.get("register", []):
    try:
        result["registered"][name] = mlflow.register_model(uri, name).version
    except MlflowException as exc:
        result["refused"][name] = exc.message
print("RESULT=" + json.dumps(result))
"""


def user_project(path: Path) -> Path:
    """A clean checkout whose train.py is the script above."""
    return make_repo(path, {"train.py": TRAIN_AND_REGISTER, ".gitignore": "__pycache__/\n"})


def train_and_register(
    python: str, repo: Path, tracking_uri: str, plan: dict[str, Any], track: str | None = None
) -> dict[str, Any]:
    """Run the script with `python`; its run id, model URI, registered versions and refusals."""
    env = {
        "PLAN": json.dumps(plan),
        "TRACKING": tracking_uri,
        "MLREPRO_CACHE_DIR": str(repo.parent / "mlrepro-cache"),
        "GIT_PYTHON_REFRESH": "quiet",
    }
    if track:
        env["MLREPRO_TRACK"] = track
    env_all = clean_env(**env)
    env_all.pop("PYTHONPATH", None)  # the interpreter's installed mlrepro, not a checkout's
    proc = subprocess.run(
        [python, "train.py"], cwd=repo, env=env_all, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT="))
    return dict(json.loads(line[len("RESULT=") :]))
