"""Say whether the numbers came back: inputs first, then the outcomes; the Verdict and its checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

from repro_common.manifest import Manifest
from repro_common.outcomes import TIMING_METRICS, is_timing
from repro_common.reproduce.workspace import short
from repro_common.runs import RunRecord

if TYPE_CHECKING:
    from repro_common.reproduce.rerun import RunResult
    from repro_common.reproduce.workspace import Rebuild, Workspace

# Metrics that measure the machine or the clock, never the model (see repro_common.outcomes).
DEFAULT_IGNORED_METRICS = TIMING_METRICS
# `reproduce` exit code when the run was rebuilt and rerun but no outcome could be compared.
EXIT_NOT_VERIFIED = 3
REPRODUCED, NOT_REPRODUCED, NOT_VERIFIED = "REPRODUCED", "NOT REPRODUCED", "REBUILT, NOT VERIFIED"
REBUILT = "REBUILT"  # rebuilt, not run
WHAT_TO_LOG = (
    "log an outcome to compare: a final metric (mlflow.log_metric / run.log), "
    "or the model or predictions as an artifact with --compare artifacts"
)


@dataclass
class Check:
    """One line of the verdict table."""

    section: str  # input | metric | artifact | run | code | environment | seeds
    name: str
    original: str
    reproduced: str
    ok: bool | None  # None: informational, not part of the verdict
    note: str = ""


@dataclass
class Verdict:
    reproduced: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    new_run: RunRecord | None = None
    verified: bool = True  # False: rebuilt and rerun, but no outcome could be compared
    ran: bool = True  # False: rebuilt only (reproduce(..., execute=False)), nothing run
    rebuild: Rebuild | None = None  # the reproduction folder and its warnings
    rerun: RunResult | None = None  # the script's exit status, time and last lines

    @property
    def differences(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def word(self) -> str:
        if not self.ran:
            return REBUILT
        if not self.verified:
            return NOT_VERIFIED
        return REPRODUCED if self.reproduced else NOT_REPRODUCED

    @property
    def exit_code(self) -> int:
        """0 reproduced (or only rebuilt), 1 not reproduced, 3 rebuilt but nothing compared."""
        if not self.ran:
            return 0
        if not self.verified:
            return EXIT_NOT_VERIFIED
        return 0 if self.reproduced else 1

    @property
    def not_compared(self) -> list[Check]:
        """Outcomes shown but left out of the verdict (timing metrics, volatile files)."""
        return [c for c in self.checks if c.ok is None and c.section in ("metric", "artifact")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.word,
            "reproduced": self.reproduced,
            "verified": self.verified,
            "reason": self.reason,
            "new_run": None
            if self.new_run is None
            else {
                "kind": self.new_run.kind,
                "run_id": self.new_run.run_id,
                "location": self.new_run.location,
            },
            "checks": [c.__dict__ for c in self.checks],
        }


def short_fp(value: str | None) -> str:
    if not value:
        return "-"
    algo, _, hexdigest = str(value).partition(":")
    return f"{algo}:{hexdigest[:8]}" if hexdigest else str(value)[:20]


def compare_inputs(original: Manifest, new: Manifest | None) -> list[Check]:
    """Every recorded input must come back with the same fingerprint."""
    checks = []
    new_items = {str(i.get("name")): i for i in (new.data if new else [])}
    for item in original.data or []:
        name, recorded = str(item.get("name")), str(item.get("fingerprint") or "")
        other = new_items.get(name)
        if other is None:
            checks.append(
                Check(
                    "input",
                    name,
                    short_fp(recorded),
                    "not tracked",
                    False,
                    "not tracked by the new run",
                )
            )
            continue
        now = str(other.get("fingerprint") or "")
        if not recorded and not now:  # read but not fingerprinted in either run
            reason = str(item.get("reason") or item.get("kind") or "no fingerprint")
            checks.append(Check("input", name, "-", "-", None, f"not compared: {reason}"))
            continue
        note = "" if now == recorded else "the new run read different data"
        if other.get("partial") or item.get("partial"):
            note = (note + "; " if note else "") + "partial fingerprint"
        checks.append(
            Check("input", name, short_fp(recorded), short_fp(now), now == recorded, note)
        )
    return checks


def metric_matches(original: float, new: float, tolerance: float) -> bool:
    """Exact (bitwise) at tolerance 0, else within `tolerance`, absolute or relative."""
    if math.isnan(original) or math.isnan(new):
        return math.isnan(original) and math.isnan(new)
    if tolerance <= 0:
        return original == new
    return math.isclose(original, new, rel_tol=tolerance, abs_tol=tolerance)


def compare_metrics(
    original: dict[str, float],
    new: dict[str, float],
    tolerance: float = 0.0,
    ignore: tuple[str, ...] = (),
    compare_anyway: tuple[str, ...] = (),
) -> list[Check]:
    """One check per final metric; clock metrics and `ignore` globs are listed, not judged (ok=None)."""
    checks = []
    for name in sorted(original):
        value = _as_float(original[name])
        if value is None:
            continue
        shown = repr(_as_float(new.get(name))) if _as_float(new.get(name)) is not None else "-"
        if any(fnmatch(name, pattern) for pattern in ignore):
            checks.append(
                Check("metric", name, repr(value), shown, None, "ignored (--ignore-metric)")
            )
            continue
        if is_timing(name, compare_anyway):
            checks.append(Check("metric", name, repr(value), shown, None, "not compared (timing)"))
            continue
        if name not in new or _as_float(new[name]) is None:
            checks.append(
                Check("metric", name, repr(value), "missing", False, "not logged by the new run")
            )
            continue
        other = _as_float(new[name])
        assert other is not None
        ok = metric_matches(value, other, tolerance)
        note = "" if ok or math.isnan(value - other) else f"delta {other - value:+.6g}"
        checks.append(Check("metric", name, repr(value), repr(other), ok, note))
    return checks


def compare_artifacts(original: RunRecord, new: RunRecord) -> list[Check]:
    """Content digests of the run's logged files (model weights, predictions), our repro/ excluded.

    Files that change on every run whatever the model (an MLflow model's MLmodel, with
    its run id, creation time and uuid) are listed as not compared, with the reason.
    """
    from repro_common.outcomes import artifact_digests

    before, skipped = artifact_digests(original)
    after, _ = artifact_digests(new)
    checks = [
        Check("artifact", path, "-", "-", None, f"not compared: {why}")
        for path, why in sorted(skipped.items())
    ]
    for path, digest in sorted(before.items()):
        now = after.get(path)
        if now is None:
            checks.append(
                Check("artifact", path, short_fp(digest), "missing", False, "not logged again")
            )
            continue
        note = "" if now == digest else "content differs"
        checks.append(Check("artifact", path, short_fp(digest), short_fp(now), now == digest, note))
    return checks


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def compare(
    ws: Workspace,
    result: RunResult,
    new: RunRecord | None,
    tolerance: float = 0.0,
    ignore: tuple[str, ...] = (),
    compare_anyway: tuple[str, ...] = (),
    artifacts: bool = False,
) -> Verdict:
    """Inputs first (a different input explains any difference), then the outcomes.

    REPRODUCED needs at least one outcome (a metric, or with `artifacts` a logged
    file's content) compared, and all compared agreeing; with nothing to compare the
    verdict is REBUILT, NOT VERIFIED. An unseeded original is said first: its
    randomness was never recorded, so a match is luck and a mismatch expected.
    """
    from repro_common.diff import seeds_known

    original = ws.manifest
    unseeded = not seeds_known(original.seeds or {})
    lead = (
        "the original run was not seeded (no seed recorded), so its randomness cannot be replayed; "
        if unseeded
        else ""
    )
    checks: list[Check] = []
    if result.returncode != 0:
        last = result.tail[-1] if result.tail else ""
        checks.append(
            Check("run", "exit status", "0", str(result.returncode), False, f"see {result.log}")
        )
        return Verdict(False, f"the script exited with {result.returncode}: {last}", checks, new)
    if new is not None and new.manifest is None:
        reason = f"the new run {new.run_id} has no mlrepro record: {new.manifest_error}"
        return Verdict(False, reason, checks, new)
    if new is None:
        from repro_common.redact import strip_userinfo

        reason = (
            f"the script finished but no run tagged repro.reproduces={ws.reproduces} "
            f"appeared in {strip_userinfo(ws.log_to or str(ws.root))} "
            "(is the plugin installed where it ran?)"
        )
        return Verdict(False, reason, checks, None)
    checks += _informational(original, new)
    inputs = compare_inputs(original, new.manifest)
    checks += inputs
    bad_inputs = [c for c in inputs if c.ok is False]
    if bad_inputs:
        names = ", ".join(c.name for c in bad_inputs)
        return Verdict(False, f"{lead}inputs differ: {names} (outcomes not compared)", checks, new)
    metrics = compare_metrics(
        ws.record.metrics or {}, new.metrics, tolerance, ignore, compare_anyway
    )
    files = compare_artifacts(ws.record, new) if artifacts else []
    checks += metrics + files
    judged = [c for c in metrics + files if c.ok is not None]
    timing = [c.name for c in metrics if c.note == "not compared (timing)"]
    bad = [c for c in judged if c.ok is False]
    if bad:
        first = "; ".join(f"{c.name} {c.original} -> {c.reproduced}" for c in bad[:3])
        return Verdict(False, f"{lead}{len(bad)} outcome(s) differ: {first}", checks, new)
    if not judged:
        held = []
        if not ws.record.metrics:
            held.append("no metrics")
        elif timing:
            held.append(f"only timing metrics ({', '.join(timing[:4])})")
        else:
            held.append("no comparable metrics")
        if artifacts and files:
            held.append(f"no artifact that can be compared ({len(files)} listed, see the checks)")
        elif artifacts:
            held.append("no artifacts outside repro/")
        reason = (
            f"{lead}inputs match but nothing was compared: the original run logged "
            f"{' and '.join(held)}; {WHAT_TO_LOG}"
        )
        return Verdict(False, reason, checks, new, verified=False)
    how = "exactly" if tolerance <= 0 else f"within {tolerance:g}"
    parts = []
    if any(c.section == "metric" for c in judged):
        parts.append(f"{sum(c.section == 'metric' for c in judged)} metric(s)")
    if any(c.section == "artifact" for c in judged):
        parts.append(f"{sum(c.section == 'artifact' for c in judged)} artifact(s)")
    reason = f"{lead}inputs match and {' and '.join(parts)} agree {how}"
    if timing:
        reason += f"; not compared (timing): {', '.join(timing)}"
    return Verdict(True, reason, checks, new)


def _informational(original: Manifest, new: RunRecord) -> list[Check]:
    """Commit, environment and seed of the new run, shown but not judged."""
    other = new.manifest
    if other is None:
        return [Check("run", "record", "manifest", "missing", None, new.manifest_error or "")]
    rows = [
        ("code", "commit", original.code.get("commit"), other.code.get("commit")),
        ("code", "diff", original.code.get("diff_digest"), other.code.get("diff_digest")),
        (
            "environment",
            "digest",
            original.environment.get("digest"),
            other.environment.get("digest"),
        ),
        (
            "seeds",
            "global",
            (original.seeds or {}).get("global"),
            (other.seeds or {}).get("global"),
        ),
    ]
    checks = []
    for section, name, a, b in rows:
        if a is None and b is None:
            continue
        text_a = short_fp(str(a)) if isinstance(a, str) and ":" in a else str(a)
        text_b = short_fp(str(b)) if isinstance(b, str) and ":" in b else str(b)
        if section == "code" and name == "commit":
            text_a, text_b = short(str(a)), short(str(b))
        checks.append(Check(section, name, text_a, text_b, None, "same" if a == b else "differs"))
    return checks
