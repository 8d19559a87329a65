"""`mlflow server --app-name mlrepro-gate`: the registry itself refuses models from incomplete runs.

A real tracking server (SQLite, local artifacts) serves the gate from the
`mlflow.app` entry point of an installed mlrepro wheel; users' scripts run in that
installed environment (an editable mlrepro is rightly not reinstallable, so only a
wheel-installed one can make a production-complete run).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.installed_env import build_installed_python
from support.mlflow_server import mlflow_server
from support.procs import clean_env
from support.registry_runs import train_and_register, user_project

WAIT = 8  # MLREPRO_GATE_WAIT of the test server


@pytest.fixture(scope="module")
def user_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_installed_python(tmp_path_factory.mktemp("user-env"))


@pytest.fixture(scope="module")
def gate(user_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The gated server: models named `gated-*` are checked against the production track."""
    workdir = tmp_path_factory.mktemp("gate-server")
    settings = {"MLREPRO_GATE_MODELS": "gated-*,team-*", "MLREPRO_GATE_WAIT": str(WAIT)}
    with mlflow_server(
        workdir, app_name="mlrepro-gate", python=user_python, extra_env=settings
    ) as url:
        yield {"url": url, "log": workdir / "server.log"}


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "inputs" / "train.csv"
    path.parent.mkdir()
    path.write_text("x,y\n1,2\n3,4\n")
    return str(path)


def _client(url: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def _post(url: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST JSON as the MLflow UI does (fetch with a JSON body)."""
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"text": raw.decode(errors="replace")}


def _versions(url: str, name: str) -> list[Any]:
    return list(_client(url).search_model_versions(f"name = '{name}'"))


def _copy_of(url: str, complete_run: str, workdir: Path, pending: bool) -> tuple[str, Path]:
    """A new run carrying `complete_run`'s repro tags but no files yet (its upload "in flight").

    Returns the run id and a local copy of the complete run's repro/ folder to upload.
    """
    from mlflow_repro_plugin.provider import CAPTURE_ID_TAG, ERRORS_TAG
    from repro_common.runs import LEGACY_PENDING_NOTE

    client = _client(url)
    source = client.get_run(complete_run)
    tags = {k: v for k, v in source.data.tags.items() if k.startswith("repro.")}
    tags.pop(CAPTURE_ID_TAG, None)
    tags.pop(ERRORS_TAG, None)
    if pending:
        tags[ERRORS_TAG] = LEGACY_PENDING_NOTE  # how an older plugin marked an upload in flight
    run = client.create_run(source.info.experiment_id, tags=tags)
    client.log_text(run.info.run_id, "artifact_path: model\n", "model/MLmodel")
    local = Path(client.download_artifacts(complete_run, "repro", str(workdir)))
    return run.info.run_id, local


def _register(url: str, name: str, run_id: str) -> Any:
    """Register `runs:/<run>/model` through the REST API, as `mlflow.register_model` does."""
    client = _client(url)
    try:
        client.create_registered_model(name)
    except Exception:
        pass  # already there
    return client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)


@pytest.fixture(scope="module")
def production_run(
    gate: dict[str, Any], user_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A production-complete run, registered as `gated-churn` on the line after it ended."""
    base = tmp_path_factory.mktemp("production")
    data = base / "train.csv"
    data.write_text("x,y\n1,2\n")
    repo = user_project(base / "project")
    plan = {"seed": 7, "data": {"train": str(data)}, "register": ["gated-churn"]}
    return train_and_register(user_python, repo, gate["url"], plan, track="production")


@pytest.mark.slow
def test_a_production_run_registered_right_after_it_ends_passes_and_is_tagged(
    gate: dict[str, Any], production_run: dict[str, Any]
) -> None:
    assert production_run["refused"] == {}
    version = production_run["registered"]["gated-churn"]
    client = _client(gate["url"])
    created = client.get_model_version("gated-churn", version)
    digest = client.get_run(production_run["run"]).data.tags["repro.manifest.digest"]
    assert created.tags["repro.gate"] == f"passed production {digest}"
    audit = gate["log"].read_text()
    assert f"PASS model='gated-churn' run={production_run['run']} failed=-" in audit


@pytest.mark.slow
def test_an_unseeded_run_is_refused_naming_the_seed_rule_other_names_pass_untouched(
    gate: dict[str, Any], user_python: str, tmp_path: Path
) -> None:
    repo = user_project(tmp_path / "project")
    plan = {"register": ["gated-unseeded", "scratch-unseeded"]}
    made = train_and_register(user_python, repo, gate["url"], plan)

    refusal = made["refused"]["gated-unseeded"]
    assert refusal.startswith("INVALID_PARAMETER_VALUE: mlrepro gate: refusing to register")
    assert f"run {made['run']} fails the production gate" in refusal
    assert "  - seeds: no global seed recorded" in refusal
    assert f"mlrepro check {made['run']} --track production" in refusal
    assert _versions(gate["url"], "gated-unseeded") == []
    audit = gate["log"].read_text()
    assert f"REFUSE model='gated-unseeded' run={made['run']} failed=" in audit
    assert "seeds" in audit.split(f"REFUSE model='gated-unseeded' run={made['run']}")[1]

    # outside MLREPRO_GATE_MODELS: registered as MLflow always does, with no gate tag
    [untouched] = _versions(gate["url"], "scratch-unseeded")
    assert "repro.gate" not in untouched.tags

    # copying that version under a gated name is registering the same run: refused
    client = _client(gate["url"])
    client.create_registered_model("gated-copy")
    with pytest.raises(Exception, match=f"run {made['run']} fails the production gate"):
        client.create_model_version("gated-copy", f"models:/scratch-unseeded/{untouched.version}")
    assert _versions(gate["url"], "gated-copy") == []


@pytest.mark.slow
def test_promoting_a_complete_exploratory_run_lets_it_register(
    gate: dict[str, Any], user_python: str, tmp_path: Path, data_file: str
) -> None:
    repo = user_project(tmp_path / "project")
    plan = {"seed": 3, "data": {"train": data_file}, "register": ["gated-promoted"]}
    made = train_and_register(user_python, repo, gate["url"], plan)
    refusal = made["refused"]["gated-promoted"]
    assert "  - environment:" in refusal and "  - data:" in refusal
    assert f"fix: `mlrepro promote {made['run']}`" in refusal

    promote = subprocess.run(
        [user_python, "-m", "repro_common", "promote", made["run"], "--tracking-uri", gate["url"]],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert promote.returncode == 0, promote.stdout + promote.stderr
    version = _register(gate["url"], "gated-promoted", made["run"])
    assert version.version == "1"
    tagged = _client(gate["url"]).get_model_version("gated-promoted", "1")
    assert tagged.tags["repro.gate"].startswith("passed production blake3:")


@pytest.mark.slow
def test_a_logged_model_is_traced_to_the_run_that_logged_it(
    gate: dict[str, Any], user_python: str, tmp_path: Path
) -> None:
    repo = user_project(tmp_path / "project")
    plan = {"logged_model": True, "register": ["team-logged"]}
    made = train_and_register(user_python, repo, gate["url"], plan)
    assert made["uri"].startswith("models:/m-")
    refusal = made["refused"]["team-logged"]
    assert f"run {made['run']} fails the production gate" in refusal
    assert "  - seeds:" in refusal
    assert _versions(gate["url"], "team-logged") == []


@pytest.mark.slow
def test_the_ui_route_is_guarded_and_a_run_without_a_record_is_refused_for_that(
    gate: dict[str, Any],
) -> None:
    client = _client(gate["url"])
    experiment = client.create_experiment(f"bare-{time.time_ns()}")
    bare = client.create_run(experiment).info.run_id  # a run made without mlrepro
    client.log_text(bare, "artifact_path: model\n", "model/MLmodel")
    client.create_registered_model("gated-ui")
    body = {"name": "gated-ui", "source": f"runs:/{bare}/model", "run_id": bare}

    for route in (
        "/ajax-api/2.0/mlflow/model-versions/create",
        "/api/2.0/mlflow/model-versions/create",
    ):
        status, answer = _post(gate["url"], route, body)
        assert status == 400, (route, answer)
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "no repro/manifest.json in the run" in answer["message"]
        assert "was mlflow_repro_plugin installed when it ran?" in answer["message"]
    assert _versions(gate["url"], "gated-ui") == []

    # a source under no run (MLflow itself accepts such a URI): nothing to check, so refused
    elsewhere = {"name": "gated-ui", "source": "s3://team-bucket/models/churn"}
    status, answer = _post(gate["url"], "/api/2.0/mlflow/model-versions/create", elsewhere)
    assert status == 400 and "is under no run's artifacts" in answer["message"]
    assert _versions(gate["url"], "gated-ui") == []


@pytest.mark.slow
def test_a_tampered_manifest_is_refused(
    gate: dict[str, Any], production_run: dict[str, Any], tmp_path: Path
) -> None:
    copy, files = _copy_of(gate["url"], production_run["run"], tmp_path, pending=False)
    manifest = json.loads((files / "manifest.json").read_text())
    manifest["seeds"]["global"] = 8  # someone "fixes" the seed in the shared store
    (files / "manifest.json").write_text(json.dumps(manifest))
    _client(gate["url"]).log_artifacts(copy, str(files), "repro")

    with pytest.raises(Exception) as refused:
        _register(gate["url"], "gated-tampered", copy)
    assert "  - manifest: tampered" in str(refused.value)
    assert _versions(gate["url"], "gated-tampered") == []


@pytest.mark.slow
def test_a_passing_run_cannot_vouch_for_files_outside_its_artifacts(
    gate: dict[str, Any], production_run: dict[str, Any]
) -> None:
    good = production_run["run"]
    _client(gate["url"]).create_registered_model("gated-elsewhere")
    body = {"name": "gated-elsewhere", "source": "s3://team-bucket/models/churn", "run_id": good}
    status, answer = _post(gate["url"], "/api/2.0/mlflow/model-versions/create", body)
    assert status == 400
    assert f"is not under the artifacts of run {good}" in answer["message"]
    assert _versions(gate["url"], "gated-elsewhere") == []


@pytest.mark.slow
def test_a_record_still_uploading_is_awaited(
    gate: dict[str, Any], production_run: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow_repro_plugin.provider import ERRORS_TAG

    run, files = _copy_of(gate["url"], production_run["run"], tmp_path, pending=True)
    outcome = _register_in_background(gate["url"], "gated-late", run)
    time.sleep(1.5)  # the registration is in: the files land only now
    client = _client(gate["url"])
    client.log_artifacts(run, str(files), "repro")
    client.delete_tag(run, ERRORS_TAG)
    outcome["thread"].join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["version"].version == "1"
    assert f"run {run}: record in flight" in gate["log"].read_text()
    assert f"run {run}: record arrived" in gate["log"].read_text()


@pytest.mark.slow
def test_files_announced_by_the_creation_tags_are_awaited_one_by_one(
    gate: dict[str, Any], production_run: dict[str, Any], tmp_path: Path
) -> None:
    run, files = _copy_of(gate["url"], production_run["run"], tmp_path, pending=False)
    client = _client(gate["url"])
    client.set_tag(run, "repro.artifacts", "manifest.json,requirements.txt,Dockerfile")
    client.log_artifact(run, str(files / "manifest.json"), "repro")
    client.log_artifacts(run, str(files / "data"), "repro/data")
    outcome = _register_in_background(gate["url"], "gated-announced", run)
    time.sleep(1.5)  # the environment spec lands only now
    client.log_artifact(run, str(files / "requirements.txt"), "repro")
    client.log_artifact(run, str(files / "Dockerfile"), "repro")
    outcome["thread"].join(120)
    assert "error" not in outcome, outcome.get("error")
    log = gate["log"].read_text()
    assert (
        f"run {run}: record in flight (repro/Dockerfile, repro/requirements.txt not stored yet)"
        in log
    )


def _register_in_background(url: str, name: str, run: str) -> dict[str, Any]:
    """Start registering `runs:/<run>/model` as `name`; the dict gets `version` or `error`."""
    outcome: dict[str, Any] = {}

    def register() -> None:
        started = time.monotonic()
        try:
            outcome["version"] = _register(url, name, run)
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    outcome["thread"] = threading.Thread(target=register)
    outcome["thread"].start()
    return outcome


@pytest.mark.slow
def test_a_record_that_never_arrives_is_refused_while_the_server_keeps_answering(
    gate: dict[str, Any], production_run: dict[str, Any], tmp_path: Path
) -> None:
    run, _ = _copy_of(gate["url"], production_run["run"], tmp_path, pending=True)
    outcome = _register_in_background(gate["url"], "gated-never", run)
    registering = outcome["thread"]
    time.sleep(1.0)
    answered = time.monotonic()
    status, found = _post(gate["url"], "/api/2.0/mlflow/experiments/search", {"max_results": 5})
    assert status == 200 and found["experiments"]
    assert registering.is_alive(), "the gate decided before the wait: nothing was in flight?"
    assert time.monotonic() - answered < WAIT
    registering.join(120)
    assert "version" not in outcome
    assert "record incomplete: repro/manifest.json never arrived" in str(outcome["error"])
    assert outcome["seconds"] >= WAIT - 1
    assert f"run {run}: record still incomplete" in gate["log"].read_text()
    with urllib.request.urlopen(gate["url"] + "/health", timeout=10) as alive:
        assert alive.status == 200


def test_the_gate_reads_its_configuration_from_the_server_environment() -> None:
    from mlflow_repro_plugin.registry_gate import GateConfig, GateConfigError

    default = GateConfig.from_env({})
    assert default.enabled and default.track == "production" and default.wait == 10.0
    assert default.applies_to("anything")
    chosen = GateConfig.from_env(
        {"MLREPRO_GATE_MODELS": "prod-*, team/*", "MLREPRO_GATE_TRACK": "exploratory"}
    )
    assert chosen.applies_to("prod-churn") and chosen.applies_to("team/x")
    assert not chosen.applies_to("scratch") and chosen.track == "exploratory"
    assert not GateConfig.from_env({"MLREPRO_GATE_DISABLE": "1"}).applies_to("prod-churn")
    with pytest.raises(GateConfigError, match="MLREPRO_GATE_TRACK"):
        GateConfig.from_env({"MLREPRO_GATE_TRACK": "prod"})
    with pytest.raises(GateConfigError, match="MLREPRO_GATE_WAIT"):
        GateConfig.from_env({"MLREPRO_GATE_WAIT": "soon"})


@pytest.mark.slow
def test_behind_basic_auth_only_an_authorized_caller_reaches_the_gate(
    user_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth needs mlflow[auth]")
    auth_ini = tmp_path / "basic_auth.ini"
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    settings = {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-admin-password-1",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret",
    }
    with mlflow_server(
        tmp_path / "server", app_name="mlrepro-gate-auth", python=user_python, extra_env=settings
    ) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-admin-password-1")
        client = _client(url)
        bare = client.create_run(client.create_experiment("bare")).info.run_id
        client.log_text(bare, "artifact_path: model\n", "model/MLmodel")
        client.create_registered_model("churn")
        body = {"name": "churn", "source": f"runs:/{bare}/model", "run_id": bare}

        anonymous, _ = _post(url, "/api/2.0/mlflow/model-versions/create", body)
        assert anonymous == 401  # basic-auth answers first: the gate never reads the run
        with pytest.raises(Exception, match="no repro/manifest.json in the run"):
            client.create_model_version("churn", f"runs:/{bare}/model", run_id=bare)
        assert list(client.search_model_versions("name = 'churn'")) == []
        log = (tmp_path / "server" / "server.log").read_text()
        assert f"REFUSE model='churn' run={bare}" in log
        assert log.count("mlrepro gate: REFUSE") == 1
