"""MLflow as a run source: read a run (run id or `runs:/<id>`) as a RunRecord, and set up and
find a reproduction's new run (`SOURCE`, registered under `mlrepro.run_sources`).

The CLI and CI call this with a user-typed tracking URI, so a wrong URI must fail
in seconds with one line: HTTP retries and timeouts are bounded while we talk to
the server (unless the user set MLflow's own variables), and a local store that
does not exist is reported instead of being created.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from repro_common.redact import strip_userinfo
from repro_common.runs import (
    DIGEST_TAG,
    ArtifactLayout,
    NewRunSearch,
    RerunSetup,
    RunNotFound,
    RunRecord,
    capture_errors_note,
    parse_manifest,
    record_incomplete,
)

MANIFEST_PATH = "repro/manifest.json"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
RUNS_URI = re.compile(r"^runs:/(?P<id>[0-9a-f]{32})(?:/.*)?$")
# MLflow's own variables, bounded while we read: a dead server fails in seconds, not minutes.
BOUNDED_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # our reads are small; keep stderr clean
}


def parse_ref(ref: str) -> str | None:
    """The run id in `ref` (32 hex digits, or runs:/<id>[/path]); None when it is not an MLflow ref."""
    ref = ref.strip()
    if RUN_ID.match(ref):
        return ref
    match = RUNS_URI.match(ref)
    return match.group("id") if match else None


def safe_uri(uri: str) -> str:
    """The URI without user-info or credential query parameters, for messages."""
    return strip_userinfo(uri)


@contextmanager
def bounded_http() -> Iterator[None]:
    """Bound MLflow's HTTP retries and timeout (and hide its progress bars) unless the user set them."""
    added = {k: v for k, v in BOUNDED_HTTP.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _missing_local_store(uri: str) -> str | None:
    """Why a local store URI names nothing (reading must never create an empty store)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :].split("?", 1)[0])
        if str(path) not in ("", ":memory:") and not path.is_file():
            return f"no MLflow database at {path}"
        return None
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        path = Path(parts.path if parts.scheme == "file" else uri)
        if not path.is_dir():
            return f"no MLflow store at {path}"
    return None


_NETWORK_REASONS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("Temporary failure in name resolution", "unknown host"),
    ("timed out", "timed out"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """A short reason: the network cause when there is one, else the message's first line."""
    text = str(exc).strip()
    for needle, reason in _NETWORK_REASONS:
        if needle in text:
            return reason
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "…"


class MlflowRunBackend:
    """An existing run's artifacts and tags through MlflowClient (finished runs included)."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def read_artifact(self, path: str) -> bytes | None:
        with bounded_http(), tempfile.TemporaryDirectory(prefix="mlrepro-read-") as tmp:
            try:
                local = self.client.download_artifacts(self.run_id, path, tmp)
            except Exception:
                return None
            target = Path(local)
            return target.read_bytes() if target.is_file() else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        pending = [prefix or None]
        with bounded_http():
            while pending:
                for info in self.client.list_artifacts(self.run_id, pending.pop()):
                    if info.is_dir:
                        pending.append(info.path)
                    else:
                        found.append(info.path)
        return sorted(found)

    def set_tags(self, tags: dict[str, str]) -> None:
        with bounded_http():
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        with bounded_http():
            self.client.log_artifact(self.run_id, local_path, artifact_path)


def _why_no_manifest(backend: Any, tags: dict[str, str], error: str) -> str:
    """Why the manifest could not be read: never uploaded (the tags say a record was made),
    unreadable right now (the listing fails too), or no record at all."""
    if not any(key.startswith("repro.") for key in tags):
        return error + " (no repro.* tags either: was mlflow_repro_plugin installed when it ran?)"
    try:
        listed = set(backend.list_artifacts("repro"))
    except Exception as exc:  # the store is unreachable: say so, not that the file is missing
        return f"cannot read repro/ of the run: {_first_line(exc)}"
    if MANIFEST_PATH in listed:
        return f"cannot read {MANIFEST_PATH} of the run (it is listed but did not download)"
    if tags.get(DIGEST_TAG):
        error = record_incomplete([MANIFEST_PATH])
    note = capture_errors_note(tags)
    return error + (f" (its repro.capture.errors tag: {note[:300]})" if note else "")


def load_run(ref: str, tracking_uri: str | None = None) -> RunRecord | None:
    """The MLflow run `ref` names; None when `ref` is no MLflow run ref; RunNotFound when unreadable."""
    run_id = parse_ref(ref)
    if run_id is None:
        return None
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise RunNotFound(
            f"{ref} looks like an MLflow run id but mlflow is not installed ({exc})"
        ) from exc
    uri = tracking_uri or mlflow.get_tracking_uri()
    shown = safe_uri(str(uri))
    missing = _missing_local_store(str(uri))
    if missing:
        raise RunNotFound(
            f"no MLflow run {run_id}: {missing} (set --tracking-uri or MLFLOW_TRACKING_URI)"
        )
    try:
        with bounded_http():
            client = MlflowClient(tracking_uri=uri)
            run = client.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise RunNotFound(f"no MLflow run {run_id} at {shown}") from exc
        if "API request to" in str(exc):  # MLflow's wrapper around a network failure
            raise RunNotFound(
                f"cannot reach the MLflow server at {shown}: {_first_line(exc)}"
            ) from exc
        raise RunNotFound(
            f"cannot read MLflow run {run_id} at {shown}: {_first_line(exc)}"
        ) from exc
    except Exception as exc:  # connection refused, DNS, TLS, a broken database: one line
        raise RunNotFound(f"cannot reach the MLflow store at {shown}: {_first_line(exc)}") from exc
    return record_of(
        ref, run, MlflowRunBackend(client, run_id), f"{shown} (experiment {run.info.experiment_id})"
    )


def record_of(ref: str, run: Any, backend: Any, location: str) -> RunRecord:
    """The RunRecord of an MLflow `Run` whose files `backend` reads (a client, or a server's own store)."""
    run_id = run.info.run_id
    manifest, error = parse_manifest(backend.read_artifact(MANIFEST_PATH))
    tags = dict(run.data.tags)
    if manifest is None and error and error.startswith("no repro/manifest.json"):
        error = _why_no_manifest(backend, tags, error)
    return RunRecord(
        ref=ref,
        kind="mlflow",
        manifest=manifest,
        manifest_error=error,
        run_id=run_id,
        location=location,
        tags=tags,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        backend=backend,
    )


# ------------------------------------------------------------------ reproduction


def _absolute_uri(uri: str) -> str:
    """Make a relative SQLite or file store absolute: the reproduction runs in another folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///") :]
        if rel and not rel.startswith(":memory:"):
            return "sqlite:///" + str(Path(rel).resolve())
    if "://" not in uri and uri and not uri.startswith("databricks"):
        return str(Path(uri).resolve())
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return Path(uri[len("file:") :].lstrip("/")).resolve().as_uri()
    return uri


def tracking_uri_for_rerun(tracking_uri: str | None) -> str:
    """The store the original MLflow run was read from (MLflow's default when none was given)."""
    if tracking_uri:
        return _absolute_uri(tracking_uri)
    import mlflow  # only reached for MLflow runs, so MLflow is installed

    return _absolute_uri(mlflow.get_tracking_uri())


def _experiment_of(uri: str, run_id: str) -> str | None:
    try:
        from mlflow.tracking import MlflowClient

        return str(MlflowClient(uri).get_run(run_id).info.experiment_id)
    except Exception:  # the run was readable moments ago; an experiment is only a nicety
        return None


def find_reproducing_run(
    uri: str, original: str, started_at: float, params: dict[str, str]
) -> str | None:
    """Runs of this store tagged as reproducing `original`, started since; the one whose params match."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    quoted = original.replace("'", "\\'")
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`repro.reproduces` = '{quoted}' "
        f"AND attributes.start_time >= {int(started_at * 1000) - 1000}",
        run_view_type=ViewType.ALL,
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    for run in runs:
        if params and dict(run.data.params) == dict(params):
            return str(run.info.run_id)
    return str(runs[0].info.run_id) if runs else None


# Run by hand, a relative store inherited from the caller's shell is made absolute against
# the caller's folder before the script changes into code/ (else a new store appears there).
ABSOLUTE_STORE = """\
case "${MLFLOW_TRACKING_URI:-}" in
  sqlite:////* | sqlite:///:memory:*) ;;
  sqlite:///*) MLFLOW_TRACKING_URI="sqlite:///$CALLER_DIR/${MLFLOW_TRACKING_URI#sqlite:///}" ;;
  file:///* | file://*/*) ;;
  file:*) MLFLOW_TRACKING_URI="file://$CALLER_DIR/${MLFLOW_TRACKING_URI#file:}" ;;
  "" | /* | *://* | databricks*) ;;
  *) MLFLOW_TRACKING_URI="$CALLER_DIR/$MLFLOW_TRACKING_URI" ;;
esac"""
TRACKING_URI = "MLFLOW_TRACKING_URI"


class MlflowSource:
    """MLflow runs: read by run id; a rerun logs to the original's store and experiment."""

    name = "mlflow"
    priority = 20  # a run id is a pattern; a folder of that name is read as a folder first
    rerun_priority = 10  # a run in the store the user named beats a run folder found on disk
    script_lines = (
        ABSOLUTE_STORE,
        f'if [ -n "${{{TRACKING_URI}:-}}" ]; then export {TRACKING_URI}; fi',
    )
    dropped_variables = ("MLFLOW_RUN_ID",)  # else the rerun would resume the caller's run
    build_ignores: tuple[str, ...] = ()
    dockerfile_hints = (
        f"# (add -e {TRACKING_URI}=<server> to log the new run where the original is)",
    )
    # An MLflow model folder (one holding an MLmodel): the MLmodel holds the run id, creation
    # time and model uuid; the spec files describe its environment or an input sample, and are
    # equal whenever the record's environment is.
    artifacts = ArtifactLayout(
        volatile={"MLmodel": "holds the run id, creation time and model uuid"},
        model_marker="MLmodel",
        model_spec_files=(
            "conda.yaml",
            "python_env.yaml",
            "requirements.txt",
            "input_example.json",
            "serving_input_example.json",
            "registered_model_meta",
        ),
    )

    def load_run(self, ref: str, tracking_uri: str | None = None) -> RunRecord | None:
        return load_run(ref, tracking_uri)

    def rerun_setup(
        self, original: RunRecord, tracking_uri: str | None, folder: Path
    ) -> RerunSetup:
        """The original's store and experiment for an MLflow run; the store the user named
        for a manifest file; nothing for another tracker's run."""
        if not (original.kind == self.name or (original.kind == "manifest" and tracking_uri)):
            return RerunSetup()
        uri = tracking_uri_for_rerun(tracking_uri)
        written = {TRACKING_URI: safe_uri(uri)}
        if original.kind == self.name and original.run_id:
            experiment = _experiment_of(uri, original.run_id)
            if experiment is not None:
                written["MLFLOW_EXPERIMENT_ID"] = experiment
        return RerunSetup(written, {**written, TRACKING_URI: uri}, where=uri)

    def find_new_runs(self, search: NewRunSearch) -> list[RunRecord]:
        """The run tagged as reproducing the original in the store the rerun logged to."""
        uri = search.env.get(TRACKING_URI)
        if not uri:
            return []
        run_id = find_reproducing_run(
            uri, search.reproduces, search.started_at, search.original.params
        )
        if not run_id:
            return []
        found = load_run(run_id, uri)
        return [found] if found is not None else []

    def reload(self, run: RunRecord, env: dict[str, str]) -> RunRecord:
        """The run read again (its adapter may still be uploading the record)."""
        again = load_run(str(run.run_id or run.ref), env.get(TRACKING_URI))
        return again if again is not None else run


SOURCE = MlflowSource()
