"""What an exploratory run costs a shared server: one extra request, two with tracked inputs.

Counted from a real `mlflow server`'s access log, by endpoint, for the same script with
the plugin and with MLREPRO_DISABLE=1: what the plugin adds is the difference.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from mlflow_reads import fresh_env

from support.git import make_repo
from support.mlflow_server import mlflow_server, requests_logged
from support.procs import run_cli, run_python

pytestmark = pytest.mark.slow

PUT_FILE = "PUT /api/2.0/mlflow-artifacts/artifacts/<file>"
LOG_INPUTS = "POST /api/2.0/mlflow/runs/log-inputs"

TRAIN = """\
import sys

import mlflow
import repro_common

experiment, track = sys.argv[1], sys.argv[2] == "track"
repro_common.seed_everything(3)
if track:
    repro_common.track_data("data.csv", name="train")
mlflow.set_experiment(experiment)
with mlflow.start_run() as run:
    mlflow.log_params({"lr": 0.1, "epochs": 2})
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
print("RUN", run.info.run_id)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A tracking server of our own: its access log is what we count."""
    workdir = tmp_path_factory.mktemp("counted-server")
    with mlflow_server(workdir) as url:
        yield url, workdir / "server.log"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean, committed checkout: no code.diff to upload."""
    return make_repo(
        tmp_path_factory.mktemp("one-request") / "project",
        {"train.py": TRAIN, "data.csv": "x,y\n1,2\n3,4\n"},
    )


def _requests_of_one_run(
    server: tuple[str, Path], project: Path, experiment: str, track: bool, disabled: bool
) -> tuple[Counter[str], str]:
    """(requests the server served for one run of the script, by endpoint; the run id)."""
    url, log = server
    _, offset = requests_logged(log)
    extra = {"MLREPRO_DISABLE": "1"} if disabled else {}
    proc = run_python(
        "import runpy; runpy.run_path('train.py', run_name='__main__')",
        cwd=project,
        env=fresh_env(url, MLFLOW_DISABLE_TELEMETRY="true", **extra),
        args=[experiment, "track" if track else "plain"],
    )
    time.sleep(1.0)  # the server writes its access log line after the response
    served, _ = requests_logged(log, offset)
    return served, proc.stdout.split("RUN ", 1)[1].split()[0]


def _added(server: Any, project: Path, track: bool) -> tuple[Counter[str], str]:
    experiment = f"counted-{'track' if track else 'plain'}"
    MlflowClient(server[0]).create_experiment(experiment)
    without, _ = _requests_of_one_run(server, project, experiment, track, disabled=True)
    with_plugin, run_id = _requests_of_one_run(server, project, experiment, track, disabled=False)
    added = Counter(with_plugin)
    added.subtract(without)
    return Counter({kind: n for kind, n in added.items() if n}), run_id


def test_an_exploratory_run_without_inputs_costs_one_request(
    server: tuple[str, Path], project: Path
) -> None:
    added, run_id = _added(server, project, track=False)
    assert added == Counter({PUT_FILE: 1}), added  # repro/manifest.json, nothing else
    tags = MlflowClient(server[0]).get_run(run_id).data.tags
    assert tags["repro.artifacts"] == "manifest.json"
    assert "repro.capture.errors" not in tags


def test_a_run_with_tracked_inputs_costs_two_requests(
    server: tuple[str, Path], project: Path
) -> None:
    added, run_id = _added(server, project, track=True)
    assert added == Counter({PUT_FILE: 1, LOG_INPUTS: 1}), added
    run = MlflowClient(server[0]).get_run(run_id)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["train"]


def test_reproduce_writes_requirements_from_the_manifest_of_a_one_file_record(
    server: tuple[str, Path], project: Path, tmp_path: Path
) -> None:
    import mlflow

    MlflowClient(server[0]).create_experiment("reproduced")
    _, run_id = _requests_of_one_run(server, project, "reproduced", track=False, disabled=False)
    target = tmp_path / "rebuilt"
    proc = run_cli(
        "reproduce", run_id, "--dir", str(target), "--tracking-uri", server[0],
        env=fresh_env(server[0]),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pinned = (target / "requirements.txt").read_text().lower()
    assert f"mlflow=={mlflow.__version__}" in pinned
