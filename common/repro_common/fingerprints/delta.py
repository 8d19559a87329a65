"""Delta Lake tables as run inputs, through deltalake (delta-rs: no Spark, no JVM).

The record names the table (URI without credentials), the resolved integer version
(0 is a version; never a timestamp or "latest"), the table id from its metadata (a
table dropped and recreated at the same path is another table) and a fingerprint
whose `basis` says what it covers:

- local tables: the content of every data file of that version (each hashed through
  the file cache, so fingerprinting an unchanged version again costs stat calls),
  with its path, partition values and deletion vector, and the table schema;
- remote tables (s3://, gs://, ...): the version's add actions from the log (path,
  size, partition values, deletion vector), the version, table id and schema. The
  files are not read, and the basis says so: it is not a content hash. Checking the
  version later (gate, reproduce, promote) asks the store for each file (one HEAD
  each), so a vacuumed remote version is still caught.

Rows deleted through a deletion vector are part of both: the set of deleted row
indices of each file, read from the DV files by delta-rs (the log's descriptor alone
would not see a DV file replaced or gone).

A version never changes, so what the log says about a local one (files, schema, table
id) is kept in the mlrepro cache folder under the table path, the version and a hash
of that version's commit file: fingerprinting an unchanged version again lists
`_delta_log/` and reads one commit file instead of replaying the log. A new commit is
a new version (a miss); a table recreated at the same path writes another commit file
(a miss); a version whose log can no longer be replayed falls back to delta-rs, which
says why.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from repro_common.redact import redact_uri
from repro_common.table_inputs import (
    TableInputError,
    content_digest,
    is_remote,
    local_path,
    require,
    split_delta_pin,
)

BASIS_FILES = "delta-files/1"
BASIS_LOG = "delta-log/1"
BASIS_TEXT = {
    BASIS_FILES: "content of every data file of the version (blake3), with its path, partition "
    "values and the rows its deletion vector deletes, and the table schema",
    BASIS_LOG: "the version's add actions from the Delta log (path, size, partition values), "
    "the rows each deletion vector deletes, the version, table id and schema; the data files "
    "were not read",
}
# `_delta_log/` entries: commits `<version>.json`, checkpoints `<version>.checkpoint[...]`.
_LOG_ENTRY = re.compile(r"^(\d{20})\.(json|checkpoint(?:\.[^/]*)?\.(?:parquet|json))$")
_VERSION_CACHE_FORMAT = 1


def describe_delta(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    version: int | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The manifest entry for one version of a Delta table (TableInputError when unreadable)."""
    require("delta")  # a missing extra is said even when the version cache could answer
    uri, pinned = _target(obj)
    if version is not None:
        wanted: int | None = _as_version(version)
        if pinned is not None and pinned != wanted:
            raise TableInputError(f"{name}: {uri} pinned at v{pinned} but version={version!r}")
    else:
        wanted = pinned
    if wanted is None and type(obj).__name__ == "DeltaTable":
        # the version the user's object has loaded, not whatever is newest now
        state = (_cached_state(uri, int(obj.version())) if use_cache else None) or _state(obj)
    else:
        state = (_cached_state(uri, wanted) if use_cache else None) or _state(
            open_delta(uri, wanted), uri
        )
    return _entry(state, name, source, use_cache=use_cache)


def reopen_delta(item: dict[str, Any], *, use_cache: bool = True) -> dict[str, Any]:
    """The recorded version described again: TableInputError when it was vacuumed, left
    the log or the table at that URI is another one now."""
    name = str(item.get("name"))
    uri, version = str(item.get("uri")), item.get("version")
    if not isinstance(version, int):
        raise TableInputError(f"the record names no Delta version for {uri}")
    require("delta")
    state = (_cached_state(uri, version) if use_cache else None) or _state(
        open_delta(uri, version), uri
    )
    table_id = state["table_id"]
    if item.get("table_id") and table_id != item.get("table_id"):
        raise TableInputError(
            f"{uri} is another table now (table id {table_id}, recorded "
            f"{item.get('table_id')}): it was dropped and recreated; v{version} is gone"
        )
    if is_remote(uri):
        _require_remote_files(state["table_uri"], state["actions"], version)
    return _entry(state, name, item.get("source"), use_cache=use_cache)


def _require_remote_files(table_uri: str, actions: list[dict[str, Any]], version: int) -> None:
    """Every data file of a remote version must still be in the store (one HEAD each):
    a log-basis fingerprint does not read them, so a vacuum would otherwise go unseen."""
    import pyarrow.fs as pafs

    uri = table_uri.rstrip("/")
    try:
        store, root = pafs.FileSystem.from_uri(uri)
        paths = [
            pafs.FileSystem.from_uri(a["path"])[1]
            if "://" in a["path"]
            else f"{root}/{unquote(a['path'])}"
            for a in actions
        ]
        infos = store.get_file_info(paths)
    except Exception as exc:
        raise TableInputError(
            f"cannot check the files of version {version} of Delta table {redact_uri(uri)}: "
            f"{_one_line(exc)}"
        ) from None
    for action, info in zip(actions, infos, strict=True):
        if info.type == pafs.FileType.NotFound:
            raise TableInputError(
                f"version {version} of Delta table {redact_uri(uri)} cannot be read: its file "
                f"{action['path']} is gone (vacuumed?)"
            )


def open_delta(uri: str, version: int | None) -> Any:
    """A DeltaTable at `version` (newest when None); each failure is one line naming it."""
    deltalake = require("delta")
    from deltalake.exceptions import TableNotFoundError

    shown = redact_uri(uri)
    try:
        if version is None:
            return deltalake.DeltaTable(uri)
        return deltalake.DeltaTable(uri, version=version)
    except TableNotFoundError:
        raise TableInputError(f"{shown} is not a Delta table (no _delta_log there)") from None
    except Exception as exc:
        if version is None:
            raise TableInputError(f"cannot open Delta table {shown}: {_one_line(exc)}") from None
    latest = _latest(uri)
    if latest is not None and version > latest:
        raise TableInputError(
            f"version {version} of Delta table {shown} does not exist (newest is v{latest})"
        ) from None
    raise TableInputError(
        f"version {version} of Delta table {shown} cannot be read: its log entries are gone "
        "(past the log retention)"
    ) from None


def _latest(uri: str) -> int | None:
    import deltalake

    try:
        return int(deltalake.DeltaTable(uri).version())
    except Exception:
        return None


def _target(obj: Any) -> tuple[str, int | None]:
    if type(obj).__name__ == "DeltaTable":
        return str(obj.table_uri), None
    uri, pinned = split_delta_pin(os.fspath(obj))
    path = local_path(uri)
    if path is not None:
        uri = os.path.abspath(path)
    return uri, pinned


def _as_version(version: int | str) -> int:
    text = str(version).strip()
    text = text[1:] if text[:1] in ("v", "V") else text
    if not text.isdigit():
        raise TableInputError(f"a Delta version is a non-negative integer, not {version!r}")
    return int(text)


def _state(table: Any, cache_uri: str | None = None) -> dict[str, Any]:
    """What the log says about the loaded version (files, schema, table id) and the rows
    its deletion vectors delete; kept in the version cache for a local table."""
    state = {
        "table_uri": str(table.table_uri),
        "version": int(table.version()),
        "table_id": str(table.metadata().id),
        "schema": table.schema().to_json(),
        "actions": _add_actions(table),
        "deleted_rows": _deleted_rows(table),
    }
    # In JSON's types (a date partition value as its text, as _framed writes it anyway), so
    # the first fingerprint and one from the remembered state are made from the same values.
    state = json.loads(json.dumps(state, default=str))
    _remember_state(cache_uri or state["table_uri"], state)
    return state


def _entry(
    state: dict[str, Any], name: str, source: str | None, *, use_cache: bool
) -> dict[str, Any]:
    uri, version, table_id = state["table_uri"], state["version"], state["table_id"]
    schema, actions, deleted = state["schema"], state["actions"], state["deleted_rows"]
    root = local_path(uri)
    shown = redact_uri(uri.rstrip("/") if root is None else os.path.abspath(root))
    if root is not None and not is_remote(uri):
        basis = BASIS_FILES
        fingerprint = _content_fingerprint(
            root, actions, schema, deleted, use_cache, f"version {version} of Delta table {shown}"
        )
    else:
        basis = BASIS_LOG
        fingerprint = _log_fingerprint(actions, schema, deleted, version, table_id)
    return {
        "name": name,
        "kind": "delta",
        "uri": shown,
        "version": version,
        "table_id": table_id,
        "fingerprint": fingerprint,
        "basis": basis,
        "basis_detail": BASIS_TEXT[basis],
        "size_bytes": sum(int(a["size_bytes"] or 0) for a in actions),
        "files": len(actions),
        "source": redact_uri(source) if source else shown,
    }


def _add_actions(table: Any) -> list[dict[str, Any]]:
    """One dict per data file of the loaded version: path, size, partition values, DV."""
    import pyarrow as pa

    rows = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    actions = []
    for row in rows:
        partition = {
            k[len("partition.") :]: v for k, v in row.items() if k.startswith("partition.")
        }
        dv = {k: v for k, v in row.items() if k.startswith("deletionVector")}
        actions.append(
            {
                "path": str(row["path"]),
                "size_bytes": row.get("size_bytes"),
                "partition": partition,
                "deletion_vector": dv if any(v is not None for v in dv.values()) else None,
            }
        )
    actions.sort(key=lambda a: a["path"])
    return actions


def _deleted_rows(table: Any) -> dict[str, str]:
    """{file path relative to the table: blake3 of its deleted row indices} for every file
    with a deletion vector ({} when the table cannot have any). delta-rs reads the DV
    files, so one that is gone or unreadable is a TableInputError here."""
    protocol = table.protocol()
    if "deletionVectors" not in (getattr(protocol, "reader_features", None) or []):
        return {}
    import blake3
    import pyarrow as pa
    import pyarrow.compute as pc

    shown = redact_uri(str(table.table_uri).rstrip("/"))
    try:
        vectors = pa.table(table.deletion_vectors())
    except Exception as exc:
        raise TableInputError(
            f"version {table.version()} of Delta table {shown} cannot be read: its deletion "
            f"vectors are unreadable or gone ({_one_line(exc)})"
        ) from None
    prefix = unquote(str(table.table_uri)).rstrip("/") + "/"
    deleted: dict[str, str] = {}
    for path, keep in zip(
        vectors.column("filepath").to_pylist(), vectors.column("selection_vector"), strict=True
    ):
        mask = keep.values if keep.is_valid else pa.array([], pa.bool_())
        rows = pc.indices_nonzero(pc.invert(mask))  # uint64 (little-endian hosts), in order
        hasher = blake3.blake3(len(rows).to_bytes(8, "little"))
        values = rows.buffers()[1]
        if values is not None:
            hasher.update(memoryview(values)[rows.offset * 8 : (rows.offset + len(rows)) * 8])
        relative = unquote(str(path))
        deleted[relative.removeprefix(prefix)] = hasher.hexdigest()
    return dict(sorted(deleted.items()))


def _deleted_parts(deleted: dict[str, str]) -> list[bytes]:
    """Framed only when there are deletion vectors: a table without any keeps its fingerprint."""
    return [f"deleted-rows\0{path}\0{digest}".encode() for path, digest in sorted(deleted.items())]


def _cached_state(uri: str, version: int | None) -> dict[str, Any] | None:
    """The remembered state of a local version, or None (then delta-rs replays the log).

    `_delta_log/` is listed once: the newest commit names the version when none is pinned,
    and the version must still be replayable (every commit since the last checkpoint at or
    below it present); the version's commit file must hash as it did when remembered."""
    root = _cache_root(uri)
    if root is None:
        return None
    log = os.path.join(root, "_delta_log")
    commits: set[int] = set()
    checkpoints: set[int] = set()
    try:
        names = os.listdir(log)
    except OSError:
        return None
    for entry in names:
        match = _LOG_ENTRY.match(entry)
        if match is not None:
            found = int(match.group(1))
            (commits if match.group(2) == "json" else checkpoints).add(found)
    if version is None:
        if not commits or max(checkpoints, default=-1) > max(commits):
            return None
        version = max(commits)
    if version not in commits:
        return None
    base = max((c for c in checkpoints if c <= version), default=-1)
    if any(v not in commits for v in range(base + 1, version)):
        return None
    commit = _commit_digest(root, version)
    try:
        kept = json.loads(_version_cache_file(root, version).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(kept, dict)
        or kept.get("format") != _VERSION_CACHE_FORMAT
        or kept.get("commit") != commit
        or commit is None
    ):
        return None
    state = kept.get("state")
    keys = {"table_uri", "version", "table_id", "schema", "actions", "deleted_rows"}
    if not isinstance(state, dict) or not keys <= state.keys() or state["version"] != version:
        return None
    return state


def _remember_state(uri: str, state: dict[str, Any]) -> None:
    """Keep a local version's state, keyed by its commit file (a cache that cannot be
    written costs time, never the record). A version with deletion vectors is not kept:
    its DV files are read each time, so one that is gone is always caught."""
    root = _cache_root(uri)
    if root is None or state["deleted_rows"]:
        return
    commit = _commit_digest(root, state["version"])
    if commit is None:
        return  # the version is only in a checkpoint: nothing cheap to key it on
    kept = {"format": _VERSION_CACHE_FORMAT, "commit": commit, "state": state}
    target = _version_cache_file(root, state["version"])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(kept))
        os.replace(partial, target)
    except (OSError, ValueError):
        pass


def _cache_root(uri: str) -> str | None:
    path = local_path(uri)
    if path is None or is_remote(uri):
        return None
    return os.path.abspath(path)


def _commit_digest(root: str, version: int) -> str | None:
    import blake3

    try:
        with open(os.path.join(root, "_delta_log", f"{version:020d}.json"), "rb") as commit:
            return blake3.blake3(commit.read()).hexdigest()
    except OSError:
        return None


def _version_cache_file(root: str, version: int) -> Path:
    import blake3

    from repro_common.fingerprints.cache import default_cache_dir

    key = blake3.blake3(f"{root}\0{version}".encode()).hexdigest()[:40]
    return default_cache_dir() / "delta-versions" / f"{key}.json"


def _framed(action: dict[str, Any], digest: bytes | None) -> bytes:
    head = json.dumps(
        [action["path"], action["size_bytes"], action["partition"], action["deletion_vector"]],
        sort_keys=True,
        default=str,
    ).encode()
    return head + (b"\0" + digest if digest is not None else b"")


def _content_fingerprint(
    root: str,
    actions: list[dict[str, Any]],
    schema: str,
    deleted: dict[str, str],
    use_cache: bool,
    shown: str,
) -> str:
    """The fingerprint over the files' content; a file the log names but the disk lacks
    (vacuumed, deleted) is a TableInputError naming the version and the file."""
    from repro_common.fingerprints.files import hash_local_files

    paths = [_file_path(root, a["path"]) for a in actions]
    for path in paths:
        if not os.path.isfile(path):
            raise TableInputError(
                f"{shown} cannot be read: its file "
                f"{os.path.relpath(path, root)} is gone (vacuumed?)"
            )
    digests = hash_local_files(paths, use_cache=use_cache)
    parts = [schema.encode()]
    parts += [_framed(a, d) for a, (d, _size) in zip(actions, digests, strict=True)]
    return content_digest(BASIS_FILES, parts + _deleted_parts(deleted))


def _log_fingerprint(
    actions: list[dict[str, Any]],
    schema: str,
    deleted: dict[str, str],
    version: int,
    table_id: str,
) -> str:
    parts = [schema.encode(), str(version).encode(), table_id.encode()]
    parts += [_framed(a, None) for a in actions]
    return content_digest(BASIS_LOG, parts + _deleted_parts(deleted))


def _file_path(root: str, path: str) -> str:
    if "://" in path:
        found = local_path(path)
        return found if found is not None else path
    return os.path.join(root, unquote(path))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
