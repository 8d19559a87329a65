"""Put `repro/` into the run MLflow has just created, from one background thread.

MLflow gives a run-context provider no hook after the run exists: `tags()` runs
before `create_run`, and the run id comes back to MLflow only. So `tags()` gives
the new run a unique `repro.capture.id` tag, and a `repro.artifacts` tag naming
what `repro/` will hold, and queues a job; a daemon thread finds the run by that
id (in the creating frame's locals once `create_run` has returned, else with a
tag search), uploads the files and logs the tracked inputs. On a shared server an
exploratory run costs one extra request (`repro/manifest.json`), two with tracked
inputs (one `log-inputs` for all of them), plus `repro/code.diff` when the tree was
dirty. Nothing is written to be deleted later: a run whose upload never happens
(tracking server gone, object store down, process killed) has the announcement
without the files, which readers report as an incomplete record. A failure this
process sees (the store refused the upload after the retries) is written to
`repro.capture.errors`: one request, on the failure path only.
`start_run` pays only for queueing. At exit we wait for the queue at most
MLREPRO_UPLOAD_TIMEOUT seconds (default 30), which is also how long a job
retries, with exponential backoff, before it gives up with one warning.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_repro_plugin import datasets
from mlflow_repro_plugin.failures import retry, upload_timeout, warn_once
from mlflow_repro_plugin.run_site import RunNeverCreated, find_runs
from mlflow_repro_plugin.tags import ERRORS_TAG, errors_value, manifest_tags

if TYPE_CHECKING:
    from repro_common.manifest import Manifest

log = logging.getLogger("mlrepro")

RANK_SEEDS_WAIT = 3.0  # seconds the record waits for other ranks' seeds (DDP)
IDLE_EXIT = 2.0  # seconds the worker waits for more work before its thread ends
# run id -> (capture id, track) of the runs this process recorded: a later refresh of one
# (inputs a training found, reaching its MLFlowLogger run) needs both without a request.
_created: dict[str, tuple[str, str]] = {}


@dataclass
class UploadJob:
    """One run to complete: found by `capture_id`, or known by `run_id` for a refresh."""

    capture_id: str
    manifest: Manifest | None
    client: Any = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    frame: Any = None
    run_id: str | None = None
    refresh_items: list[dict[str, Any]] | None = None
    track: str | None = None
    deadline: float = 0.0
    run_ids: list[str] = field(default_factory=list)
    artifact_uris: dict[str, str] = field(default_factory=dict)
    # Decided when the run is tagged, so the digest tag covers the bytes uploaded later.
    files: dict[str, bytes] | None = None


class Uploader:
    """A FIFO of jobs and one daemon worker; `flush` waits for it, bounded."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[UploadJob] = deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._hooked = False
        self._pid = os.getpid()
        self._exit_deadline: float | None = None

    def _after_fork(self) -> None:
        """A forked child owns no worker and no parent's jobs."""
        self._cond = threading.Condition()
        self._queue = deque()
        self._busy = False
        self._thread = None
        self._pid = os.getpid()

    def submit(self, job: UploadJob) -> None:
        job.deadline = time.monotonic() + upload_timeout()
        with self._cond:
            if self._pid != os.getpid():
                self._after_fork()
            if job.refresh_items is not None:
                for queued in self._queue:
                    if queued.refresh_items is not None and queued.run_id == job.run_id:
                        queued.refresh_items.extend(job.refresh_items)
                        return
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="mlrepro-uploader", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        self._hook_exit()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job is done; False when `timeout` (default: the upload timeout) ran out."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + (upload_timeout() if timeout is None else timeout)
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_EXIT)
                if not self._queue:
                    # No thread lingers between runs (a forking DataLoader then copies none).
                    self._thread = None
                    return
                job = self._queue.popleft()
                self._busy = True
            try:
                process(job)
            except Exception as exc:  # the worker must survive anything a store throws
                warn_once("upload", "mlrepro could not complete a run's repro/ record: %r", exc)
            finally:
                job.frame = None  # the creating frame keeps the caller's locals alive
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _hook_exit(self) -> None:
        if self._hooked:
            return
        self._hooked = True
        # threading's exit hooks run before concurrent.futures refuses new work (which boto3/S3
        # uploads need) and before plain atexit; the atexit one catches runs started later.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            try:
                register(self._at_exit)
            except RuntimeError:  # pragma: no cover - already shutting down
                pass
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        """Wait for the queue, at most MLREPRO_UPLOAD_TIMEOUT in all (both hooks share one deadline)."""
        try:
            if self._pid != os.getpid() or not self.pending():
                return
            timeout = upload_timeout()
            if self._exit_deadline is None:
                self._exit_deadline = time.monotonic() + timeout
            if not self.flush(max(0.0, self._exit_deadline - time.monotonic())):
                warn_once(
                    "exit-timeout",
                    "mlrepro: %d run(s) still had repro/ artifacts to upload after %.0fs "
                    "(MLREPRO_UPLOAD_TIMEOUT); `show` and the gate will call their records incomplete",
                    self.pending(),
                    timeout,
                )
        except Exception:  # pragma: no cover - never fail the interpreter's exit
            pass


UPLOADER = Uploader()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=UPLOADER._after_fork)


def schedule(job: UploadJob) -> None:
    """Queue a job (cheap: no I/O in the caller's thread)."""
    UPLOADER.submit(job)


def flush(timeout: float | None = None) -> bool:
    """Block until this process's runs have their `repro/` artifacts; False on timeout."""
    return UPLOADER.flush(timeout)


def _client(job: UploadJob) -> Any:
    if job.client is not None:
        return job.client
    from mlflow.tracking import MlflowClient

    job.client = MlflowClient(job.tracking_uri)
    return job.client


def _artifact_repo(client: Any, artifact_uri: str | None) -> Any:
    """The run's artifact store, straight from its URI: `client.log_artifacts` would first
    fetch the run again only to read that URI (one more request per run on a shared server).
    None where MLflow must resolve the URI itself (Databricks profiles)."""
    tracking_uri = getattr(client, "tracking_uri", None)
    if not artifact_uri or not tracking_uri or str(tracking_uri).startswith("databricks"):
        return None
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    except Exception:  # an MLflow without this signature: let the client resolve it
        return None


def _log_files(
    client: Any, run_id: str, files: dict[str, bytes], artifact_uri: str | None = None
) -> None:
    from repro_common.artifacts import ARTIFACT_DIR

    with tempfile.TemporaryDirectory(prefix="mlrepro-") as tmp:
        for name, content in files.items():
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        repo = _artifact_repo(client, artifact_uri)
        if repo is not None:
            repo.log_artifacts(tmp, ARTIFACT_DIR)
        else:
            client.log_artifacts(run_id, tmp, artifact_path=ARTIFACT_DIR)


def prepare(manifest: Manifest) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """(the run's repro/ files, why they could not be built): called before the run is
    tagged, because listing the files re-digests the manifest."""
    errors: list[dict[str, Any]] = []
    return _files(manifest, errors), errors


def _files(manifest: Manifest, errors: list[dict[str, Any]]) -> dict[str, bytes]:
    """The run's `repro/` files (repro_common.artifacts.record_files: the one place that decides
    them per track); the manifest alone, and the reason in `errors`, when they cannot be built."""
    from repro_common.artifacts import MANIFEST, record_files
    from repro_common.isolation import error_entry

    try:
        return record_files(manifest)
    except Exception as exc:
        errors.append(error_entry("artifacts", exc))
        return {MANIFEST: manifest.to_json().encode()}


def process(job: UploadJob) -> None:
    """Complete one run (or refresh one run's record); failures become a warning and a tag."""
    client = _client(job)
    if job.refresh_items is not None:
        _refresh(client, job)
        return
    if job.manifest is None:
        return
    try:
        job.run_ids = retry(lambda: find_runs(client, job), job.deadline)
    except RunNeverCreated:
        log.debug("mlrepro: the run with capture id %s was never created", job.capture_id)
        return
    except Exception as exc:
        from repro_common.isolation import error_entry

        warn_once(
            "find-run",
            "mlrepro could not reach the new MLflow run to upload repro/ (%s); the run goes on and "
            "`show` and the gate will call its record incomplete",
            error_entry("artifacts", exc)["error"],
        )
        return
    for run_id in job.run_ids:
        _created[run_id] = (job.capture_id, job.manifest.track)
    _complete_ranks(job.manifest, job.deadline)
    if job.files is None:
        job.files, _ = prepare(job.manifest)
    errors: list[dict[str, Any]] = []  # beyond those tagged at creation
    from repro_common.artifacts import MANIFEST

    # `seeds.ranks` (outside the digest) may have been completed since the files were made.
    files = {**job.files, MANIFEST: job.manifest.to_json().encode()}
    for run_id in job.run_ids:
        _deliver(
            client, run_id, job.artifact_uris.get(run_id), job.manifest, job.deadline, files, errors
        )


def _complete_ranks(manifest: Manifest, deadline: float) -> None:
    """Add the seeds other ranks post just after the run began (the record is written once).

    Rank zero creates the run as soon as the process group is up; the other ranks post
    their seeds a moment later (repro_common.seeds.announce_rank_seed). `seeds.ranks` is
    outside the digest, so the tags written at creation stay right."""
    from repro_common import seeds
    from repro_common.summary import rank_seeds

    ranks = rank_seeds(manifest)
    if ranks is None or int(ranks.get("world_size") or 1) <= 1:
        return
    wait = max(0.0, min(RANK_SEEDS_WAIT, deadline - time.monotonic()))
    manifest.set_rank_seeds(seeds.await_rank_seeds(ranks, wait))


def _deliver(
    client: Any,
    run_id: str,
    artifact_uri: str | None,
    manifest: Manifest,
    deadline: float,
    files: dict[str, bytes],
    errors: list[dict[str, Any]],
) -> None:
    from repro_common.isolation import error_entry

    try:
        retry(lambda: _log_files(client, run_id, files, artifact_uri), deadline)
    except Exception as exc:
        reason = error_entry("artifacts", exc)["error"]
        warn_once(
            "upload",
            "mlrepro could not upload repro/ to MLflow run %s (%s); the run goes on and its "
            "repro.capture.errors tag says the artifacts are missing",
            run_id,
            reason,
        )
        note = f"artifacts: repro/ upload failed ({reason})"
        _tag_errors(client, run_id, manifest, errors, deadline, note)
        return
    if errors:  # the upload landed, but some file could not be built: say which, once
        _tag_errors(client, run_id, manifest, errors, deadline)
    if manifest.data:
        datasets.log_items(client, run_id, manifest.data, deadline)


def _tag_errors(
    client: Any,
    run_id: str,
    manifest: Manifest,
    errors: list[dict[str, Any]],
    deadline: float,
    note: str | None = None,
) -> None:
    """One `set-tag`: the collectors' errors (tagged at creation) plus what went wrong since."""
    value = errors_value([*manifest.errors, *errors], note)
    if not value:
        return
    try:
        retry(lambda: client.set_tag(run_id, ERRORS_TAG, value), deadline)
    except Exception as exc:
        if note is None:  # else the upload's warning said it; readers see the record incomplete
            warn_once(
                "tags", "mlrepro uploaded repro/ to run %s but could not tag it: %r", run_id, exc
            )


def _refresh(client: Any, job: UploadJob) -> None:
    """Inputs tracked while the run is active: log them, then re-record the manifest and its tags."""
    from repro_common.capture import capture

    run_id = job.run_id or ""
    datasets.log_items(client, run_id, job.refresh_items or [], job.deadline)
    if not job.capture_id and run_id in _created:  # a run this process created (MLFlowLogger)
        job.capture_id, job.track = _created[run_id]
    if not job.capture_id:
        return  # not a run we recorded (created with MLREPRO_DISABLE=1, or by another tool)
    try:
        manifest = capture(track=job.track, inputs=datasets.run_inputs(run_id))
        files = _refreshed_files(manifest, job.refresh_items or [])
        retry(lambda: _log_files(client, run_id, files), job.deadline)
        from mlflow.entities import RunTag

        tags = [RunTag(k, v) for k, v in manifest_tags(manifest).items()]
        retry(lambda: client.log_batch(run_id, tags=tags), job.deadline)
    except Exception as exc:
        warn_once(
            "refresh",
            "mlrepro could not add newly tracked data to run %s's record: %r",
            run_id,
            exc,
        )


def _refreshed_files(manifest: Manifest, items: list[dict[str, Any]]) -> dict[str, bytes]:
    """The new record and, on the production track, the snapshots of the inputs just tracked
    (the other files are already in `repro/` and have not changed)."""
    from repro_common.artifacts import MANIFEST, record_files
    from repro_common.snapshots import snapshot_prefix
    from repro_common.tracks import PRODUCTION

    files = record_files(manifest)  # always: it lists every file in the new digest
    if manifest.track != PRODUCTION:
        return {MANIFEST: files[MANIFEST]}
    prefixes = tuple(snapshot_prefix(str(item.get("name"))) + "/" for item in items)
    return {
        name: content
        for name, content in files.items()
        if name == MANIFEST or name.startswith(prefixes)
    }
