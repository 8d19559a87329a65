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
# Files of an MLflow model folder (one holding an MLmodel) that describe its environment or an
# input sample: not outcomes, and equal whenever the record's environment is.
MODEL_SPEC_FILES = (
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
    "registered_model_meta",
)
# Suffixes of formats that differ on every save of the same model: suffix -> why.
VOLATILE_SUFFIXES = {
    ".skops": "skops names its arrays by memory address, so the same model differs on every "
    "save (log it with serialization_format='cloudpickle' to compare it)",
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
    digests: dict[str, str] = {}
    skipped: dict[str, str] = {}
    paths = [p for p in record.list_artifacts() if not p.startswith(NOT_OUTCOME_DIRS)]
    model_dirs = {p.rpartition("/")[0] for p in paths if p.rpartition("/")[2] == "MLmodel"}
    for path in paths:
        folder, _, name = path.rpartition("/")
        if folder in model_dirs and name in MODEL_SPEC_FILES:
            skipped[path] = "the model's environment spec or input example, not an outcome"
            continue
        suffix = next((s for s in VOLATILE_SUFFIXES if name.endswith(s)), None)
        if suffix is not None:
            skipped[path] = VOLATILE_SUFFIXES[suffix]
            continue
        if record.kind == "wandb" and "/" not in path and name in WANDB_INPUT_COPIES:
            continue  # W&B's environment and code copies: inputs, compared by the record
        if name in VOLATILE_ARTIFACTS:
            skipped[path] = VOLATILE_ARTIFACTS[name]
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
