"""Lakehouse tables as run inputs: what Delta and Iceberg share, and the one entry point.

A table already keeps every version; the record only has to name the version, prove
it (a fingerprint with a `basis` saying what it covers) and find it again. Each
format lives in its own module (repro_common.fingerprints.delta, .iceberg);
this one recognises a table input, dispatches to its module and holds the pieces
both use. deltalake and pyiceberg are imported only when a table is actually used.

Other versioned sources go through the same dispatch (describe / check for the gate /
reopen for reproduce / change for diff): S3 objects and prefixes
(repro_common.fingerprints.s3_objects: an `s3://` URI is a Delta table only when it holds
`_delta_log/`) and lakeFS references (repro_common.fingerprints.lakefs_refs).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import blake3

TABLE_KINDS = ("delta", "iceberg")
# Every kind recorded by a version its store keeps (an S3 object only in a versioned bucket).
VERSIONED_KINDS = (*TABLE_KINDS, "s3", "lakefs")
EXTRAS = {
    "delta": ("deltalake", "mlrepro[delta]"),
    "iceberg": ("pyiceberg", "mlrepro[iceberg]"),
    "s3": ("boto3", "mlrepro[s3]"),
    "lakefs": ("lakefs", "mlrepro[lakefs]"),
}
# `path@v12`: a Delta version pinned in the string the user gives.
_DELTA_PIN = re.compile(r"^(?P<uri>.+)@v(?P<version>\d+)$")
ICEBERG_PREFIX = "iceberg:"
_REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl")


class TableInputError(ValueError):
    """A table input that cannot be recorded or read back: one line naming the table,
    the version or the extra to install."""


def require(kind: str) -> Any:
    """The format's package, or a TableInputError naming the extra that installs it."""
    module, extra = EXTRAS[kind]
    try:
        return __import__(module)
    except ImportError:
        raise TableInputError(
            f"{kind} tables need the {module} package: pip install '{extra}'"
        ) from None


def split_delta_pin(target: str) -> tuple[str, int | None]:
    """`uri@v12` -> (uri, 12); anything else -> (target, None)."""
    match = _DELTA_PIN.match(target)
    if match is None:
        return target, None
    return match.group("uri"), int(match.group("version"))


def is_remote(uri: str) -> bool:
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return scheme in _REMOTE_SCHEMES


def local_path(uri: str) -> str | None:
    """The local path of a `file://` URI or plain path; None for a remote URI."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    if "://" in uri:
        return None
    return uri


def table_kind(obj: Any) -> str | None:
    """ "delta", "iceberg", "s3" or "lakefs" when `obj` names such an input, else None (cheap:
    one stat, or for an `s3://` URI one listing of its `_delta_log/`)."""
    module = type(obj).__module__
    if module.startswith("deltalake"):
        return "delta" if type(obj).__name__ == "DeltaTable" else None
    if module.startswith("pyiceberg"):
        return "iceberg" if type(obj).__name__ == "Table" else None
    if not isinstance(obj, (str, os.PathLike)):
        return None
    target = os.fspath(obj)
    if not isinstance(target, str):
        return None
    if target.startswith(ICEBERG_PREFIX):
        return "iceberg"
    if target.lower().startswith("lakefs://"):
        return "lakefs"
    uri, pinned = split_delta_pin(target)
    if is_remote(uri) and uri.split("://", 1)[0].lower() in ("s3", "s3a"):
        return _s3_kind(uri, pinned)
    if is_remote(uri):
        return "delta"
    path = local_path(uri)
    if path is not None and os.path.isdir(os.path.join(path, "_delta_log")):
        return "delta"
    if pinned is not None and path is not None and not os.path.exists(target):
        return "delta"  # `folder@v3` of a folder that is not a table: say so, not "no such file"
    return None


def _s3_kind(uri: str, pinned: int | None) -> str:
    """An `s3://` URI: a path through lakeFS's S3 gateway, a Delta table (`@v12`, or a prefix
    holding `_delta_log/`), or else an S3 object or prefix."""
    from repro_common.fingerprints import lakefs_refs, s3_objects

    if lakefs_refs.through_gateway(uri):
        return "lakefs"
    if pinned is not None:
        return "delta"
    holds = s3_objects.holds_delta_log(uri)
    if holds is None:  # the store cannot be asked: without boto3, keep what delta-rs reads
        return "delta" if not _importable("boto3") and _importable("deltalake") else "s3"
    return "delta" if holds else "s3"


def _importable(module: str) -> bool:
    import importlib.util

    return module in sys.modules or importlib.util.find_spec(module) is not None


def describe_table(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    version: int | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The manifest entry for a table input; raises TableInputError (one line) when it can't."""
    kind = table_kind(obj)
    if kind == "delta":
        from repro_common.fingerprints.delta import describe_delta

        return describe_delta(obj, name, source, version=version, use_cache=use_cache)
    if kind == "iceberg":
        from repro_common.fingerprints.iceberg import describe_iceberg

        return describe_iceberg(obj, name, source, version=version, use_cache=use_cache)
    if kind == "s3":
        from repro_common.fingerprints.s3_objects import describe_s3

        return describe_s3(obj, name, source, version=version, use_cache=use_cache)
    if kind == "lakefs":
        from repro_common.fingerprints.lakefs_refs import describe_lakefs

        return describe_lakefs(obj, name, source, version=version)
    raise TableInputError(f"{obj!r} is not a Delta or Iceberg table")


def unreadable_table(name: str, kind: str, reason: str, source: str | None) -> dict[str, Any]:
    """The entry for a table input we could not record: in the record with why, never hidden.
    `source` is what the user gave: it loses user-info and credential parameters."""
    if source:
        from repro_common.redact import redact_url

        source = redact_url(source, keep_user=False)
    return {
        "name": name,
        "kind": kind,
        "fingerprint": None,
        "reason": reason,
        "source": source,
        "table_error": True,
    }


def check_table(item: dict[str, Any], *, use_cache: bool = True) -> str | None:
    """None when the recorded version can still be read and gives the recorded fingerprint;
    else one line naming the table and version and what is wrong. An S3 object or lakeFS
    commit is checked where it lives, without reading its content (a version never changes)."""
    if item.get("kind") == "s3":
        from repro_common.fingerprints.s3_objects import check_s3

        problem = check_s3(item)
        return None if problem is None else f"{item.get('name')}: {problem}"
    if item.get("kind") == "lakefs":
        from repro_common.fingerprints.lakefs_refs import check_lakefs

        return check_lakefs(item)
    try:
        fresh = reopen_table(item, use_cache=use_cache)
    except TableInputError as exc:
        return f"{item.get('name')}: {exc}"
    if fresh["fingerprint"] != item.get("fingerprint"):
        return (
            f"{item.get('name')}: {label(item)} now has fingerprint {fresh['fingerprint']}, "
            f"not the recorded {item.get('fingerprint')}"
        )
    return None


def reopen_table(item: dict[str, Any], *, use_cache: bool = True) -> dict[str, Any]:
    """Describe the recorded version again (TableInputError when it is gone or replaced)."""
    kind = item.get("kind")
    name = str(item.get("name"))
    if kind == "delta":
        from repro_common.fingerprints.delta import reopen_delta

        return reopen_delta(item, use_cache=use_cache)
    if kind == "iceberg":
        from repro_common.fingerprints.iceberg import reopen_iceberg

        return reopen_iceberg(item, use_cache=use_cache)
    if kind == "s3":
        from repro_common.fingerprints.s3_objects import reopen_s3

        return reopen_s3(item, use_cache=use_cache)
    if kind == "lakefs":
        from repro_common.fingerprints.lakefs_refs import reopen_lakefs

        return reopen_lakefs(item)
    raise TableInputError(f"{name}: kind {kind!r} is not a table")


def label(item: dict[str, Any]) -> str:
    """`delta s3://bucket/events @ v12` / `iceberg local.db.events @ 4437…`."""
    if item.get("kind") == "delta":
        return f"delta {item.get('uri')} @ v{item.get('version')}"
    if item.get("kind") == "s3":
        from repro_common.fingerprints.s3_objects import s3_label

        return s3_label(item)
    if item.get("kind") == "lakefs":
        from repro_common.fingerprints.lakefs_refs import lakefs_label

        return lakefs_label(item)
    return f"iceberg {item.get('catalog')}.{item.get('table')} @ {item.get('snapshot_id')}"


def change(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """How one table input moved between two records: "v12 → v15 (3 commits)"; None if it
    did not move or the two are not the same kind of table."""
    if a.get("kind") != b.get("kind") or a.get("kind") not in VERSIONED_KINDS:
        return None
    if a.get("kind") == "s3":
        from repro_common.fingerprints.s3_objects import s3_change

        return s3_change(a, b)
    if a.get("kind") == "lakefs":
        from repro_common.fingerprints.lakefs_refs import lakefs_change

        return lakefs_change(a, b)
    if a.get("kind") == "delta":
        va, vb = a.get("version"), b.get("version")
        if va == vb and a.get("table_id") == b.get("table_id"):
            return None
        text = f"v{va} → v{vb}"
        if a.get("table_id") != b.get("table_id"):
            return text + " (a different table: its id changed)"
        if isinstance(va, int) and isinstance(vb, int):
            n = abs(vb - va)
            text += f" ({n} commit{'s' if n != 1 else ''}{' back' if vb < va else ''})"
        return text
    sa, sb = a.get("snapshot_id"), b.get("snapshot_id")
    if sa == sb and a.get("uuid") == b.get("uuid"):
        return None
    text = f"snapshot {sa} → {sb}"
    if a.get("uuid") != b.get("uuid"):
        text += " (a different table: its uuid changed)"
    return text


def pinned_by_version(item: dict[str, Any]) -> bool:
    """Whether the input is retrievable by the version its store keeps (a table version, an
    S3 object version, a lakeFS commit), so it needs no copy; an S3 object in a bucket without
    versioning is not (see unversioned_reason)."""
    if item.get("kind") == "s3":
        return item.get("versioned") is not False
    return item.get("kind") in VERSIONED_KINDS


def unversioned_reason(item: dict[str, Any]) -> str | None:
    """The gate's line for an input only a snapshot could make immutable (None: not such)."""
    if item.get("kind") != "s3":
        return None
    from repro_common.fingerprints.s3_objects import unversioned_reason as reason

    return reason(item)


def recorded_version(item: dict[str, Any]) -> str | None:
    """The version a rerun reads for this input: Delta version, Iceberg snapshot, S3 object
    VersionId, lakeFS commit (None when there is no single one, e.g. an S3 prefix)."""
    kind = item.get("kind")
    if kind == "delta" and isinstance(item.get("version"), int):
        return str(item["version"])
    value = {"iceberg": "snapshot_id", "s3": "version_id", "lakefs": "commit"}.get(str(kind))
    found = item.get(value) if value else None
    return str(found) if isinstance(found, str) and found else None


def data_version(name: str) -> str | None:
    """The version `mlrepro reproduce` pinned for input `name` (None outside a rerun).

    A script that opens its own table reads the recorded version with
    `DeltaTable(uri, version=int(data_version("events")))`; an S3 object with
    `get_object(..., VersionId=data_version("train"))`; a lakeFS path at
    `lakefs://repo/{data_version("train")}/path`.
    """
    return os.environ.get(version_variable(name))


def version_variable(name: str) -> str:
    """`MLREPRO_DATA_<NAME>_VERSION`, the name upper-cased, other characters as `_`."""
    return "MLREPRO_DATA_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_VERSION"


def content_digest(tag: str, parts: list[bytes]) -> str:
    """blake3 over framed parts (length-prefixed, so no two lists collide)."""
    hasher = blake3.blake3(tag.encode())
    for part in parts:
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return "blake3:" + hasher.hexdigest()


def loaded(kind: str) -> bool:
    """Whether the format's package is already imported (nothing to do otherwise)."""
    return EXTRAS[kind][0] in sys.modules
