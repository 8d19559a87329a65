"""Real MLflow and W&B runs made the way users make them: a script in a git checkout, the plugins installed.

The script seeds (when asked), tracks its inputs, then logs one run per spec to
MLflow (`mlflow.start_run`, the run-context provider does the rest) and/or to an
offline W&B run (`wandb.init` + `wandb_repro_plugin.attach`). Each spec is a dict:
`seed`, `data` (name -> path), `loss`. It runs in a fresh interpreter because
capture and seeding are per process.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support.procs import PYTHON, clean_env

TRAIN = """\
import json, os, sys
from pathlib import Path

import mlflow_repro_plugin as repro

if os.environ.get("IMPORT_HELPERS"):
    import helpers  # noqa: F401  an uncommitted module the run depends on

rows = []
for spec in json.loads(os.environ["RUNS"]):
    if spec.get("seed") is not None:
        repro.seed_everything(spec["seed"])
    for name, path in spec.get("data", {}).items():
        repro.track_data(path, name)
    row = {}
    if "mlflow" in os.environ["TRACKERS"]:
        import mlflow

        mlflow.set_tracking_uri(os.environ["TRACKING"])
        if mlflow.get_experiment_by_name("demo") is None:
            mlflow.create_experiment("demo", artifact_location=os.environ["ARTIFACTS"])
        mlflow.set_experiment("demo")
        with mlflow.start_run() as run:
            mlflow.log_params({"lr": 0.1, "epochs": 2})
            mlflow.log_metric("loss", spec.get("loss", 0.5))
        row["mlflow"] = run.info.run_id
    if "wandb" in os.environ["TRACKERS"]:
        import wandb
        import wandb_repro_plugin

        run = wandb.init(project="demo", config={"lr": 0.1, "epochs": 2})
        wandb_repro_plugin.attach(run)
        run.log({"loss": spec.get("loss", 0.5)})
        run.finish()
        row["wandb"] = str(Path(run.dir).parent)
    rows.append(row)
repro.flush()
print("RUNS=" + json.dumps(rows))
"""


def train(
    repo: Path,
    runs: list[dict[str, Any]],
    *,
    tracking_uri: str | None = None,
    trackers: str = "mlflow",
    env: dict[str, str] | None = None,
) -> list[dict[str, str]]:
    """Run `train.py` (written and committed by `write_script`) in `repo`; the runs it made."""
    store = repo.parent / "mlflow-artifacts"
    extra = {
        "RUNS": json.dumps(runs),
        "TRACKERS": trackers,
        "TRACKING": tracking_uri or "",
        "ARTIFACTS": str(store),
        "MLREPRO_CACHE_DIR": str(repo.parent / "mlrepro-cache"),
        "MLREPRO_UPLOAD_TIMEOUT": "60",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for key in (
        "WANDB_MODE",
        "WANDB_DIR",
        "WANDB_CACHE_DIR",
        "WANDB_CONFIG_DIR",
        "WANDB_DATA_DIR",
        "WANDB_ARTIFACT_DIR",
        "WANDB_SILENT",
        "WANDB_DISABLE_GIT",
    ):
        if key in os.environ:
            extra[key] = os.environ[key]
    extra.update(env or {})
    proc = subprocess.run(
        [PYTHON, "train.py"],
        cwd=repo,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RUNS="))
    return json.loads(line[len("RUNS=") :])


def script_files() -> dict[str, str]:
    """Files for make_repo: the training script and a .gitignore that keeps outputs out of git."""
    return {"train.py": TRAIN, ".gitignore": "__pycache__/\n"}
