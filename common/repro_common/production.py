"""What the production track asks of a run, said once when the run starts.

A production-candidate run warns once at start about every requirement it will
not meet (judged by the gate's content rules on the record alone), and stores two
extras next to its manifest: the environment spec (`repro/Dockerfile` + pinned
`repro/requirements.txt`) and the data snapshots (`repro_common.snapshots`).
"""

from __future__ import annotations

import logging

from repro_common.gate import evaluate
from repro_common.logs import Once
from repro_common.manifest import Manifest
from repro_common.tracks import PRODUCTION

log = logging.getLogger("mlrepro")
_warned = Once()


def production_requirements(manifest: Manifest) -> list[str]:
    """Requirements of the production track this record will not meet, one line each.

    Judged on the record alone, as at run start: the environment spec, the diff and
    the snapshots are stored by the adapters, so only what they cannot fix is listed.
    """
    lines = []
    for rule in evaluate(manifest, PRODUCTION, artifacts=None):
        if rule.name == "manifest" or rule.passed:
            continue
        lines += [f"{rule.name}: {detail}" for detail in (rule.details or [rule.reason])]
    return lines


def warn_unmet_requirements(manifest: Manifest) -> list[str]:
    """On the production track, log each unmet requirement once per process; return them all."""
    if manifest.track != PRODUCTION:
        return []
    try:
        lines = production_requirements(manifest)
    except Exception as exc:  # a warning helper must never break the run it warns about
        log.warning("mlrepro: could not check production requirements: %s", exc)
        return []
    for line in lines:
        if _warned.first(line):
            log.warning("mlrepro production track: %s", line)
    return lines


def forget_warnings() -> None:
    """Warn again about requirements already warned about (tests, long-lived notebooks)."""
    _warned.clear()
