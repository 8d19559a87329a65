"""The run-context provider: every MLflow run gets the `repro.*` tags, and its `repro/` artifacts.

MLflow imports this module while `import mlflow` is still running (entry point
`mlflow.run_context_provider`) and forgives only ImportError/AttributeError, so
it imports the standard library, our core and the provider base class, nothing
else. The constructor is cheap: it starts collecting the environment and the
code in the background, while the user's script is still importing.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro_common.manifest import Manifest

if "mlflow" not in sys.modules:  # pragma: no cover - only when this module is imported first
    # Importing the base class imports mlflow, whose registry then tries to load this
    # half-initialised module and fails; we register ourselves at the bottom instead.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message='Failure attempting to register context provider "repro"'
        )
        from mlflow.tracking.context.abstract_context import RunContextProvider
else:
    from mlflow.tracking.context.abstract_context import RunContextProvider

MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
MAX_TAG_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
ERRORS_TAG = "repro.capture.errors"  # repro_common.runs.ERRORS_TAG (not imported: see above)
CAPTURE_ID_TAG = "repro.capture.id"
ARTIFACTS_TAG = "repro.artifacts"  # repro_common.runs.ANNOUNCED_TAG
MANIFEST_POINTER = " [full list: repro/manifest.json capture.errors]"


def disabled() -> bool:
    """MLREPRO_DISABLE=1: no tags, no capture, no upload.

    Same rule as repro_common.capture.disabled(), read here without importing the core so
    that a disabled plugin costs `import mlflow` nothing.
    """
    return os.environ.get("MLREPRO_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")


def _in_mlflow_server() -> bool:
    """The tracking server imports mlflow too; it creates no runs of its own."""
    return (
        "_MLFLOW_SERVER_FILE_STORE" in os.environ
        or os.path.basename(sys.argv[0] if sys.argv else "") == "mlflow"
    )


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


def tag_key(name: str) -> str:
    """MLflow tag keys allow letters, digits and `_-. /` only, 250 characters at most."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_-. /") else "_" for c in name)
    return clean[:MAX_TAG_KEY]


def errors_value(errors: list[dict[str, Any]], note: str | None = None) -> str | None:
    """One line per failure, the artifact note first; cut to fit a tag with a pointer to the rest."""
    parts = ([note] if note else []) + [
        f"{e.get('collector', '?')}: {e.get('error', '')}".strip() for e in errors
    ]
    if not parts:
        return None
    pointer = MANIFEST_POINTER if errors else ""
    text = "; ".join(parts)
    if len(text) + len(pointer) <= MAX_TAG_VALUE:
        return text + pointer
    kept: list[str] = []
    for index, part in enumerate(parts):
        more = f"; ... {len(parts) - index} more"
        if len("; ".join([*kept, part])) + len(more) + len(pointer) > MAX_TAG_VALUE:
            budget = MAX_TAG_VALUE - len(more) - len(pointer) - len("; ".join(kept)) - 2
            if not kept and budget > 20:
                kept.append(part[:budget] + "...")
                index += 1
                more = f"; ... {len(parts) - index} more" if index < len(parts) else ""
            return "; ".join(kept) + more + pointer
        kept.append(part)
    return "; ".join(kept) + pointer  # pragma: no cover - loop always returns once too long


# MLflow's tag names (mlflow.utils.mlflow_tags), spelled here: importing them would load MLflow.
GIT_REPO_URL_TAG = "mlflow.source.git.repoURL"
LEGACY_GIT_REPO_URL_TAG = "mlflow.gitRepoURL"


def _clip(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def manifest_tags(manifest: Manifest) -> dict[str, str]:
    """The DESIGN.md tags that summarise a record, and what its `repro/` will hold (no capture id,
    no errors). Set when the run is created: they travel with `create_run`, at no extra request."""
    from repro_common.artifacts import announced_names, announcement

    env, code, seeds = manifest.environment, manifest.code, manifest.seeds
    tags: dict[str, str] = {"repro.manifest.digest": manifest.digest, "repro.track": manifest.track}
    try:
        tags[ARTIFACTS_TAG] = announcement(announced_names(manifest))
    except Exception:  # readers still see a missing manifest by the digest tag alone
        pass
    if env.get("digest"):
        tags["repro.env.digest"] = str(env["digest"])
    python = (env.get("python") or {}).get("version")
    if python:
        tags["repro.env.python"] = str(python)
    if code.get("commit"):
        tags["repro.git.commit"] = str(code["commit"])
    if isinstance(code.get("dirty"), bool):
        tags["repro.git.dirty"] = "true" if code["dirty"] else "false"
    if seeds.get("global") is not None:
        tags["repro.seed"] = str(seeds["global"])
    for item in manifest.data:
        if item.get("name") and item.get("fingerprint"):
            tags[tag_key(f"repro.data.{item['name']}")] = _clip(item["fingerprint"])
    reproduces = os.environ.get("MLREPRO_REPRODUCES", "").strip()
    if reproduces:
        tags["repro.reproduces"] = _clip(reproduces)
    return {k: _clip(v) for k, v in tags.items()}


def _warn_collector_errors(manifest: Manifest) -> None:
    from mlflow_repro_plugin.uploader import warn_once

    for entry in manifest.errors:
        collector = str(entry.get("collector", "capture")).split(".")[0]
        warn_once(
            f"collector:{collector}",
            "mlrepro could not capture %s (%s); the run goes on, see its repro.capture.errors tag",
            collector,
            entry.get("error"),
        )


def run_tags(site: RunSite) -> dict[str, str]:
    """Capture this process, build the tags, and schedule the `repro/` upload for the new run."""
    from mlflow_repro_plugin import uploader
    from repro_common.capture import capture

    capture_id = uuid.uuid4().hex
    manifest = capture()
    # Listing the repro/ files re-digests the manifest: built before the tags that carry it.
    files, build_errors = uploader.prepare(manifest)
    # `repro.artifacts` says what the upload will bring: a run whose upload never lands (server
    # gone, process killed) reads as incomplete without anyone having to write it afterwards.
    tags = manifest_tags(manifest)
    tags[CAPTURE_ID_TAG] = capture_id
    remote = manifest.code.get("remote")
    if isinstance(remote, str) and remote:
        # MLflow's own git provider strips user-info only up to the first `/` and keeps
        # query tokens; providers registered after it win, so its URL tags get ours.
        tags.update({GIT_REPO_URL_TAG: _clip(remote), LEGACY_GIT_REPO_URL_TAG: _clip(remote)})
    errors = errors_value([*manifest.errors, *build_errors])
    if errors:
        tags[ERRORS_TAG] = errors
    _warn_collector_errors(manifest)
    job = uploader.UploadJob(
        capture_id=capture_id,
        manifest=manifest,
        client=site.client,
        tracking_uri=site.tracking_uri,
        experiment_id=site.experiment_id,
        frame=site.frame,
        files=files,
    )
    try:
        uploader.schedule(job)
    except Exception as exc:  # e.g. no new threads during interpreter shutdown
        uploader.warn_once(
            "schedule",
            "mlrepro could not start the repro/ upload (%r); the run goes on without it",
            exc,
        )
        from repro_common.isolation import error_entry

        reason = error_entry("artifacts", exc)["error"]
        note = f"artifacts: repro/ not uploaded, the upload could not start ({reason})"
        tags[ERRORS_TAG] = errors_value(manifest.errors, note) or note
    return tags


class ReproRunContextProvider(RunContextProvider):
    """Adds the reproducibility record to every run MLflow creates; never fails the run."""

    def __init__(self) -> None:
        if disabled() or _in_mlflow_server():
            return
        try:
            from mlflow_repro_plugin import datasets
            from repro_common.capture import prefetch

            prefetch()
            datasets.install()
        except Exception:  # a provider must never stop `import mlflow`
            pass

    def in_context(self) -> bool:
        return not disabled()

    def tags(self) -> dict[str, str]:
        try:
            site = run_creation_site()
            if site is None:
                return {}
            return run_tags(site)
        except Exception as exc:
            from mlflow_repro_plugin.uploader import warn_once
            from repro_common.isolation import error_entry

            entry = error_entry("mlflow.provider", exc)
            warn_once(
                "provider", "mlrepro could not tag this run (%s); the run goes on", entry["error"]
            )
            return {
                ERRORS_TAG: errors_value([entry], "artifacts: not uploaded, capture failed") or ""
            }


def _register_if_missed() -> None:
    """When this module was imported before mlflow, MLflow's registry skipped us: add us now."""
    registry = sys.modules.get("mlflow.tracking.context.registry")
    providers = getattr(registry, "_run_context_provider_registry", None)
    if providers is None or not hasattr(registry, "resolve_tags"):
        return  # the registry is still importing (it defines resolve_tags last) and loads us itself
    try:
        if not any(isinstance(p, ReproRunContextProvider) for p in providers):
            providers.register(ReproRunContextProvider)
    except Exception:  # pragma: no cover - private MLflow attribute changed shape
        pass


_register_if_missed()
