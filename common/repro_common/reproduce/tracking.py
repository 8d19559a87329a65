"""Where the rerun logs its new run, and finding that run afterwards: asked of the run sources.

The core knows no tracker: each installed `repro_common.runs.RunSource` says
which variables point its tracker at the right place, which shell lines and
Dockerfile hints go with them, and how to find the run the rerun just logged.
"""

from __future__ import annotations

import time
from pathlib import Path

from repro_common.reproduce.workspace import Workspace
from repro_common.runs import NewRunSearch, RerunSetup, RunRecord, run_sources, source_of

RECORD_RETRIES = 5  # seconds to wait for a new run's manifest to appear
# Ours: set by the caller to switch recording off, never to leak into the rerun.
OWN_DROPPED = ("MLREPRO_DISABLE",)


def rerun_setup(record: RunRecord, tracking_uri: str | None, folder: Path) -> RerunSetup:
    """Every source's variables for the rerun merged; `where` names the preferred source's place."""
    merged = RerunSetup()
    for source in sorted(run_sources(), key=lambda s: s.rerun_priority):
        setup = source.rerun_setup(record, tracking_uri, folder)
        merged.written.update(setup.written)
        merged.secret.update(setup.secret)
        merged.where = merged.where or setup.where
    return merged


def script_lines() -> list[str]:
    """The sources' own lines for reproduce.sh, after the variables."""
    return [line for source in run_sources() for line in source.script_lines]


def dropped_variables() -> list[str]:
    """Inherited variables the rerun must not see (a tracker's 'resume this run')."""
    return [name for source in run_sources() for name in source.dropped_variables] + list(
        OWN_DROPPED
    )


def dockerfile_hints() -> list[str]:
    return [hint for source in run_sources() for hint in source.dockerfile_hints]


def build_ignores() -> list[str]:
    """What the rerun writes into the folder, kept out of a `docker build` of it."""
    return [name for source in run_sources() for name in source.build_ignores]


def find_reproduction(ws: Workspace, started_at: float) -> RunRecord | None:
    """The run the script just logged: tagged repro.reproduces=<original>, from the original's
    own tracker when it found one, else from any; a source's preferred run first."""
    search = NewRunSearch(
        original=ws.record,
        reproduces=ws.reproduces,
        folder=ws.root,
        run_cwd=ws.run_cwd,
        env=dict(ws.secret_env),
        started_at=started_at,
    )
    sources = sorted(run_sources(), key=lambda s: s.rerun_priority)
    own = source_of(ws.record.kind)
    candidates = own.find_new_runs(search) if own is not None else []
    if not candidates:
        for source in sources:
            if source is not own:
                candidates += source.find_new_runs(search)
    tagged = [c for c in candidates if c.tags.get("repro.reproduces") == ws.reproduces]
    same_kind = [c for c in (tagged or candidates) if c.kind == ws.record.kind]
    preferred = same_kind or tagged or candidates
    if not preferred:
        return None
    found = preferred[0]
    found_by = source_of(found.kind)
    for _ in range(RECORD_RETRIES):  # an adapter may still be finishing its upload
        if found.manifest is not None or found_by is None:
            break
        time.sleep(1.0)
        found = found_by.reload(found, search.env)
    return found
