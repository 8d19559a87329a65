"""`link_model`: W&B's `run.link_model` behind the reproducibility gate.

W&B's model registry checks nothing before a model is linked, so this checks the
run's record first (the same rules and the same refusal as the MLflow registry
gate, `repro_common.registration`) and links only a model whose run passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro_common.gate import GateReport
    from repro_common.runs import RunRecord


def live_record(run: Any) -> RunRecord:
    """The record of a W&B run still in progress: its config and its `files/repro/`."""
    from repro_common.runs import RunRecord, parse_manifest
    from wandb_repro_plugin.run_config import CONFIG_KEY, config_tags
    from wandb_repro_plugin.source import PROMOTION_TAGS, WandbDirBackend

    run_dir = Path(run.dir).parent
    backend = WandbDirBackend(run_dir)
    raw = backend.read_artifact("repro/manifest.json")
    manifest, error = parse_manifest(raw)
    if raw is None:
        error = (
            "no files/repro/manifest.json in the run: "
            "call wandb_repro_plugin.attach(run) (or use a ReproCallback) before link_model"
        )
    tags = config_tags(dict(run.config.get(CONFIG_KEY) or {}))
    promoted = backend.read_artifact(PROMOTION_TAGS)
    if promoted:
        import json

        tags.update({k: str(v) for k, v in json.loads(promoted).items()})
    return RunRecord(
        ref=str(run_dir),
        kind="wandb",
        manifest=manifest,
        manifest_error=error,
        run_id=None,  # the CLI names a W&B run by its directory: `mlrepro promote DIR` works
        location=str(run_dir),
        tags=tags,
        backend=backend,
    )


def check_for_registry(
    run: Any, track: str = "production", allow_packages: Iterable[str] = ()
) -> GateReport:
    """The gate's report for the run about to be linked (nothing is linked)."""
    from repro_common.gate import check_run

    return check_run(live_record(run), track, allow_packages)


def link_model(
    run: Any,
    path: str,
    registered_model_name: str,
    name: str | None = None,
    aliases: list[str] | None = None,
    *,
    track: str = "production",
    allow_packages: Iterable[str] = (),
) -> Any:
    """Link the model at `path` to W&B's registry only if `run` passes the gate for `track`.

    Raises repro_common.registration.RegistrationRefused (listing every failed rule, its
    reason and the fix) and links nothing when the run fails; otherwise returns what
    W&B's `run.link_model` returns.
    """
    from repro_common.registration import RegistrationRefused

    report = check_for_registry(run, track, allow_packages)
    if not report.passed:
        raise RegistrationRefused(report, registered_model_name)
    return run.link_model(path, registered_model_name, name=name, aliases=aliases)
