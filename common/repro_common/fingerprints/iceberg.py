"""Apache Iceberg tables as run inputs, through pyiceberg.

The record holds the catalog name, the table identifier, the snapshot id as a string
(a 64-bit id loses precision as a JSON number in other tools), the table uuid (a
table dropped and recreated under the same name is another table) and a fingerprint
whose `basis` says what it covers:

- warehouse on local disk: the content of every data and delete file of the
  snapshot (through the file cache), with its path, and the table schema;
- remote warehouse: the snapshot's file list (path, size, record count, delete
  files), the snapshot id, uuid and schema; the files are not read, and the basis
  says so.

A catalog is found again by its name the way pyiceberg finds it (`~/.pyiceberg.yaml`
or `PYICEBERG_CATALOG__<NAME>__URI` and friends), so `mlrepro` commands can reopen
the table; as a string an input is `iceberg:<catalog>.<namespace>.<table>[@<snapshot>]`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from repro_common.redact import redact_uri
from repro_common.table_inputs import (
    ICEBERG_PREFIX,
    TableInputError,
    content_digest,
    local_path,
    require,
)

BASIS_FILES = "iceberg-files/1"
BASIS_MANIFEST = "iceberg-manifest/1"
BASIS_TEXT = {
    BASIS_FILES: "content of every data and delete file of the snapshot (blake3), with its "
    "path, and the table schema",
    BASIS_MANIFEST: "the snapshot's file list (path, size, record count, delete files), the "
    "snapshot id, table uuid and schema; the data files were not read",
}


def describe_iceberg(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    version: int | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The manifest entry for one snapshot of an Iceberg table (TableInputError when unreadable)."""
    require("iceberg")
    if isinstance(obj, (str, os.PathLike)):
        catalog, identifier, pinned = parse_iceberg(os.fspath(obj))
        table = load_table(catalog, identifier)
        if version is None:
            version = pinned
    else:
        table = obj
    return _entry(table, name, source, _snapshot_id(table, version), use_cache=use_cache)


def reopen_iceberg(item: dict[str, Any], *, use_cache: bool = True) -> dict[str, Any]:
    """The recorded snapshot described again: TableInputError when it expired, its files
    are gone or the table under that name is another one now."""
    name = str(item.get("name"))
    table = load_table(str(item.get("catalog")), str(item.get("table")))
    uuid = str(table.metadata.table_uuid)
    if item.get("uuid") and uuid != item.get("uuid"):
        raise TableInputError(
            f"{item.get('catalog')}.{item.get('table')} is another table now (uuid "
            f"{uuid}, recorded {item.get('uuid')}): snapshot {item.get('snapshot_id')} is gone"
        )
    snapshot = _snapshot_id(table, item.get("snapshot_id"))
    remote = [f for f in _files(table, snapshot) if local_path(f["path"]) is None]
    if remote:
        _require_remote_files(table, remote, f"{item.get('catalog')}.{item.get('table')}", snapshot)
    return _entry(table, name, item.get("source"), snapshot, use_cache=use_cache)


def _require_remote_files(
    table: Any, files: list[dict[str, Any]], shown: str, snapshot_id: int
) -> None:
    """Every remote data and delete file of the snapshot must still be in its store: a
    manifest-basis fingerprint does not read them, so an expiry or orphan-file cleanup
    would otherwise go unseen. The store is reached through the table's own FileIO (the
    catalog's endpoint and credentials): with pyarrow's, one batched listing call per
    bucket; with another FileIO, its exists() per file."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = table.io
    try:
        if isinstance(io, PyArrowFileIO):
            missing = _missing_through_pyarrow(io, [f["path"] for f in files])
        else:
            missing = [f["path"] for f in files if not io.new_input(f["path"]).exists()]
    except Exception as exc:
        raise TableInputError(
            f"cannot check the files of snapshot {snapshot_id} of Iceberg table {shown}: "
            f"{_one_line(exc)}"
        ) from None
    if missing:
        raise TableInputError(
            f"Iceberg table {shown} @ {snapshot_id} cannot be read: its file "
            f"{redact_uri(missing[0])} is gone"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )


def _missing_through_pyarrow(io: Any, locations: list[str]) -> list[str]:
    """The locations the pyarrow filesystems of `io` do not find, in the order given."""
    import pyarrow.fs as pafs

    by_store: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for location in locations:
        scheme, netloc, path = io.parse_location(location, io.properties)
        by_store.setdefault((scheme, netloc), []).append((location, path))
    gone = set()
    for (scheme, netloc), wanted in by_store.items():
        store = io.fs_by_scheme(scheme, netloc)
        infos = store.get_file_info([path for _location, path in wanted])
        gone |= {
            location
            for (location, _path), info in zip(wanted, infos, strict=True)
            if info.type == pafs.FileType.NotFound
        }
    return [location for location in locations if location in gone]


def parse_iceberg(target: str) -> tuple[str, str, str | None]:
    """`iceberg:local.db.events@123` -> ("local", "db.events", "123")."""
    body = target[len(ICEBERG_PREFIX) :] if target.startswith(ICEBERG_PREFIX) else target
    body, _, snapshot = body.partition("@")
    catalog, _, identifier = body.partition(".")
    if not catalog or "." not in identifier:
        raise TableInputError(
            f"{target!r} does not name an Iceberg table: write iceberg:<catalog>.<namespace>.<table>"
        )
    return catalog, identifier, snapshot or None


def load_table(catalog_name: str, identifier: str) -> Any:
    """The table from the catalog pyiceberg's configuration names (one line when it can't)."""
    require("iceberg")
    from pyiceberg.catalog import load_catalog

    try:
        catalog = load_catalog(catalog_name, **_env_properties(catalog_name))
    except Exception as exc:
        raise TableInputError(
            f"cannot open Iceberg catalog {catalog_name!r}: {_one_line(exc)} (configure it in "
            f"~/.pyiceberg.yaml or PYICEBERG_CATALOG__{catalog_name.upper()}__URI)"
        ) from None
    try:
        return catalog.load_table(identifier)
    except Exception as exc:
        raise TableInputError(
            f"Iceberg table {catalog_name}.{identifier} cannot be loaded: {_one_line(exc)}"
        ) from None


def _env_properties(catalog_name: str) -> dict[str, str]:
    """`PYICEBERG_CATALOG__<NAME>__<KEY>` read now (pyiceberg reads them once, at import)."""
    prefix = f"PYICEBERG_CATALOG__{catalog_name.upper()}__"
    return {
        key[len(prefix) :].lower().replace("__", "."): value
        for key, value in os.environ.items()
        if key.startswith(prefix)
    }


def _snapshot_id(table: Any, version: int | str | None) -> int:
    shown = ".".join(table.name())
    if version is None:
        snapshot = table.current_snapshot()
        if snapshot is None:
            raise TableInputError(f"Iceberg table {shown} has no snapshot yet (nothing written)")
        return int(snapshot.snapshot_id)
    text = str(version).strip()
    if not text.lstrip("-").isdigit():
        raise TableInputError(f"an Iceberg snapshot id is an integer, not {version!r}")
    if table.snapshot_by_id(int(text)) is None:
        raise TableInputError(
            f"snapshot {text} of Iceberg table {shown} does not exist (expired or never written)"
        )
    return int(text)


def _entry(
    table: Any, name: str, source: str | None, snapshot_id: int, *, use_cache: bool
) -> dict[str, Any]:
    catalog = str(table.catalog.name)
    identifier = ".".join(table.name())
    uuid = str(table.metadata.table_uuid)
    schema = _schema_of(table, snapshot_id).model_dump_json()
    files = _files(table, snapshot_id)
    local = [local_path(f["path"]) for f in files]
    shown = f"{catalog}.{identifier} @ {snapshot_id}"
    if files and all(p is not None for p in local):
        basis = BASIS_FILES
        digests = _hash(files, [p for p in local if p is not None], use_cache, shown)
        parts = [schema.encode()] + [
            json.dumps([f["path"], f["content"]]).encode() + b"\0" + d
            for f, d in zip(files, digests, strict=True)
        ]
    else:
        basis = BASIS_MANIFEST
        parts = [schema.encode(), str(snapshot_id).encode(), uuid.encode()]
        parts += [json.dumps(f, sort_keys=True).encode() for f in files]
    return {
        "name": name,
        "kind": "iceberg",
        "catalog": catalog,
        "table": identifier,
        "snapshot_id": str(snapshot_id),
        "uuid": uuid,
        "fingerprint": content_digest(basis, parts),
        "basis": basis,
        "basis_detail": BASIS_TEXT[basis],
        "size_bytes": sum(int(f["size"]) for f in files),
        "files": len(files),
        "source": redact_uri(source) if source else f"iceberg:{catalog}.{identifier}@{snapshot_id}",
    }


def _schema_of(table: Any, snapshot_id: int) -> Any:
    """The schema the snapshot was written with (the table's may have evolved since)."""
    snapshot = table.snapshot_by_id(snapshot_id)
    schema_id = getattr(snapshot, "schema_id", None)
    return table.schemas().get(schema_id) or table.schema()


def _files(table: Any, snapshot_id: int) -> list[dict[str, Any]]:
    """Every data and delete file of the snapshot, sorted by path.

    A snapshot never changes, so its file list is kept in the mlrepro cache folder under
    (table uuid, snapshot id): planning a scan reads every manifest (about 1.5 ms each),
    which would dominate re-fingerprinting an unchanged version.
    """
    from repro_common.fingerprints.cache import default_cache_dir

    uuid = str(table.metadata.table_uuid)
    cached = default_cache_dir() / "iceberg-snapshots" / f"{uuid}-{snapshot_id}.json"
    try:
        listed = json.loads(cached.read_text())
        keys = {"path", "size", "records", "content"}
        if isinstance(listed, list) and all(
            isinstance(f, dict) and keys <= f.keys() for f in listed
        ):
            return listed
    except (OSError, ValueError):
        pass
    files = _planned_files(table, snapshot_id)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(files))
        os.replace(partial, cached)
    except OSError:
        pass  # a cache that cannot be written costs time, never the record
    return files


def _planned_files(table: Any, snapshot_id: int) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for task in table.scan(snapshot_id=snapshot_id).plan_files():
        for data_file in (task.file, *task.delete_files):
            found[str(data_file.file_path)] = {
                "path": str(data_file.file_path),
                "size": int(data_file.file_size_in_bytes),
                "records": int(data_file.record_count),
                "content": str(getattr(data_file.content, "name", data_file.content)),
            }
    return [found[p] for p in sorted(found)]


def _hash(
    files: list[dict[str, Any]], paths: list[str], use_cache: bool, shown: str
) -> list[bytes]:
    from repro_common.fingerprints.files import hash_local_files

    for f, path in zip(files, paths, strict=True):
        if not os.path.isfile(path):
            raise TableInputError(
                f"Iceberg table {shown} cannot be read: its file {f['path']} is gone"
            )
    return [digest for digest, _size in hash_local_files(paths, use_cache=use_cache)]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
