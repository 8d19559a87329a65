"""`require_reproducible`: the completeness gate as one call for model-registration scripts.

from mlflow_repro_plugin import require_reproducible
require_reproducible(run_id)                   # raises ReproducibilityError if not
mlflow.register_model(f"runs:/{run_id}/model", "churn")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repro_common.gate import GateReport


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
