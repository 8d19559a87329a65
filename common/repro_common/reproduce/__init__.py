"""Rebuild a run from its record alone, run it again, and say whether the numbers came back.

One call does it all, for the CLI and for Python users alike:

    from repro_common.reproduce import reproduce
    verdict = reproduce("3f2a9c41d0e8...", tracking_uri="sqlite:///mlflow.db")
    print(verdict.word, verdict.reason)   # REPRODUCED: inputs match and 2 metric(s) agree exactly

The steps, each a module: `materialise` (record check, then `checkout` and
`script`), optionally `venv`, `input_checks` (the data must match before a run is
worth its time), `rerun`, `tracking` (where the new run is logged and finding
it, asked of the run sources) and `verdict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from repro_common.reproduce.input_checks import (
    check_inputs,
    table_input_check,
    table_version_variables,
    within,
)
from repro_common.reproduce.materialise import materialise, verify_record
from repro_common.reproduce.rerun import RunResult, run_script
from repro_common.reproduce.script import HOST_SPECIFIC_VARIABLES, recorded_variables, render_script
from repro_common.reproduce.tracking import find_reproduction
from repro_common.reproduce.venv import (
    VenvResult,
    create_venv,
    package_mismatches,
    python_mismatch,
    unpinned_packages,
)
from repro_common.reproduce.verdict import (
    DEFAULT_IGNORED_METRICS,
    EXIT_NOT_VERIFIED,
    NOT_REPRODUCED,
    NOT_VERIFIED,
    REBUILT,
    REPRODUCED,
    WHAT_TO_LOG,
    Check,
    Verdict,
    compare,
    compare_artifacts,
    compare_inputs,
    compare_metrics,
    metric_matches,
    short_fp,
)
from repro_common.reproduce.workspace import (
    CODE_DIR,
    LOG,
    SCRIPT,
    VENV_DIR,
    Rebuild,
    ReproduceError,
    UntrustedRecord,
    Workspace,
    default_dir,
    reproduces_id,
)
from repro_common.runs import RunRecord

__all__ = [
    "CODE_DIR",
    "DEFAULT_IGNORED_METRICS",
    "EXIT_NOT_VERIFIED",
    "HOST_SPECIFIC_VARIABLES",
    "LOG",
    "NOT_REPRODUCED",
    "NOT_VERIFIED",
    "REBUILT",
    "REPRODUCED",
    "SCRIPT",
    "VENV_DIR",
    "WHAT_TO_LOG",
    "Check",
    "Progress",
    "Rebuild",
    "ReproduceError",
    "RunResult",
    "UntrustedRecord",
    "VenvResult",
    "Verdict",
    "Workspace",
    "check_inputs",
    "compare",
    "compare_artifacts",
    "compare_inputs",
    "compare_metrics",
    "create_venv",
    "default_dir",
    "find_reproduction",
    "materialise",
    "metric_matches",
    "package_mismatches",
    "python_mismatch",
    "recorded_variables",
    "render_script",
    "reproduce",
    "reproduces_id",
    "run_script",
    "short_fp",
    "table_input_check",
    "table_version_variables",
    "unpinned_packages",
    "verify_record",
    "within",
]


class Progress(Protocol):
    """What `reproduce` tells its caller while it works (the CLI's spinner is one)."""

    def step(self, message: str) -> None:
        """A new step begins (cloning, installing, running...)."""

    def line(self, text: str) -> None:
        """A line of a subprocess' output (pip, the rerun), under the current step."""

    def rebuilt(self, rebuild: Rebuild) -> None:
        """The folder is ready (and the venv, when asked for); nothing has run yet."""


class _Silent:
    def step(self, message: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def rebuilt(self, rebuild: Rebuild) -> None:
        pass


def reproduce(
    run: RunRecord | str,
    *,
    execute: bool = True,
    directory: Path | None = None,
    tracking_uri: str | None = None,
    venv: bool = False,
    system_site_packages: bool = False,
    tolerance: float = 0.0,
    ignore_metrics: tuple[str, ...] = (),
    compare_metrics: tuple[str, ...] = (),
    artifacts: bool = False,
    timeout: float | None = None,
    trust_record: bool = False,
    progress: Progress | None = None,
) -> Verdict:
    """Rebuild `run` (a RunRecord, or what `mlrepro reproduce` takes as RUN) and, with
    `execute`, rerun it to a new tracked run and compare inputs and outcomes.

    `directory` must be new or empty (default: a fresh folder in the user cache). The
    record's integrity is checked before anything is cloned or run: UntrustedRecord
    when it fails and `trust_record` is not set; ReproduceError when the record cannot
    be rebuilt; `repro_common.runs.RunNotFound` when `run` names nothing readable.
    Without `execute` the verdict is REBUILT (exit code 0); `verdict.rebuild` holds the
    folder and its warnings either way, `verdict.rerun` the script's result.
    """
    from repro_common.runs import load_run

    show: Progress = progress or _Silent()
    record = load_run(run, tracking_uri) if isinstance(run, str) else run
    target = directory if directory is not None else default_dir(record)
    ws = materialise(record, target, tracking_uri, step=show.step, trust_record=trust_record)
    rebuild = Rebuild(ws)
    if ws.trusted_by_flag:
        rebuild.warnings.append(f"record used with --trust-record: {ws.integrity}")
    rebuild.warnings += ws.warnings
    if venv:
        rebuild.venv = create_venv(ws, system_site_packages, on_line=show.line)
        rebuild.warnings += [f"not pinned: {p} ({r})" for p, r in rebuild.venv.not_pinned]
        if (mismatch := python_mismatch(ws.manifest)) is not None:
            rebuild.warnings.append(mismatch)
    else:
        rebuild.warnings += [f"package mismatch: {m}" for m in package_mismatches(ws.manifest)]
    show.rebuilt(rebuild)
    if not execute:
        reason = f"rebuilt in {ws.root}; run {ws.script} to rerun it"
        return Verdict(False, reason, ran=False, verified=False, rebuild=rebuild)
    show.step("checking inputs")
    before = check_inputs(ws, step=show.step)
    changed = [c for c in before if c.ok is False]
    if changed:
        names = ", ".join(f"{c.name} ({c.note})" for c in changed)
        return Verdict(False, f"inputs changed before the run: {names}", before, rebuild=rebuild)
    show.step(f"running {ws.script.name} (log: {LOG})")
    outcome = run_script(ws, timeout=timeout, on_line=show.line)
    show.step("finding the new run")
    new = find_reproduction(ws, outcome.started_at)
    verdict = compare(
        ws,
        outcome,
        new,
        tolerance,
        tuple(ignore_metrics),
        tuple(compare_metrics),
        artifacts=artifacts,
    )
    verdict.rebuild, verdict.rerun = rebuild, outcome
    return verdict
