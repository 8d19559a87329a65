"""The gate at model registration: one verdict and one refusal message for every tracker.

The MLflow server app (`mlflow server --app-name mlrepro-gate`) and W&B's
`wandb_repro_plugin.link_model` both refuse to register a model whose run fails
the gate; they word the refusal here, so a user reads the same reasons and the
same fix whichever registry said no. A registration script asks first: it calls
`require_reproducible(run_id)` (defined here; both adapters re-export it), which raises
ReproducibilityError when the run fails the gate, and registers the model only after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repro_common.gate import GateReport

PROMOTE_FIXES = {"environment", "data"}  # what `mlrepro promote` can still add to a finished run
PASSED_TAG = "repro.gate"


class RegistrationRefused(RuntimeError):
    """The model's source run fails the gate; `report` holds every rule, `failed` the names."""

    def __init__(self, report: GateReport, model: str) -> None:
        self.report = report
        self.failed = report.failed
        super().__init__(refusal_message(report, model))


def fix_hint(report: GateReport) -> str:
    """How to make this run pass: promotion when that is all it lacks, else a new run."""
    run, track = report.run, report.track
    failed = set(report.failed)
    details = f"details: mlrepro check {run} --track {track}"
    if report.track == "production" and failed and failed <= PROMOTE_FIXES:
        return (
            f"fix: `mlrepro promote {run}` stores the environment spec and data snapshots, "
            f"then register again ({details})"
        )
    if "manifest" in failed:
        return (
            "fix: the run's record is missing or was altered: rerun the training with mlrepro "
            f"installed, then register the new run ({details})"
        )
    return (
        "fix: record what is missing (e.g. seed_everything(SEED)) and rerun, or "
        f"`mlrepro promote {run}` when only the environment spec or data snapshots are missing "
        f"({details})"
    )


def refusal_message(report: GateReport, model: str) -> str:
    """Every failed rule with its reason, then the fix: what the registry's caller sees."""
    lines = [
        f"mlrepro gate: refusing to register {model!r}: run {report.run} fails the "
        f"{report.track} gate:"
    ]
    lines += [
        f"  - {rule.name}: {rule.reason}"
        for rule in report.rules
        if rule.required and not rule.passed
    ]
    lines.append(fix_hint(report))
    return "\n".join(lines)


def passed_value(report: GateReport, digest: str | None) -> str:
    """The `repro.gate` tag a registered version carries: `passed <track> <digest>`."""
    return f"passed {report.track} {digest or 'unknown'}"


class ReproducibilityError(RuntimeError):
    """The run fails the gate; `report` holds every rule, `failed` the names that failed."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        self.failed = report.failed
        lines = [f"run {report.run} is not reproducible enough for the {report.track} track:"]
        for rule in report.rules:
            if rule.required and not rule.passed:
                lines.append(f"  - {rule.name}: {rule.reason}")
        lines.append(f"(details: mlrepro check {report.run} --track {report.track})")
        super().__init__("\n".join(lines))


def require_reproducible(
    run_id: str,
    track: str = "production",
    tracking_uri: str | None = None,
    allow_packages: Iterable[str] = (),
) -> GateReport:
    """Check the run; return its passing report, or raise ReproducibilityError listing failed rules.

    `run_id` takes every RUN form of the CLI (run id, runs:/<id>, W&B run dir,
    manifest.json). `allow_packages` waives reviewed exceptions to the
    "every package reinstallable" rule. An unknown run or unreachable store
    raises repro_common.runs.RunNotFound.
    """
    from repro_common.gate import check_run
    from repro_common.runs import load_run

    report = check_run(load_run(run_id, tracking_uri), track, allow_packages)
    if not report.passed:
        raise ReproducibilityError(report)
    return report
