"""`mlflow server --app-name mlrepro-gate`: a tracking server that refuses to register a model
whose source run fails the reproducibility gate.

MLflow's webhooks fire after a version exists and cannot refuse it, so the gate is a
`before_request` hook on the tracking server's own Flask app (the mechanism MLflow's
`basic-auth` app uses). It guards every route that creates a model version (the REST
API and the UI's `/ajax-api/` twin), finds the run behind the source (`runs:/`, the
`run_id` field, an artifact URI under a run, a logged model `models:/<model_id>`, or
an existing version `models:/<name>/<version>`), reads the run's record from the
server's own backend and artifact store, and answers HTTP 400 in MLflow's error shape
when it fails: `mlflow.register_model` raises, the UI shows the reasons. A record it
cannot read is a refusal, never a pass. A version that passes is tagged
`repro.gate = passed <track> <digest>`; every verdict is one line in the server log.

Configured by the server's environment (see `GateConfig`). A run registered on the
line after it ended may still be uploading its record: when the run's tags announce
`repro/` files that are not there yet and the run ended moments ago, the gate polls
for them for up to MLREPRO_GATE_WAIT seconds (and logs that it waits).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import posixpath
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("mlrepro.gate")

CREATE_VERSION_SUFFIX = "/mlflow/model-versions/create"  # /api/2.0/... and /ajax-api/2.0/...
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RUN_ID_IN_PATH = re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{32}(?![0-9a-zA-Z])")
MODEL_ID_IN_PATH = re.compile(r"(?<![0-9a-zA-Z-])m-[0-9a-f]{32}(?![0-9a-zA-Z])")
PROMPT_TAG = "mlflow.prompt.is_prompt"
ARTIFACTS_TAG = "repro.artifacts"  # creation tag: the files repro/ will hold (comma-separated)
DEFAULT_WAIT = 10.0
RECENTLY_ENDED = 60.0  # seconds after its end a run's upload may still be in flight
POLL = 0.2
TRUTHY = ("1", "true", "yes", "on")


class GateConfigError(ValueError):
    """A server variable has a value the gate cannot use: the server refuses to start."""


@dataclass(frozen=True)
class GateConfig:
    """The server's variables: MLREPRO_GATE_DISABLE, _TRACK, _MODELS, _WAIT, _ALLOW_PACKAGES."""

    enabled: bool = True
    track: str = "production"
    models: tuple[str, ...] = ("*",)
    wait: float = DEFAULT_WAIT
    allow_packages: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GateConfig:
        from repro_common.manifest import TRACKS

        env = os.environ if environ is None else environ
        track = env.get("MLREPRO_GATE_TRACK", "").strip() or "production"
        if track not in TRACKS:
            raise GateConfigError(
                f"MLREPRO_GATE_TRACK={track!r}: choose one of {', '.join(TRACKS)}"
            )
        raw_wait = env.get("MLREPRO_GATE_WAIT", "").strip()
        try:
            wait = float(raw_wait) if raw_wait else DEFAULT_WAIT
        except ValueError:
            raise GateConfigError(
                f"MLREPRO_GATE_WAIT={raw_wait!r} is not a number of seconds"
            ) from None
        return cls(
            enabled=env.get("MLREPRO_GATE_DISABLE", "").strip().lower() not in TRUTHY,
            track=track,
            models=_split(env.get("MLREPRO_GATE_MODELS", "")) or ("*",),
            wait=max(0.0, wait),
            allow_packages=_split(env.get("MLREPRO_GATE_ALLOW_PACKAGES", "")),
        )

    def applies_to(self, model: str) -> bool:
        return self.enabled and any(fnmatch.fnmatchcase(model, p) for p in self.models)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass
class Verdict:
    """What the gate decided for one request; `message` is what a refused caller reads."""

    model: str
    run_id: str | None
    passed: bool
    message: str
    failed: tuple[str, ...] = ()
    tag: str | None = None  # the repro.gate value for a version that passed


# ---- which run a model version comes from -------------------------------------------------


def _logged_model_run(model_id: str, tracking_store: Any) -> tuple[str | None, str]:
    model = tracking_store.get_logged_model(model_id)
    run_id = getattr(model, "source_run_id", None)
    if not run_id:
        return None, f"logged model {model_id} was logged outside any run: it has no record"
    return run_id, f"logged model {model_id}"


def _within(source: str, root: str) -> bool:
    """`source` is `root` or below it (a local path and its file:// URI compare equal)."""

    def plain(uri: str) -> str:
        for prefix in ("file://", "file:"):
            if uri.startswith(prefix):
                return uri[len(prefix) :]
        return uri

    source, root = plain(source).rstrip("/"), plain(root).rstrip("/")
    return bool(root) and (source == root or source.startswith(root + "/"))


def _run_under_uri(source: str, tracking_store: Any) -> tuple[str | None, str]:
    """A run (or a run's logged model) whose artifact root holds `source`, checked in the store."""
    for model_id in MODEL_ID_IN_PATH.findall(source):
        try:
            model = tracking_store.get_logged_model(model_id)
        except Exception:
            continue
        if _within(source, str(model.artifact_location)):
            return _logged_model_run(model_id, tracking_store)
    for run_id in RUN_ID_IN_PATH.findall(source):
        try:
            run = tracking_store.get_run(run_id)
        except Exception:
            continue
        if _within(source, str(run.info.artifact_uri)):
            return run_id, "artifact URI under the run"
    return None, f"the source {source!r} is under no run's artifacts: the gate cannot check it"


def source_run(
    body: Mapping[str, Any], tracking_store: Any, registry_store: Any
) -> tuple[str | None, str]:
    """(run id, how it was found) for a create-model-version request, or (None, why not)."""
    from mlflow.store.artifact.utils.models import _parse_model_uri, get_model_name_and_version

    source = str(body.get("source") or "").strip()
    model_id = str(body.get("model_id") or "").strip()
    run_id = str(body.get("run_id") or "").strip()
    scheme = urlparse(source).scheme
    if scheme == "models":
        parsed = _parse_model_uri(source)
        if parsed.model_id is not None:
            return _logged_model_run(parsed.model_id, tracking_store)
        name, version = get_model_name_and_version(registry_store, source)
        existing = registry_store.get_model_version(name, version)
        if existing.run_id:
            return existing.run_id, f"version {version} of {name!r}"
        if existing.model_id:
            return _logged_model_run(existing.model_id, tracking_store)
        return None, f"version {version} of {name!r} names no run: the gate cannot check it"
    if model_id:
        return _logged_model_run(model_id, tracking_store)
    if scheme == "runs":
        parts = source[len("runs:") :].lstrip("/").split("/", 1)
        if RUN_ID.match(parts[0]):
            return parts[0], "runs:/ URI"
    if source:
        # The files registered are the source's: a run_id naming another (passing) run must
        # not vouch for them, so the source has to lie under a run's artifacts.
        found, how = _run_under_uri(source, tracking_store)
        if found is None and run_id:
            how = (
                f"the source {source!r} is not under the artifacts of run {run_id}: "
                "the gate cannot check what it registers"
            )
        return found, how
    if run_id:
        return run_id, "run_id field"
    return None, "the request names no source"


# ---- the run's record, read from the server's own stores ----------------------------------


class ServerRunFiles:
    """A run's artifacts read straight from the store this server writes them to (read-only)."""

    def __init__(self, run: Any) -> None:
        from mlflow.server import handlers

        root = run.info.artifact_uri
        if handlers._is_servable_proxied_run_artifact_root(root):
            # mlflow-artifacts:/ roots live under --artifacts-destination.
            self.repo = handlers._get_artifact_repo_mlflow_artifacts()
            self.base = handlers._get_proxied_run_artifact_destination_path(root) or ""
        else:
            self.repo = handlers._get_artifact_repo(run)
            self.base = ""

    def _path(self, path: str) -> str:
        return posixpath.join(self.base, path) if self.base else path

    def read_artifact(self, path: str) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="mlrepro-gate-") as tmp:
            try:
                local = Path(self.repo.download_artifacts(self._path(path), tmp))
            except Exception:
                return None
            return local.read_bytes() if local.is_file() else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        pending = [prefix]
        while pending:
            for info in self.repo.list_artifacts(self._path(pending.pop()) or None) or []:
                relative = posixpath.relpath(info.path, self.base) if self.base else info.path
                (pending if info.is_dir else found).append(relative)
        return sorted(found)

    def set_tags(self, tags: dict[str, str]) -> None:
        raise PermissionError("the registry gate only reads runs")

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        raise PermissionError("the registry gate only reads runs")


def announced_files(tags: Mapping[str, str]) -> set[str]:
    """The `repro/` files the run's creation tags say its upload will store."""
    from repro_common.artifacts import SNAPSHOTS, parse_announcement
    from repro_common.gate import DIGEST_TAG

    names = set(parse_announcement(tags.get(ARTIFACTS_TAG)) or [])
    names.discard(
        SNAPSHOTS
    )  # `data/*`: the manifest lists the snapshot files, the data rule judges
    if DIGEST_TAG in tags:
        names.add("manifest.json")
    return {name if name.startswith("repro/") else f"repro/{name}" for name in names}


def upload_in_flight(tags: Mapping[str, str], stored: set[str]) -> str | None:
    """Why the run's record looks still on its way, or None when nothing announced is missing."""
    from repro_common.runs import ERRORS_TAG, LEGACY_PENDING_NOTE

    missing = sorted(announced_files(tags) - stored)
    if missing:
        return f"{', '.join(missing)} not stored yet"
    if LEGACY_PENDING_NOTE in tags.get(ERRORS_TAG, ""):  # a run recorded by an older plugin
        return "its repro.capture.errors tag says the upload is pending"
    return None


def ended_recently(run: Any, now: float | None = None) -> bool:
    """Still running, or ended within RECENTLY_ENDED seconds: its uploader may still be at work."""
    if run.info.status == "RUNNING" or not run.info.end_time:
        return True
    now_ms = (now if now is not None else time.time()) * 1000
    return now_ms - run.info.end_time <= RECENTLY_ENDED * 1000


def read_record(run_id: str, tracking_store: Any, wait: float) -> Any:
    """The run's RunRecord from the server's own stores, waiting up to `wait` s for an upload in flight."""
    from mlflow_repro_plugin.source import record_of

    deadline = time.monotonic() + wait
    waited = False
    while True:
        run = tracking_store.get_run(run_id)
        files = ServerRunFiles(run)
        reason = upload_in_flight(run.data.tags, set(files.list_artifacts("repro")))
        if reason is None or not ended_recently(run) or time.monotonic() >= deadline:
            break
        if not waited:
            log.info(
                "mlrepro gate: run %s: record in flight (%s); waiting up to %.0f s (MLREPRO_GATE_WAIT)",
                run_id,
                reason,
                wait,
            )
            waited = True
        time.sleep(POLL)
    if waited:
        outcome = f"still incomplete ({reason})" if reason else "arrived"
        log.info("mlrepro gate: run %s: record %s", run_id, outcome)
    return record_of(
        run_id, run, files, f"this server's store (experiment {run.info.experiment_id})"
    )


# ---- the verdict -------------------------------------------------------------------------


NO_RUN_FIX = "register a model logged by a run that mlrepro recorded"
STORE_FIX = (
    "nothing is registered unchecked: check that the source names a run or logged model "
    "this server holds, or try again once its store answers"
)


def _refusal(model: str, run_id: str | None, why: str, fix: str) -> Verdict:
    """A refusal before any rule could be checked: the record is out of reach."""
    message = f"mlrepro gate: refusing to register {model!r}: {why}\nfix: {fix}"
    return Verdict(model, run_id, False, message, failed=("manifest",))


def judge(
    body: Mapping[str, Any], config: GateConfig, tracking_store: Any, registry_store: Any
) -> Verdict | None:
    """The gate's verdict for one create-model-version request; None when it does not apply."""
    from repro_common.gate import DIGEST_TAG, check_run
    from repro_common.registration import passed_value, refusal_message

    model = str(body.get("name") or "")
    tags = {
        str(t.get("key")): str(t.get("value"))
        for t in body.get("tags") or []
        if isinstance(t, dict)
    }
    # A prompt version's source is a placeholder MLflow enforces: no model, no run to check.
    if tags.get(PROMPT_TAG, "").lower() == "true" or not config.applies_to(model):
        return None
    try:
        run_id, how = source_run(body, tracking_store, registry_store)
    except Exception as exc:
        return _refusal(
            model, None, f"cannot find the run behind the source ({_one_line(exc)})", STORE_FIX
        )
    if run_id is None:
        return _refusal(model, None, how, NO_RUN_FIX)
    try:
        record = read_record(run_id, tracking_store, config.wait)
        report = check_run(record, config.track, config.allow_packages)
    except Exception as exc:
        return _refusal(
            model, run_id, f"cannot read the record of run {run_id} ({_one_line(exc)})", STORE_FIX
        )
    if not report.passed:
        return Verdict(model, run_id, False, refusal_message(report, model), tuple(report.failed))
    digest = record.tags.get(DIGEST_TAG)
    return Verdict(model, run_id, True, report.summary(), tag=passed_value(report, digest))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _audit(verdict: Verdict, track: str) -> None:
    log.info(
        "mlrepro gate: %s model=%r run=%s failed=%s track=%s",
        "PASS" if verdict.passed else "REFUSE",
        verdict.model,
        verdict.run_id or "-",
        ",".join(verdict.failed) or "-",
        track,
    )


# ---- the Flask hooks and the app factory ----------------------------------------------------


def _request_body(request: Any) -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if isinstance(body, str):  # older clients double-encode
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    return body if isinstance(body, dict) else {}


def install(app: Any, config: GateConfig | None = None) -> Any:
    """Add the gate's hooks to MLflow's Flask app; returns the app."""
    from flask import Response, g, request
    from mlflow.server import handlers

    gate = config or GateConfig.from_env()

    def before_request() -> Any:
        if request.method != "POST" or not request.path.endswith(CREATE_VERSION_SUFFIX):
            return None
        if not gate.enabled:
            return None
        verdict = judge(
            _request_body(request),
            gate,
            handlers._get_tracking_store(),
            handlers._get_model_registry_store(),
        )
        if verdict is None:
            return None
        _audit(verdict, gate.track)
        if verdict.passed:
            g.mlrepro_gate = verdict
            return None
        body = {"error_code": "INVALID_PARAMETER_VALUE", "message": verdict.message}
        return Response(json.dumps(body), status=400, mimetype="application/json")

    def after_request(response: Any) -> Any:
        verdict = getattr(g, "mlrepro_gate", None)
        if verdict is None or response.status_code != 200 or not verdict.tag:
            return response
        try:
            created = json.loads(response.get_data(as_text=True))["model_version"]
            handlers._get_model_registry_store().set_model_version_tag(
                created["name"], created["version"], _version_tag(verdict.tag)
            )
        except Exception as exc:  # the version exists; a missing audit tag must not fail it
            log.warning("mlrepro gate: could not tag the new version of %r: %s", verdict.model, exc)
        return response

    app.before_request(before_request)
    app.after_request(after_request)
    return app


def _version_tag(value: str) -> Any:
    from mlflow.entities.model_registry import ModelVersionTag

    from repro_common.registration import PASSED_TAG

    return ModelVersionTag(PASSED_TAG, value)


def _audit_to_stderr() -> None:
    """The server's log shows our verdicts unless the operator routed the logger already."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _served(app: Any) -> Any:
    """Under uvicorn (MLflow 3's default) the Flask app is served inside MLflow's FastAPI app."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app


def create_app(app: Any = None) -> Any:
    """Entry point `mlrepro-gate` (group `mlflow.app`): the tracking server with the gate."""
    from mlflow.server import app as tracking_app

    config = GateConfig.from_env()
    _audit_to_stderr()
    log.info(
        "mlrepro gate: %s; track %s; models %s; wait %.0f s",
        "on" if config.enabled else "OFF (MLREPRO_GATE_DISABLE)",
        config.track,
        ",".join(config.models),
        config.wait,
    )
    return _served(install(app if app is not None else tracking_app, config))


def create_app_with_basic_auth(app: Any = None) -> Any:
    """Entry point `mlrepro-gate-auth`: MLflow's `basic-auth` app with the gate behind it.

    `--app-name` takes one app, so this one builds both on the same Flask app: basic-auth's
    hooks first, then the gate's, so a caller is authenticated and authorized to create the
    version before the gate reads the run (an anonymous caller learns nothing about it).
    Configure basic-auth as usual (MLFLOW_AUTH_CONFIG_PATH, MLFLOW_AUTH_ADMIN_PASSWORD,
    MLFLOW_FLASK_SERVER_SECRET_KEY); the admin user is created by the first worker.
    """
    from mlflow.server import app as tracking_app
    from mlflow.server.auth import create_app as basic_auth_app

    flask_app = app if app is not None else tracking_app
    config = GateConfig.from_env()
    _audit_to_stderr()
    served = basic_auth_app(flask_app)  # registers its hooks; under uvicorn returns its FastAPI app
    install(flask_app, config)
    log.info(
        "mlrepro gate: behind basic-auth; track %s; models %s",
        config.track,
        ",".join(config.models),
    )
    return served
