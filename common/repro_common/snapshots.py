"""Data snapshots: how each tracked input of a production run is made retrievable.

Each tracked input is retrievable either through an immutable DVC reference (its
md5), as the version of a table that still holds it, or, when it is a file or folder
no larger than the snapshot limit, as a copy under `repro/data/<name>/` whose
fingerprint is checked again after upload.

The snapshot limit is per input: `MLREPRO_SNAPSHOT_LIMIT_MB` (default 100 MB).
Larger inputs belong in DVC (or another versioned store): copying gigabytes into
a tracker's artifact store on every run is slow and costly.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro_common.manifest import Manifest
from repro_common.settings import env_float

if TYPE_CHECKING:
    from repro_common.runs import RunBackend

SNAPSHOT_LIMIT_ENV = "MLREPRO_SNAPSHOT_LIMIT_MB"
DEFAULT_SNAPSHOT_LIMIT_MB = 100
SNAPSHOT_ROOT = "data"  # inside repro/


def snapshot_limit_bytes() -> int:
    """Largest input copied into a snapshot, in bytes (MLREPRO_SNAPSHOT_LIMIT_MB, default 100)."""
    megabytes = env_float(SNAPSHOT_LIMIT_ENV, DEFAULT_SNAPSHOT_LIMIT_MB)
    return max(0, int(megabytes * 1024 * 1024))


def snapshot_prefix(name: str) -> str:
    """`data/<name>` with the name made safe for every artifact store (relative to repro/)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "input"
    return f"{SNAPSHOT_ROOT}/{safe}"


@dataclass
class SnapshotPlan:
    """How one tracked input is made retrievable, and why not when it cannot be."""

    name: str
    item: dict[str, Any]
    status: str  # dvc | snapshot | table | table_gone | too_large | no_path | missing | partial
    reason: str
    path: Path | None = None
    files: list[tuple[Path, str]] = field(default_factory=list)  # (local file, name under repro/)
    size_bytes: int = 0

    @property
    def retrievable(self) -> bool:
        return self.status in ("dvc", "snapshot", "table")

    def fetch(self) -> str | None:
        """Bring remote data next to us before it is copied; None, or why it failed.
        Local data is already here (see s3_snapshots for data that is not)."""
        return None


PATH_KINDS = ("file", "directory")


def input_path(item: dict[str, Any], manifest: Manifest | None = None) -> Path | None:
    """The local file or folder an input was read from (None for arrays, frames, datasets).

    An in-memory input's `source` may name the file it was loaded from, but its
    fingerprint is of the parsed object, not of that file: copying the file would
    not give back what the fingerprint covers.
    """
    if item.get("kind") not in PATH_KINDS:
        return None
    for key in ("path", "source"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            continue
        if value.startswith("file://"):
            value = value[len("file://") :]
        candidate = Path(value).expanduser()
        if candidate.is_absolute():
            return candidate
        code = manifest.code if manifest is not None else {}
        root = code.get("root")
        bases = [Path(root) / (code.get("cwd") or "")] if root else []
        for base in [*bases, Path.cwd()]:
            if (base / candidate).exists():
                return base / candidate
    return None


def _table_plan(name: str, item: dict[str, Any]) -> SnapshotPlan:
    """A Delta/Iceberg version needs no copy while the table itself can give it back."""
    from repro_common.table_inputs import check_table, label

    if item.get("fingerprint") is None:
        return SnapshotPlan(name, item, "table_gone", f"{name!r}: {item.get('reason')}")
    problem = check_table(item)
    if problem is not None:
        return SnapshotPlan(name, item, "table_gone", problem)
    return SnapshotPlan(name, item, "table", f"{name!r} is retrievable as {label(item)}")


def _files_under(path: Path) -> list[tuple[Path, str]]:
    """(file, relative POSIX path) for a file or every file of a folder, as the fingerprint walks it."""
    if path.is_file():
        return [(path, path.name)]
    found = []
    for folder, _, names in os.walk(path, followlinks=True):
        for name in names:
            local = Path(folder) / name
            if local.is_file():
                found.append((local, local.relative_to(path).as_posix()))
    return sorted(found, key=lambda pair: pair[1])


def plan_snapshot(item: dict[str, Any], manifest: Manifest | None = None) -> SnapshotPlan:
    """Decide how `item` becomes retrievable: its DVC md5, or a copy under the size limit."""
    name = str(item.get("name"))
    from repro_common.table_inputs import pinned_by_version

    if pinned_by_version(item):
        return _table_plan(name, item)
    if item.get("kind") == "s3":  # an unversioned bucket: only a copy makes it retrievable
        return s3_snapshot_plan(item)
    if item.get("partial"):
        return SnapshotPlan(name, item, "partial", f"{name!r} was only partly fingerprinted")
    dvc = item.get("dvc") or {}
    if isinstance(dvc, dict) and dvc.get("md5"):
        return SnapshotPlan(name, item, "dvc", f"{name!r} is referenced by DVC md5 {dvc['md5']}")
    path = input_path(item, manifest)
    kind = item.get("kind") or "input"
    if path is None:
        return SnapshotPlan(
            name,
            item,
            "no_path",
            f"{name!r} ({kind}) has no DVC reference and no file to copy: "
            "track the file or folder it was loaded from",
        )
    if not path.exists():
        return SnapshotPlan(name, item, "missing", f"{name!r}: {path} no longer exists", path=path)
    files = _files_under(path)
    size = sum(local.stat().st_size for local, _ in files)
    limit = snapshot_limit_bytes()
    if size > limit:
        return SnapshotPlan(
            name,
            item,
            "too_large",
            f"{name!r} is {size / 2**20:.1f} MB, over the {limit / 2**20:.0f} MB snapshot limit "
            f"({SNAPSHOT_LIMIT_ENV}): put it under DVC",
            path=path,
            size_bytes=size,
        )
    prefix = snapshot_prefix(name)
    if path.is_file():
        named = [(local, f"{prefix}/{rel}") for local, rel in files]
    else:
        named = [(local, f"{prefix}/{path.name}/{rel}") for local, rel in files]
    return SnapshotPlan(
        name,
        item,
        "snapshot",
        f"{name!r} is copied to repro/{prefix}/ ({len(files)} file(s), {size} bytes)",
        path=path,
        files=named,
        size_bytes=size,
    )


def local_mismatch(plan: SnapshotPlan) -> str | None:
    """Why the data at the recorded path no longer matches its fingerprint (None when it does)."""
    problem = plan.fetch()  # remote data (S3) is downloaded first
    if problem is not None:
        return problem
    if plan.path is None:
        return None
    if not plan.path.exists():
        return f"{plan.name}: {plan.path} no longer exists"
    from repro_common.fingerprints import fingerprint

    try:
        now = fingerprint(plan.path)
    except Exception as exc:  # unreadable data is a mismatch, said in one line
        return f"{plan.name}: cannot fingerprint {plan.path} ({type(exc).__name__}: {exc})"
    recorded = plan.item.get("fingerprint")
    if now != recorded:
        return f"{plan.name}: {plan.path} is now {now}, recorded {recorded}"
    return None


def snapshot_record(plan: SnapshotPlan) -> dict[str, Any]:
    """What the manifest keeps about a snapshot (left out of the digest)."""
    return {
        "path": f"repro/{snapshot_prefix(plan.name)}",
        "files": len(plan.files),
        "size_bytes": plan.size_bytes,
        "layout": "file" if plan.path is not None and plan.path.is_file() else "directory",
    }


def verify_uploaded_snapshot(backend: RunBackend, plan: SnapshotPlan) -> str | None:
    """Read the stored copy back and fingerprint it; None when it matches the record."""
    from repro_common.fingerprints import fingerprint

    with tempfile.TemporaryDirectory(prefix="mlrepro-snapshot-") as tmp:
        root = Path(tmp)
        for _, artifact in plan.files:
            raw = backend.read_artifact(f"repro/{artifact}")
            if raw is None:
                return f"{plan.name}: repro/{artifact} is missing after upload"
            target = root / artifact
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw)
        prefix = root / snapshot_prefix(plan.name)
        copy = prefix / (plan.path.name if plan.path is not None else "")
        if plan.path is not None and plan.path.is_dir() and not copy.exists():
            copy.mkdir(parents=True)  # an empty folder uploads no files
        stored = fingerprint(copy)
    if stored != plan.item.get("fingerprint"):
        return f"{plan.name}: the stored copy is {stored}, recorded {plan.item.get('fingerprint')}"
    return None


def verify_snapshots(backend: RunBackend, manifest: Manifest) -> list[str]:
    """After an upload: fingerprint every stored snapshot of `manifest` again; the problems found.

    For adapters on the production track (e.g. with
    `mlflow_repro_plugin.source.MlflowRunBackend(client, run_id)`), and promotion.
    """
    problems = []
    for item in manifest.data:
        plan = plan_snapshot(item, manifest)
        if plan.status == "snapshot":
            problem = verify_uploaded_snapshot(backend, plan)
            if problem:
                problems.append(problem)
    return problems


def snapshot_counts(item: dict[str, Any], artifacts: set[str]) -> tuple[int, int | None]:
    """(snapshot files stored, files the record expects or None when it does not say)."""
    prefix = f"repro/{snapshot_prefix(str(item.get('name')))}/"
    stored = sum(1 for name in artifacts if name.startswith(prefix))
    expected = (item.get("snapshot") or {}).get("files")
    return stored, expected if isinstance(expected, int) else None


def snapshot_stored(item: dict[str, Any], artifacts: set[str]) -> bool:
    stored, expected = snapshot_counts(item, artifacts)
    if expected is not None:
        return stored >= expected and (stored > 0 or expected == 0)
    return stored > 0


# S3 objects in buckets without versioning are not immutable (an overwrite replaces them):
# the production track copies them into the run like a local file, downloaded only then.


class RemoteSnapshotPlan(SnapshotPlan):
    """A snapshot of S3 objects: `fetch()` downloads the recorded content into a temporary
    folder that lives as long as the plan, then it is copied like a local file or folder."""

    staging: tempfile.TemporaryDirectory[str] | None = None

    def fetch(self) -> str | None:
        if self.path is not None:
            return None
        from repro_common.fingerprints.s3_objects import (
            current_objects,
            download_object,
            recorded_objects,
            s3_client,
        )
        from repro_common.table_inputs import TableInputError

        try:
            loc, recorded = recorded_objects(self.item)
            client = s3_client()
            objects = current_objects(client, loc, recorded)
            self.staging = tempfile.TemporaryDirectory(prefix="mlrepro-s3-")
            root = Path(self.staging.name)
            base = loc.key.rstrip("/").rsplit("/", 1)[-1] or loc.bucket
            target = root / base
            for obj in objects:
                rel = obj.key[len(loc.key) :] if loc.is_prefix else ""
                local = target / rel if rel else target
                if not _inside_folder(root, local):
                    raise TableInputError(f"s3://{loc.bucket}/{obj.key} leaves its folder")
                local.parent.mkdir(parents=True, exist_ok=True)
                download_object(client, loc.bucket, obj, local)
        except TableInputError as exc:
            return f"{self.name}: {exc}"
        prefix = snapshot_prefix(self.name)
        if loc.is_prefix:
            files = sorted(p for p in target.rglob("*") if p.is_file())
            self.files = [(p, f"{prefix}/{base}/{p.relative_to(target).as_posix()}") for p in files]
        else:
            self.files = [(target, f"{prefix}/{base}")]
        self.path = target
        return None


def s3_snapshot_plan(item: dict[str, Any]) -> SnapshotPlan:
    """How an object in an unversioned bucket becomes retrievable: a copy in the run (fetched
    only when the copy is made, see RemoteSnapshotPlan.fetch), within the snapshot limit."""
    name = str(item.get("name"))
    uri = item.get("uri")
    size = int(item.get("size_bytes") or 0)
    limit = snapshot_limit_bytes()
    if size > limit:
        return RemoteSnapshotPlan(
            name,
            item,
            "too_large",
            f"{name!r} ({uri}) is in an S3 bucket without versioning, so not immutable, and at "
            f"{size / 2**20:.1f} MB it is over the {limit / 2**20:.0f} MB snapshot limit "
            f"({SNAPSHOT_LIMIT_ENV}): turn on versioning for the bucket",
            size_bytes=size,
        )
    return RemoteSnapshotPlan(
        name,
        item,
        "snapshot",
        f"{name!r} ({uri}) is in an S3 bucket without versioning: it is copied to the run",
        size_bytes=size,
    )


def _inside_folder(root: Path, path: Path) -> bool:
    return root.resolve() in path.resolve().parents
