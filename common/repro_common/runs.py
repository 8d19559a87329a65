"""Find a run's record from what the user typed: a manifest file, a W&B run dir, an MLflow run.

The core knows no tracker. Adapters register a `RunSource` under the entry-point
group `mlrepro.run_sources`. Its `load_run(ref, tracking_uri)` returns a RunRecord,
or None when the ref is not theirs, or raises RunNotFound when it is theirs but
cannot be read; the rest tells `reproduce` what only the tracker knows: where the
rerun logs its new run, and how to find that run afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from repro_common import summary
from repro_common.manifest import Manifest, ManifestError

SOURCE_GROUP = "mlrepro.run_sources"
RECORD_MAX_MB_DEFAULT = 64  # MLREPRO_MAX_RECORD_MB: a larger manifest is refused unread
DIGEST_TAG = summary.MANIFEST_DIGEST
ANNOUNCED_TAG = summary.ARTIFACTS  # what repro/ will hold, set when the run is created
ERRORS_TAG = summary.CAPTURE_ERRORS
# Runs recorded before `repro.artifacts` carried this note from creation until their upload landed.
LEGACY_PENDING_NOTE = "artifacts: repro/ upload pending"


class RunNotFound(LookupError):
    """The RUN argument names nothing readable; the message says why in one line."""


class RecordTooLarge(RunNotFound):
    """A manifest over the size limit: refused before it is parsed or printed."""


def record_max_bytes() -> int:
    """The largest manifest readers accept (MLREPRO_MAX_RECORD_MB, default 64 MB)."""
    raw = os.environ.get("MLREPRO_MAX_RECORD_MB", "").strip()
    try:
        megabytes = float(raw) if raw else RECORD_MAX_MB_DEFAULT
    except ValueError:
        megabytes = RECORD_MAX_MB_DEFAULT
    return int(max(megabytes, 0) * 1024 * 1024)


def refuse_if_too_large(size: int, where: str = "the manifest") -> None:
    """Raise RecordTooLarge with one line when `size` bytes is over the limit."""
    limit = record_max_bytes()
    if size > limit:
        raise RecordTooLarge(
            f"{where} is {size / 1024 / 1024:.1f} MB, over the {limit / 1024 / 1024:g} MB "
            "limit for a record; refusing to read it (raise MLREPRO_MAX_RECORD_MB to allow it)"
        )


class RunBackend(Protocol):
    """What a tracker offers for an existing run: read and add artifacts, set tags."""

    def read_artifact(self, path: str) -> bytes | None: ...

    def list_artifacts(self, prefix: str = "") -> list[str]: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None: ...


@dataclass
class RunRecord:
    ref: str
    kind: str  # "mlflow" | "wandb" | "manifest"
    manifest: Manifest | None
    manifest_error: str | None = None
    run_id: str | None = None
    location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    backend: RunBackend | None = None

    def read_artifact(self, path: str) -> bytes | None:
        return self.backend.read_artifact(path) if self.backend else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        return self.backend.list_artifacts(prefix) if self.backend else []


INCOMPLETE = "record incomplete:"


def record_incomplete(paths: list[str]) -> str:
    """The one line every reader prints for a record whose upload never landed."""
    return f"{INCOMPLETE} {', '.join(paths)} never arrived"


def capture_errors_note(tags: dict[str, str]) -> str | None:
    """The run's `repro.capture.errors` worth showing. An old run's "pending" note is left out:
    either its manifest is there (the upload landed, the note was not cleared) or the reader
    already says the record is incomplete."""
    value = (tags or {}).get(ERRORS_TAG)
    if not value:
        return None
    kept = [part for part in value.split("; ") if not part.startswith(LEGACY_PENDING_NOTE)]
    return "; ".join(kept) or None


def parse_manifest(raw: bytes | str | None) -> tuple[Manifest | None, str | None]:
    """(manifest, None) or (None, one-line reason); RecordTooLarge over the size limit."""
    if raw is None:
        return None, "no repro/manifest.json in the run"
    refuse_if_too_large(len(raw))
    try:
        return Manifest.from_json(raw), None
    except ManifestError as exc:
        return None, str(exc)


class _ManifestFileBackend:
    def __init__(self, path: Path) -> None:
        self.folder = path.parent

    def read_artifact(self, path: str) -> bytes | None:
        """`repro/<rest>` is `<rest>` next to manifest.json (a downloaded repro/ folder)."""
        rest = path[len("repro/") :] if path.startswith("repro/") else path.split("/")[-1]
        folder = self.folder.resolve()
        candidate = (folder / rest).resolve()
        if folder not in candidate.parents:
            return None
        return candidate.read_bytes() if candidate.is_file() else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_file())

    def set_tags(self, tags: dict[str, str]) -> None:
        raise RunNotFound("a manifest file has no tags to set; use an MLflow or W&B run")

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        raise RunNotFound("a manifest file cannot take artifacts; use an MLflow or W&B run")


def _load_manifest_file(ref: str) -> RunRecord | None:
    path = Path(ref)
    if not path.is_file():
        return None
    try:
        refuse_if_too_large(path.stat().st_size, ref)
        raw = path.read_bytes()
    except OSError as exc:
        raise RunNotFound(f"cannot read {ref}: {exc.strerror}") from exc
    manifest, error = parse_manifest(raw)
    if manifest is None:
        try:
            json.loads(raw)
        except ValueError as exc:
            raise RunNotFound(f"{ref} is not a manifest: not JSON ({exc})") from exc
    return RunRecord(
        ref=ref,
        kind="manifest",
        manifest=manifest,
        manifest_error=error,
        location=str(path.resolve()),
        backend=_ManifestFileBackend(path),
    )


@dataclass(frozen=True)
class ArtifactLayout:
    """What a tracker puts among a run's artifacts besides the user's outcomes."""

    volatile: dict[str, str] = field(default_factory=dict)  # file name -> why it changes every run
    not_outcomes: tuple[str, ...] = ()  # folders (`code/`) that hold no outcome
    input_copies: tuple[str, ...] = ()  # top-level files of its own runs that copy an input
    model_marker: str | None = None  # the file that makes a folder a saved model
    model_spec_files: tuple[str, ...] = ()  # files of such a folder that describe, not produce


@dataclass
class RerunSetup:
    """What one tracker sets for a rerun so that the new run is logged where it should be."""

    written: dict[str, str] = field(default_factory=dict)  # reproduce.sh defaults, no credentials
    secret: dict[str, str] = field(default_factory=dict)  # the same with credentials: run time only
    where: str | None = None  # where the new run will appear, for messages (may hold credentials)


@dataclass(frozen=True)
class NewRunSearch:
    """What a source needs to find the run a rerun just logged."""

    original: RunRecord
    reproduces: str  # the value of the new run's `repro.reproduces` tag
    folder: Path  # the reproduction folder
    run_cwd: Path  # where the script ran
    env: dict[str, str]  # the tracker variables the rerun was given (credentials included)
    started_at: float  # the rerun's start, seconds since the epoch


class RunSource(Protocol):
    """A tracker's side of mlrepro: read its runs, and set up and find a rerun's new run."""

    name: str  # the RunRecord.kind of its runs
    priority: int  # lower reads a RUN argument first (a run folder before a run-id pattern)
    rerun_priority: int  # lower is preferred among new runs found, and named when none is
    script_lines: tuple[str, ...]  # our own shell lines for reproduce.sh, after the variables
    dropped_variables: tuple[str, ...]  # inherited variables the rerun must not see
    build_ignores: tuple[str, ...]  # what its rerun writes into the folder (.dockerignore)
    dockerfile_hints: tuple[str, ...]  # comment lines for the Dockerfile
    artifacts: ArtifactLayout  # which of its runs' files are outcomes

    def load_run(self, ref: str, tracking_uri: str | None = None) -> RunRecord | None: ...

    def rerun_setup(
        self, original: RunRecord, tracking_uri: str | None, folder: Path
    ) -> RerunSetup: ...

    def find_new_runs(self, search: NewRunSearch) -> list[RunRecord]: ...

    def reload(self, run: RunRecord, env: dict[str, str]) -> RunRecord: ...


@dataclass
class LoaderOnlySource:
    """A source registered as a bare `load_run` function: it reads runs, nothing more."""

    loader: Callable[[str, str | None], RunRecord | None]
    name: str = ""
    priority: int = 100
    rerun_priority: int = 100
    script_lines: tuple[str, ...] = ()
    dropped_variables: tuple[str, ...] = ()
    build_ignores: tuple[str, ...] = ()
    dockerfile_hints: tuple[str, ...] = ()
    artifacts: ArtifactLayout = field(default_factory=ArtifactLayout)

    def load_run(self, ref: str, tracking_uri: str | None = None) -> RunRecord | None:
        return self.loader(ref, tracking_uri)

    def rerun_setup(
        self, original: RunRecord, tracking_uri: str | None, folder: Path
    ) -> RerunSetup:
        return RerunSetup()

    def find_new_runs(self, search: NewRunSearch) -> list[RunRecord]:
        return []

    def reload(self, run: RunRecord, env: dict[str, str]) -> RunRecord:
        return run


def _as_source(loaded: Any, name: str) -> RunSource:
    """The RunSource an entry point names. An entry point that still names its module's
    `load_run` function (metadata installed before sources had rerun methods) gets
    that module's `SOURCE`; any other bare loader reads runs and nothing more."""
    if hasattr(loaded, "rerun_setup"):
        return loaded  # type: ignore[no-any-return]
    import sys

    module = sys.modules.get(getattr(loaded, "__module__", "") or "")
    source = getattr(module, "SOURCE", None)
    if source is not None and getattr(source, "load_run", None) is not None:
        return source  # type: ignore[no-any-return]
    return LoaderOnlySource(loaded, name)


def run_sources() -> list[RunSource]:
    """The installed run sources, by `priority` (the order a RUN argument is tried in)."""
    from importlib.metadata import entry_points

    sources: list[RunSource] = []
    for ep in entry_points(group=SOURCE_GROUP):
        try:
            sources.append(_as_source(ep.load(), ep.name))
        except ImportError:
            continue  # that tracker is not installed
    return sorted(sources, key=lambda source: (source.priority, source.name))


def source_of(kind: str) -> RunSource | None:
    """The source whose runs are of `kind` (None for a manifest file)."""
    return next((s for s in run_sources() if s.name == kind), None)


def load_run(ref: str, tracking_uri: str | None = None) -> RunRecord:
    """Resolve RUN as the CLI documents it; raise RunNotFound with one clear line."""
    ref = ref.strip()
    if not ref:
        raise RunNotFound(
            "empty RUN: give an MLflow run id, runs:/<id>, a W&B run dir or a manifest.json"
        )
    record = _load_manifest_file(ref)
    if record is not None:
        return record
    for source in run_sources():
        record = source.load_run(ref, tracking_uri)
        if record is not None:
            return record
    if Path(ref).exists():
        raise RunNotFound(f"{ref} is neither a manifest.json nor a W&B run directory")
    raise RunNotFound(
        f"no run found for {ref!r}: not a file, not a W&B run dir, and no MLflow run with that id"
    )
