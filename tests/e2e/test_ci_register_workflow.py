"""`examples/ci/register_model.yml`, step by step: its shell steps run as GitHub would run them.

The workflow is parsed, not copied: each `run:` step after the install runs under bash
(`-eo pipefail`, GitHub's default shell) against a real SQLite store, with `python` and
`mlrepro` from a user's environment where mlrepro is installed from a wheel. A run that
passes the production gate gets registered; one that fails stops the job before registering.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.procs import clean_env
from support.template_project import TrainedProject

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "register_model.yml"
INSTALL = 'python -m pip install "mlrepro[mlflow]"'


def workflow_steps() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The register job's `workflow_dispatch` inputs and its steps, from the YAML itself."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as True
    return inputs, workflow["jobs"]["register"]["steps"]


def run_steps(
    steps: list[dict[str, Any]], checkout: Path, env: dict[str, str], inputs: dict[str, str]
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Each `run:` step in order, as GitHub runs it; stops at the first that fails."""
    done = []
    for step in steps:
        if "run" not in step:
            continue  # actions (checkout, setup-python, upload-artifact): the test is their stand-in
        script = re.sub(
            r"\$\{\{\s*inputs\.(\w+)\s*\}\}", lambda match: inputs[match.group(1)], step["run"]
        )
        assert "${{" not in script, f"unhandled expression in step {step.get('name')}: {script}"
        if script.strip() == INSTALL:
            continue  # mlrepro is installed already, from a wheel (the `installed_python` venv)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        done.append((step["name"], proc))
        if proc.returncode != 0:
            break
    return done


def test_the_install_step_names_an_extra_the_package_has() -> None:
    _, steps = workflow_steps()
    assert [step["run"].strip() for step in steps if "run" in step][0] == INSTALL
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "mlflow" in config["options.extras_require"]


def test_the_workflow_registers_a_production_run_and_refuses_an_exploratory_one(
    tmp_path: Path, installed_python: str, trained_project: TrainedProject
) -> None:
    inputs, steps = workflow_steps()
    values = {name: str(spec.get("default", "")) for name, spec in inputs.items()}
    assert values["model_name"] == "churn-classifier"

    # `mlrepro init demo` by the installed wheel, trained once (shared with test_init_template)
    project, production_run = trained_project.project, trained_project.run_id
    assert trained_project.trained.returncode == 0, trained_project.trained.stderr
    store = trained_project.store
    user_bin = str(Path(installed_python).parent)
    env = clean_env(MLFLOW_TRACKING_URI=store, PATH=user_bin + os.pathsep + os.environ["PATH"])
    plain = subprocess.run(
        [
            installed_python,
            "-c",
            "import mlflow\nwith mlflow.start_run() as r: print(r.info.run_id)",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    exploratory_run = plain.stdout.strip().splitlines()[-1]

    checkout = tmp_path / "checkout"  # what actions/checkout leaves: the repository's files
    shutil.copytree(ROOT / "examples", checkout / "examples")

    passed = run_steps(steps, checkout, {**env, "RUN": production_run}, values)
    assert [name for name, _ in passed] == [
        "Reproducibility gate",
        "Register the model",
    ], passed
    for name, proc in passed:
        assert proc.returncode == 0, f"{name}\n{proc.stdout}\n{proc.stderr}"
    assert json.loads((checkout / "gate.json").read_text())["passed"] is True
    assert f"registered churn-classifier version 1 from run {production_run}" in passed[1][1].stdout

    refused = run_steps(steps, checkout, {**env, "RUN": exploratory_run}, values)
    assert [name for name, _ in refused] == ["Reproducibility gate"]
    assert refused[0][1].returncode == 1, refused[0][1].stdout + refused[0][1].stderr
    assert json.loads((checkout / "gate.json").read_text())["passed"] is False

    from mlflow.tracking import MlflowClient

    versions = MlflowClient(store).search_model_versions("name='churn-classifier'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", production_run)]
