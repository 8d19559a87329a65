"""The registry gate on the team deployment: PostgreSQL backend, S3 artifacts, proxied.

The gated server reads each run's record from the bucket it proxies; clients hold
no S3 credentials. Same stories as on SQLite: a production run registered on the
line after it ends passes and is tagged; an unseeded one is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.installed_env import build_installed_python
from support.mlflow_server import mlflow_server
from support.postgres import missing_reason, postgres_cluster
from support.registry_runs import train_and_register, user_project
from support.s3 import moto_s3

pytestmark = [pytest.mark.team, pytest.mark.slow]


@pytest.fixture(scope="module")
def gated_team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(server URL, the wheel-installed interpreter users train with)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("gated-team")
    python = build_installed_python(workdir / "env")
    with postgres_cluster() as db_uri, moto_s3(workdir / "s3") as s3:
        env = {**s3.env, "AWS_MAX_ATTEMPTS": "2", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with mlflow_server(
            workdir / "server",
            backend_uri=db_uri,
            artifacts_destination=s3.uri("mlflow-artifacts"),
            extra_env=env,
            app_name="mlrepro-gate",
            python=python,
        ) as url:
            yield url, python


def test_on_postgres_and_s3_a_production_run_passes_and_an_unseeded_one_is_refused(
    gated_team_server: tuple[str, str], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    url, python = gated_team_server
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,2\n")
    production = train_and_register(
        python,
        user_project(tmp_path / "production"),
        url,
        {"seed": 7, "data": {"train": str(data)}, "register": ["churn"]},
        track="production",
    )
    assert production["refused"] == {}
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    version = client.get_model_version("churn", production["registered"]["churn"])
    digest = client.get_run(production["run"]).data.tags["repro.manifest.digest"]
    assert version.tags["repro.gate"] == f"passed production {digest}"

    unseeded = train_and_register(
        python, user_project(tmp_path / "unseeded"), url, {"register": ["churn"]}
    )
    assert "  - seeds: no global seed recorded" in unseeded["refused"]["churn"]
    assert len(list(client.search_model_versions("name = 'churn'"))) == 1
