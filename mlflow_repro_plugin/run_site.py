"""Finding the run MLflow is creating: from the frame that calls `create_run`, else by its tag.

A run-context provider is not told which run it tags, nor whether the call creates a
run at all (MLflow resolves tags for traces and models too). The frame that called
`resolve_tags` tells both; once `create_run` has returned, that frame also holds the
new Run. When it does not, the run's unique `repro.capture.id` tag finds it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow_repro_plugin.tags import CAPTURE_ID_TAG

FRAME_POLL = 0.005  # how often the worker looks whether `create_run` has returned
FRAME_WATCH = 1.0  # for this long, before it falls back to backing off
EXPERIMENT_CHUNK = 100


class PendingRun(Protocol):
    """What finding a run needs to know of it (an upload job), and where the finds are kept."""

    capture_id: str
    experiment_id: str | None
    frame: Any
    artifact_uris: dict[str, str]


class RunNotVisible(LookupError):
    """No run carries the capture id (yet): the creating thread may not have committed it."""


class RunNeverCreated(LookupError):
    """The call that was creating the run is over and no run carries the capture id."""


@dataclass
class RunSite:
    """Where MLflow is creating a run: the client that will create it and its experiment."""

    client: Any
    tracking_uri: str | None
    experiment_id: str | None
    frame: Any = None


def run_creation_site() -> RunSite | None:
    """The run being created by this `resolve_tags` call, or None when it creates no run.

    MLflow calls `resolve_tags` for runs (`mlflow.start_run`, Lightning's
    `MLFlowLogger.experiment`) but also for traces, dataset sources, logged models
    and evaluation datasets, and the provider API does not say which. The caller of
    `resolve_tags` tells: every run-creating caller passes the tags straight to a
    `create_run` call in the same function, so `create_run` is among the names its
    code object uses (`co_names`); none of the other callers in MLflow 2.12-3.x or
    Lightning uses that name (checked over their sources). This costs a few frame
    hops, needs no version table, and fails safe: an unknown caller gets no tags and
    no upload rather than an upload that would wait for a run that never comes.
    The same frame names the client that creates the run (its tracking URI may differ
    from the global one, as in Lightning) and the experiment; once `create_run` has
    returned, it also holds the new Run, which spares the uploader a search.
    """
    getframe = getattr(sys, "_getframe", None)
    if getframe is None:  # pragma: no cover - not CPython/PyPy: assume a run, use the globals
        return RunSite(client=None, tracking_uri=_global_tracking_uri(), experiment_id=None)
    frame = getframe(1)
    for _ in range(8):
        if frame is None:
            return None
        if (
            frame.f_code.co_name == "resolve_tags"
            and frame.f_globals.get("__name__") == "mlflow.tracking.context.registry"
        ):
            break
        frame = frame.f_back
    else:
        return None
    caller = frame.f_back if frame is not None else None
    if caller is None or "create_run" not in caller.f_code.co_names:
        return None
    site = _site_from(caller.f_locals)
    site.frame = caller
    return site


def _site_from(local_vars: dict[str, Any]) -> RunSite:
    client_cls = getattr(sys.modules.get("mlflow.tracking.client"), "MlflowClient", None)
    owner = local_vars.get("self")
    candidates = list(local_vars.values()) + list(getattr(owner, "__dict__", {}).values())
    client = next(
        (v for v in candidates if client_cls is not None and isinstance(v, client_cls)), None
    )
    experiment_id = None
    for value in (
        local_vars.get("exp_id_for_run"),
        local_vars.get("experiment_id"),
        getattr(owner, "_experiment_id", None),
    ):
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            experiment_id = str(value)
            break
    uri = None
    if client is not None:
        try:
            uri = client.tracking_uri
        except Exception:
            client = None
    return RunSite(
        client=client, tracking_uri=uri or _global_tracking_uri(), experiment_id=experiment_id
    )


def _global_tracking_uri() -> str | None:
    mlflow = sys.modules.get("mlflow")
    try:
        return mlflow.get_tracking_uri() if mlflow is not None else None
    except Exception:
        return None


def _experiment_chunks(client: Any) -> list[list[str]]:
    from mlflow.entities import ViewType

    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = getattr(page, "token", None)
        if not token:
            break
    return [ids[i : i + EXPERIMENT_CHUNK] for i in range(0, len(ids), EXPERIMENT_CHUNK)]


def run_in_frame(frame: Any, capture_id: str) -> Any:
    """The Run object tagged with our capture id among the creating frame's locals, or None.

    `mlflow.start_run` keeps what `create_run` returned in a local (`active_run_obj`),
    as does Lightning's `MLFlowLogger.experiment` (`run`); the frame object outlives the
    call because the job holds it. Matching on the tag, not on a variable name, makes
    this version-proof: no match just means the search does the work.
    """
    if frame is None:
        return None
    from mlflow.entities import Run

    try:
        values = list(frame.f_locals.values())
    except Exception:  # pragma: no cover - an interpreter without readable frames
        return None
    for value in values:
        if isinstance(value, Run) and value.data.tags.get(CAPTURE_ID_TAG) == capture_id:
            return value
    return None


def frame_running(frame: Any) -> bool:
    """Whether some thread is still inside `frame` (unknown counts as running)."""
    current = getattr(sys, "_current_frames", None)
    if current is None:  # pragma: no cover - not CPython/PyPy
        return True
    for top in current().values():
        node = top
        while node is not None:
            if node is frame:
                return True
            node = node.f_back
    return False


def find_runs(client: Any, job: PendingRun) -> list[str]:
    """Ids of the runs tagged with the job's capture id (their artifact URIs go in the job).

    First the creating frame (no query; while it runs, `create_run` has not returned
    yet), then a tag search: in the experiment the run was created in, then in all.
    When the creating call is over and the search finds nothing, `create_run` failed
    (the user saw MLflow's exception): there is nothing to wait for.
    """
    from mlflow.entities import ViewType

    creator_done = False
    if job.frame is not None:
        # `create_run` returns within a request's time: watch the frame closely (no
        # request is made) rather than back off, so the upload starts right after.
        watch_until = time.monotonic() + FRAME_WATCH
        while True:
            run = run_in_frame(job.frame, job.capture_id)
            if run is not None:
                return _remember([run], job)
            if not frame_running(job.frame):
                break
            if time.monotonic() >= watch_until:
                raise RunNotVisible("create_run has not returned yet")
            time.sleep(FRAME_POLL)
        creator_done = True
    capture_id, experiment_id = job.capture_id, job.experiment_id
    query = f"tags.`{CAPTURE_ID_TAG}` = '{capture_id}'"

    def search(ids: list[str]) -> list[str]:
        runs = client.search_runs(
            ids, filter_string=query, run_view_type=ViewType.ALL, max_results=50
        )
        return _remember(list(runs), job)

    found = search([experiment_id]) if experiment_id else []
    if not found:
        for chunk in _experiment_chunks(client):
            found.extend(search(chunk))
    if not found and creator_done:
        raise RunNeverCreated(f"no run was created with {CAPTURE_ID_TAG}={capture_id}")
    if not found:
        raise RunNotVisible(f"no run tagged {CAPTURE_ID_TAG}={capture_id} yet")
    return found


def _remember(runs: list[Any], job: PendingRun) -> list[str]:
    for run in runs:
        if run.info.artifact_uri:
            job.artifact_uris[run.info.run_id] = run.info.artifact_uri
    return [run.info.run_id for run in runs]
