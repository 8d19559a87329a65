"""What a run produced, as opposed to what went in: metrics and artifact contents.

Shared by `diff` and `reproduce`, so both leave out the same clock metrics and the
same volatile files. A clock metric (`train_runtime`, `eval_samples_per_second`)
measures the machine, never the model: it is listed as "not compared (timing)"
rather than silently dropped, and a user can ask for one to be compared anyway.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repro_common.runs import RunRecord

# Metrics that measure the machine or the clock (Hugging Face's Trainer, Lightning, Keras, MLflow's
# system metrics), matched case-insensitively against the whole name.
TIMING_METRICS = (
    "_*",
    "system/*",
    "time/*",
    "*_time",
    "*_time_*",
    "*time_s",
    "*_seconds",
    "*_secs",
    "*runtime",
    "*duration*",
    "*_per_sec*",
    "*per_second*",
    "*throughput*",
    "*_mem_*",
)

# Suffixes of formats that differ on every save of the same model: suffix -> why.
VOLATILE_SUFFIXES = {
    ".skops": "skops names its arrays by memory address, so the same model differs on every "
    "save (log it with serialization_format='cloudpickle' to compare it)",
}
# Files that are a console log whatever the tracker: timings and progress bars.
VOLATILE_ARTIFACTS = {"output.log": "the console output (timings, progress bars)"}
# Our own record is never an outcome; each run source names its tracker's own folders.
NOT_OUTCOME_DIRS = ("repro/",)


def is_timing(name: str, compare_anyway: tuple[str, ...] = ()) -> bool:
    """True for a clock or machine metric, unless a `compare_anyway` glob names it."""
    lowered = name.lower()
    if any(fnmatch(lowered, pattern.lower()) for pattern in compare_anyway):
        return False
    return any(fnmatch(lowered, pattern) for pattern in TIMING_METRICS)


def artifact_digests(record: RunRecord) -> tuple[dict[str, str], dict[str, str]]:
    """({path: blake3} of the run's artifacts, {path: why not compared}); our repro/ folder excluded.

    Reads each file through the run source (the core imports no tracker); each source's
    `ArtifactLayout` says which of its tracker's files are not outcomes (its own
    copies of the inputs are left out only for its own runs).
    """
    from repro_common.runs import run_sources

    layouts = [source.artifacts for source in run_sources()]
    own = next((s.artifacts for s in run_sources() if s.name == record.kind), None)
    volatile = {name: why for lay in layouts for name, why in lay.volatile.items()}
    volatile.update(VOLATILE_ARTIFACTS)
    not_outcomes = NOT_OUTCOME_DIRS + tuple(d for lay in layouts for d in lay.not_outcomes)
    markers = {lay.model_marker: lay.model_spec_files for lay in layouts if lay.model_marker}
    digests: dict[str, str] = {}
    skipped: dict[str, str] = {}
    paths = [p for p in record.list_artifacts() if not p.startswith(not_outcomes)]
    model_dirs = {
        p.rpartition("/")[0]: markers[p.rpartition("/")[2]]
        for p in paths
        if p.rpartition("/")[2] in markers
    }
    for path in paths:
        folder, _, name = path.rpartition("/")
        if folder in model_dirs and name in model_dirs[folder]:
            skipped[path] = "the model's environment spec or input example, not an outcome"
            continue
        suffix = next((s for s in VOLATILE_SUFFIXES if name.endswith(s)), None)
        if suffix is not None:
            skipped[path] = VOLATILE_SUFFIXES[suffix]
            continue
        if own is not None and "/" not in path and name in own.input_copies:
            continue  # the tracker's environment and code copies: inputs, compared by the record
        if name in volatile:
            skipped[path] = volatile[name]
            continue
        content = record.read_artifact(path)
        if content is None:
            skipped[path] = "could not be read"
            continue
        digests[path] = content_digest(content)
    return digests, skipped


def content_digest(content: bytes) -> str:
    """blake3 of a file; of a zip archive's members (names and bytes), not of the archive.

    Model formats that are zip files (skops, torch.save, .keras) stamp each member
    with the time it was written, so the same weights saved twice differ byte for
    byte; their members do not.
    """
    import blake3

    if content.startswith(b"PK\x03\x04"):
        import io
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                hasher = blake3.blake3(b"mlrepro.zip-members/1\0")
                for name in sorted(archive.namelist()):
                    member = archive.read(name)
                    hasher.update(f"{name}\0{len(member)}\0".encode())
                    hasher.update(member)
                return "blake3:" + hasher.hexdigest()
        except (zipfile.BadZipFile, OSError, ValueError):
            pass  # not a readable archive after all: hash the bytes
    return "blake3:" + blake3.blake3(content).hexdigest()
