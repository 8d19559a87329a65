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
"""

from __future__ import annotations

import json
import os
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
    "values and deletion vector, and the table schema",
    BASIS_LOG: "the version's add actions from the Delta log (path, size, partition values, "
    "deletion vector), the version, table id and schema; the data files were not read",
}


def describe_delta(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    version: int | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The manifest entry for one version of a Delta table (TableInputError when unreadable)."""
    uri, pinned = _target(obj)
    if version is not None:
        wanted: int | None = _as_version(version)
        if pinned is not None and pinned != wanted:
            raise TableInputError(f"{name}: {uri} pinned at v{pinned} but version={version!r}")
    else:
        wanted = pinned
    if wanted is None and type(obj).__name__ == "DeltaTable":
        table = obj  # the version the user's object has loaded, not whatever is newest now
    else:
        table = open_delta(uri, wanted)
    return _entry(table, name, source, use_cache=use_cache)


def reopen_delta(item: dict[str, Any], *, use_cache: bool = True) -> dict[str, Any]:
    """The recorded version described again: TableInputError when it was vacuumed, left
    the log or the table at that URI is another one now."""
    name = str(item.get("name"))
    uri, version = str(item.get("uri")), item.get("version")
    if not isinstance(version, int):
        raise TableInputError(f"the record names no Delta version for {uri}")
    table = open_delta(uri, version)
    table_id = table.metadata().id
    if item.get("table_id") and table_id != item.get("table_id"):
        raise TableInputError(
            f"{uri} is another table now (table id {table_id}, recorded "
            f"{item.get('table_id')}): it was dropped and recreated; v{version} is gone"
        )
    if is_remote(uri):
        _require_remote_files(table, version)
    return _entry(table, name, item.get("source"), use_cache=use_cache)


def _require_remote_files(table: Any, version: int) -> None:
    """Every data file of a remote version must still be in the store (one HEAD each):
    a log-basis fingerprint does not read them, so a vacuum would otherwise go unseen."""
    import pyarrow.fs as pafs

    uri = str(table.table_uri).rstrip("/")
    try:
        store, root = pafs.FileSystem.from_uri(uri)
        actions = _add_actions(table)
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


def _entry(table: Any, name: str, source: str | None, *, use_cache: bool) -> dict[str, Any]:
    uri = str(table.table_uri)
    version = int(table.version())
    table_id = str(table.metadata().id)
    schema = table.schema().to_json()
    actions = _add_actions(table)
    root = local_path(uri)
    shown = redact_uri(uri.rstrip("/") if root is None else os.path.abspath(root))
    if root is not None and not is_remote(uri):
        basis = BASIS_FILES
        fingerprint = _content_fingerprint(
            root, actions, schema, use_cache, f"version {version} of Delta table {shown}"
        )
    else:
        basis = BASIS_LOG
        fingerprint = _log_fingerprint(actions, schema, version, table_id)
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


def _framed(action: dict[str, Any], digest: bytes | None) -> bytes:
    head = json.dumps(
        [action["path"], action["size_bytes"], action["partition"], action["deletion_vector"]],
        sort_keys=True,
        default=str,
    ).encode()
    return head + (b"\0" + digest if digest is not None else b"")


def _content_fingerprint(
    root: str, actions: list[dict[str, Any]], schema: str, use_cache: bool, shown: str
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
    return content_digest(BASIS_FILES, parts)


def _log_fingerprint(
    actions: list[dict[str, Any]], schema: str, version: int, table_id: str
) -> str:
    parts = [schema.encode(), str(version).encode(), table_id.encode()]
    parts += [_framed(a, None) for a in actions]
    return content_digest(BASIS_LOG, parts)


def _file_path(root: str, path: str) -> str:
    if "://" in path:
        found = local_path(path)
        return found if found is not None else path
    return os.path.join(root, unquote(path))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
