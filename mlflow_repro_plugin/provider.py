"""The run-context provider: every MLflow run gets the `repro.*` tags, and its `repro/` artifacts.

MLflow imports this module while `import mlflow` is still running (entry point
`mlflow.run_context_provider`) and forgives only ImportError/AttributeError, so
at import it loads the standard library, the provider base class and our `tags`
and `run_site` (standard library only), nothing else; the core comes when a run
is created. The constructor is cheap: it starts collecting the environment and the
code in the background, while the user's script is still importing.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from typing import TYPE_CHECKING

from mlflow_repro_plugin.run_site import RunSite, run_creation_site
from mlflow_repro_plugin.tags import (
    CAPTURE_ID_TAG,
    ERRORS_TAG,
    GIT_REPO_URL_TAG,
    LEGACY_GIT_REPO_URL_TAG,
    clip,
    disabled,
    errors_value,
    manifest_tags,
)

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

# Its own names, and the tag names importers found here before `tags` was a module.
__all__ = [
    "CAPTURE_ID_TAG",
    "ERRORS_TAG",
    "ReproRunContextProvider",
    "RunSite",
    "disabled",
    "errors_value",
    "manifest_tags",
    "run_creation_site",
    "run_tags",
]


def _in_mlflow_server() -> bool:
    """The tracking server imports mlflow too; it creates no runs of its own."""
    return (
        "_MLFLOW_SERVER_FILE_STORE" in os.environ
        or os.path.basename(sys.argv[0] if sys.argv else "") == "mlflow"
    )


def _warn_collector_errors(manifest: Manifest) -> None:
    from mlflow_repro_plugin.failures import warn_once

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
    from repro_common import summary as record_summary
    from repro_common.capture import capture

    capture_id = uuid.uuid4().hex
    manifest = capture()
    # Listing the repro/ files re-digests the manifest: built before the tags that carry it.
    files, build_errors = uploader.prepare(manifest)
    # `repro.artifacts` says what the upload will bring: a run whose upload never lands (server
    # gone, process killed) reads as incomplete without anyone having to write it afterwards.
    tags = manifest_tags(manifest)
    tags[CAPTURE_ID_TAG] = capture_id
    remote = record_summary.remote(manifest)
    if remote:
        # MLflow's own git provider strips user-info only up to the first `/` and keeps
        # query tokens; providers registered after it win, so its URL tags get ours.
        tags.update({GIT_REPO_URL_TAG: clip(remote), LEGACY_GIT_REPO_URL_TAG: clip(remote)})
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
        from mlflow_repro_plugin.failures import warn_once

        warn_once(
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
            from mlflow_repro_plugin import live_inputs
            from repro_common.capture import prefetch

            prefetch()
            live_inputs.install()
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
            from mlflow_repro_plugin.failures import warn_once
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
