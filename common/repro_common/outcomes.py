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

# Files in a run's artifacts that change on every run whatever the model: name -> why.
VOLATILE_ARTIFACTS = {
    "MLmodel": "holds the run id, creation time and model uuid",
    "wandb-metadata.json": "W&B's host and start-time record",
    "wandb-summary.json": "W&B's summary (the metrics, with wall-clock times)",
    "config.yaml": "W&B's config copy (with its own timestamps)",
    "output.log": "the console output (timings, progress bars)",
}
WANDB_INPUT_COPIES = ("requirements.txt", "conda-environment.yaml", "diff.patch")
# Folders of a run's artifacts that are not outcomes: our own record, W&B's code copy.
NOT_OUTCOME_DIRS = ("repro/", "code/")


def is_timing(name: str, compare_anyway: tuple[str, ...] = ()) -> bool:
    """True for a clock or machine metric, unless a `compare_anyway` glob names it."""
    lowered = name.lower()
    if any(fnmatch(lowered, pattern.lower()) for pattern in compare_anyway):
        return False
    return any(fnmatch(lowered, pattern) for pattern in TIMING_METRICS)


def artifact_digests(record: RunRecord) -> tuple[dict[str, str], dict[str, str]]:
    """({path: blake3} of the run's artifacts, {path: why not compared}); our repro/ folder excluded.

    Reads each file through the run source (the core imports no tracker). W&B's own
    bookkeeping files (requirements.txt and friends in the run's files/) are left
    out as not outcomes only when the run is a W&B run.
    """
    import blake3

    digests: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for path in record.list_artifacts():
        if path.startswith(NOT_OUTCOME_DIRS):
            continue
        name = path.rsplit("/", 1)[-1]
        if record.kind == "wandb" and "/" not in path and name in WANDB_INPUT_COPIES:
            continue  # W&B's environment and code copies: inputs, compared by the record
        if name in VOLATILE_ARTIFACTS:
            skipped[path] = VOLATILE_ARTIFACTS[name]
            continue
        content = record.read_artifact(path)
        if content is None:
            skipped[path] = "could not be read"
            continue
        digests[path] = "blake3:" + blake3.blake3(content).hexdigest()
    return digests, skipped
