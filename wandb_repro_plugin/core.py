"""attach(): put this process's record into a W&B run; the logic both callbacks share.

W&B users look at a run's config and its artifacts, so a short summary goes to
`config["repro"]`, the full record to a `repro-manifest` artifact named after the
manifest digest (identical records share one name), and a copy of the same files
into the run's files dir so `mlrepro show <run-dir>` works on an offline run.
Training must never stop because of us: every failure becomes one warning and an
entry in `config.repro.capture_errors`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from repro_common import capture
from repro_common import summary as record_summary
from repro_common.artifacts import ARTIFACT_DIR, record_files
from repro_common.capture import disabled
from repro_common.inputs import SKIPPED, describe_input, publish_run_inputs, unfingerprinted_input
from repro_common.isolation import error_entry, guarded
from repro_common.manifest import Manifest
from repro_common.text import one_line
from repro_common.tracks import check_track as check_known_track
from wandb_repro_plugin.run_config import CONFIG_KEY, artifact_name, config_summary

ARTIFACT_TYPE = "repro-manifest"


class ReproWarning(UserWarning):
    """The record of a W&B run is missing or incomplete; the run itself goes on."""


def warn(message: str) -> None:
    warnings.warn(f"mlrepro: {one_line(message)}", ReproWarning, stacklevel=3)


def require_host(extra: str, *modules: str) -> None:
    """Import the host libraries now, so a missing one is reported when the callback is built."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"{module} could not be imported ({exc}); "
                f"install the host libraries with: pip install 'mlrepro[{extra}]'"
            ) from exc


def check_track(track: str | None) -> str | None:
    """A wrong track is the caller's mistake: say so when the callback is built, not mid-training."""
    return check_known_track(track) if track is not None else None


def active_run() -> Any:
    """wandb.run, without importing wandb: a process that never imported it has no run."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


def attach(
    run: Any = None, track: str | None = None, data: Mapping[str, Any] | None = None
) -> Manifest | None:
    """Record this process in `run` (default: the active `wandb.run`) and return the manifest.

    `data` maps names to inputs to fingerprint (arrays, tensors, paths, datasets).
    Returns None when there is no run or nothing could be captured; never raises.
    """
    try:
        return record_run(run, track=track, data=data)
    except Exception as exc:  # the last line of defence for the host
        warn(f"could not record the W&B run: {error_entry('attach', exc)['error']}")
        return None


def record_run(
    run: Any,
    *,
    track: str | None = None,
    data: Mapping[str, Any] | None = None,
    ranks: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    skipped: dict[str, str] | None = None,
    hosts: Sequence[Any] = (),
) -> Manifest | None:
    """attach() with what the callbacks add: rank seeds, their own errors, skipped inputs.

    `data` and `skipped` belong to this run only: they go into its record (a skipped
    input with its reason and no fingerprint), never into the process-wide registry,
    and reach the other trackers of the same training (`hosts`, e.g. the trainer's
    loggers) through the core's run-inputs event.
    """
    if disabled():
        return None
    run = run if run is not None else active_run()
    if run is None:
        warn(
            "no active W&B run (call wandb.init() before training, or pass run=); nothing recorded"
        )
        return None
    if getattr(run, "disabled", False):
        return None
    if getattr(run, "_is_finished", False):
        warn(
            f"W&B run {getattr(run, 'id', '?')} is finished; its record is left as it was "
            "(attach before run.finish())"
        )
        return None

    early: list[dict[str, Any]] = list(errors or [])
    skipped = dict(skipped or {})
    inputs: list[dict[str, Any]] = []
    for name, obj in (data or {}).items():
        run_input(name, obj, inputs, early, skipped)
    inputs += [
        unfingerprinted_input(name, SKIPPED, reason)
        for name, reason in skipped.items()
        if name not in {item["name"] for item in inputs}
    ]

    manifest: Manifest | None = guarded("capture", lambda: capture(track, inputs), None, early)
    late: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    if manifest is not None:
        if ranks:
            manifest.set_rank_seeds(ranks)
            manifest.refresh_digest()
        manifest.add_errors(early)
        no_files: dict[str, bytes] = {}
        # First: listing the files re-digests the manifest, and the config carries that digest.
        files = guarded("record_files", lambda: record_files(manifest), no_files, late)
        summary = config_summary(manifest)
        if files:
            guarded("run_files", lambda: copy_to_run_dir(run, files), None, late)
            guarded("artifact", lambda: log_artifact(run, manifest, files), None, late)
        guarded("run_inputs", lambda: publish_run_inputs(inputs, hosts), None, late)
    problems = (manifest.errors if manifest is not None else early) + late
    if problems:
        summary["capture_errors"] = problems
    if skipped:
        summary["data_skipped"] = skipped
    reproduces = record_summary.reproduces()
    if reproduces:
        summary["reproduces"] = reproduces

    run.config.update({CONFIG_KEY: summary}, allow_val_change=True)
    if problems:
        first = problems[0]
        warn(
            f"the record of W&B run {getattr(run, 'id', '?')} is incomplete "
            f"({len(problems)} problem(s), first: {first.get('collector')}: {first.get('error')}); "
            "see config.repro.capture_errors"
        )
    return manifest


def run_input(
    name: str,
    obj: Any,
    inputs: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    skipped: dict[str, str],
) -> None:
    """describe_input() for this run's record, where an unsupported kind is a note (skipped),
    not a failure, and an augmenting dataset is recorded without a fingerprint."""
    try:
        item, _ = describe_input(obj, name)
    except TypeError as exc:
        skipped[name] = str(exc) or type(obj).__name__
    except Exception as exc:
        errors.append(error_entry(f"data:{name}", exc))
    else:
        inputs.append(item)
        if item.get("fingerprint") is None:
            skipped[name] = str(item.get("reason"))


def copy_to_run_dir(run: Any, files: Mapping[str, bytes]) -> None:
    """<run dir>/files/repro/*: what the CLI reads from an offline run directory."""
    target = Path(run.dir) / ARTIFACT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)  # data/<name>/... snapshots
        (target / name).write_bytes(content)


def log_artifact(run: Any, manifest: Manifest, files: Mapping[str, bytes]) -> None:
    import wandb

    artifact = wandb.Artifact(
        artifact_name(manifest),
        type=ARTIFACT_TYPE,
        description="mlrepro record: environment, code, seeds and data of the run",
        metadata={
            "manifest_digest": manifest.digest,
            "env_digest": record_summary.env_digest(manifest),
            "track": manifest.track,
        },
    )
    for name, content in files.items():
        with artifact.new_file(name, mode="wb") as handle:
            handle.write(content)
    run.log_artifact(artifact)
