"""Two tracks: exploratory (record only, never refuse) and production (heavier capture, gated).

The one place that knows the track names and which track a run is on; what the
production track asks of a run is in `repro_common.production`, how its inputs are
snapshotted in `repro_common.snapshots`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro_common.manifest import TRACKS
from repro_common.summary import TRACK as TRACK_TAG

if TYPE_CHECKING:
    from repro_common.runs import RunRecord

EXPLORATORY, PRODUCTION = TRACKS


def check_track(track: str) -> str:
    """`track` when it is one of the tracks; else the ValueError every entry point raises."""
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}: choose one of {', '.join(TRACKS)}")
    return track


def run_track(record: RunRecord) -> str:
    """The track a run is on now: the `repro.track` tag (promotion sets it), else the manifest's."""
    tagged = (record.tags or {}).get(TRACK_TAG)
    if tagged in TRACKS:
        return str(tagged)
    if record.manifest is not None and record.manifest.track in TRACKS:
        return record.manifest.track
    return EXPLORATORY
