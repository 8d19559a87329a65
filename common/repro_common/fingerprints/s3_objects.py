"""S3 objects and prefixes as run inputs (`s3://bucket/key`, `s3://bucket/prefix/`), via boto3.

The record names the object (a canonical `s3://bucket/key`: no credentials, no query), its
VersionId where the bucket keeps versions and its ETag, and a blake3 fingerprint of the
content, read as a stream in CHUNK-sized pieces so memory stays flat whatever the size. The
fingerprint is the one a copy on disk gets: an object like a file, a prefix like a folder
(relative keys, sizes and object digests), so a snapshot or a download checks against it.

Unchanged objects are not read again: a digest is cached under the endpoint, URI and
VersionId (immutable), or ETag + size + last-modified where the bucket has no versions.

A VersionId makes the link immutable while that version exists. An object in an
unversioned bucket can be overwritten in place: it is retrievable only through a snapshot
(`mlrepro promote` copies it within the snapshot limit), and the gate says so.

Client settings come from the usual AWS variables; the endpoint from `AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL` or MLflow's `MLFLOW_S3_ENDPOINT_URL`.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import blake3

from repro_common.redact import redact_url
from repro_common.table_inputs import TableInputError

SCHEMES = ("s3", "s3a")
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
# Bytes read and hashed at a time: the only buffer an object of any size needs.
CHUNK = 4 << 20
# Objects of a prefix read at once (each holds at most one CHUNK).
PREFIX_WORKERS = 8
BASIS = "s3-content/1"
BASIS_TEXT = (
    "content of every object (blake3, streamed): an object like a file, a prefix like a "
    "folder (relative keys, sizes and object digests); each object's VersionId and ETag recorded"
)
# The cache's key layout (fingerprints.cache stat keys): only the size is meaningful here,
# the object's identity is in the cached path; mtime 0 keeps it out of the racy window
# (an S3 object never changes under the same VersionId or ETag).
_CACHE_KEY = struct.Struct("<3Qqq")


@dataclass(frozen=True)
class S3Location:
    """A parsed `s3://bucket/key` (a prefix when the key is empty or ends with `/`)."""

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True)
class S3Object:
    """One object as listed or HEADed: what identifies its content without reading it."""

    key: str
    size: int
    etag: str
    version_id: str | None
    last_modified: str


def is_s3_uri(target: str) -> bool:
    return target.split("://", 1)[0].lower() in SCHEMES if "://" in target else False


def parse_s3_uri(uri: str) -> S3Location:
    """`s3://[user:secret@]bucket/key[?versionId=...]` -> S3Location (user-info dropped)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES:
        raise TableInputError(f"{redact_url(uri)} is not an s3:// URI")
    bucket = parts.netloc.rpartition("@")[2]
    if not bucket:
        raise TableInputError(f"{redact_url(uri)} names no bucket (s3://bucket/key)")
    version = parse_qs(parts.query).get("versionId", [None])[0]
    return S3Location(bucket, parts.path.lstrip("/"), version or None)


def endpoint_url() -> str | None:
    for variable in ENDPOINT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def s3_client() -> Any:
    """A boto3 S3 client for the current environment (one per process and settings)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise TableInputError(
            "S3 inputs need the boto3 package: pip install 'mlrepro[s3]'"
        ) from None
    endpoint = endpoint_url()
    settings = (
        os.getpid(),
        endpoint,
        *(
            os.environ.get(v)
            for v in (
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_PROFILE",
                "AWS_DEFAULT_REGION",
                "AWS_REGION",
            )
        ),
    )
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            config = Config(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
            _clients.clear()  # settings changed: the old client is stale
            _clients[settings] = client
    return client


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _failure(exc: Exception, uri: str, version_id: str | None = None) -> TableInputError:
    """One line for a failed S3 call: what was asked, and which of the usual causes it is."""
    import botocore.exceptions as bce

    where = f"version {version_id} of {uri}" if version_id else uri
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return TableInputError(
            f"no AWS credentials to read {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE)"
        )
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectTimeoutError)):
        endpoint = redact_url(endpoint_url() or "the AWS S3 endpoint", keep_user=False)
        return TableInputError(f"cannot reach {endpoint} to read {uri}: {_one_line(exc)}")
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return TableInputError(f"{uri}: bucket {parse_s3_uri(uri).bucket} does not exist")
        if code in ("NoSuchVersion", "InvalidArgument") and version_id:
            return TableInputError(f"{where} is gone (the version was deleted)")
        if code in ("NoSuchKey", "404", "NotFound"):
            if version_id:
                return TableInputError(f"{where} is gone (the version was deleted)")
            return TableInputError(f"{uri}: no such object")
        if code in ("PreconditionFailed", "412"):
            return TableInputError(f"{uri} was overwritten while it was read")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return TableInputError(f"the AWS credentials were refused reading {uri} ({code})")
        if code in ("AccessDenied", "403") or status == 403:
            return TableInputError(f"access denied reading {uri}")
        return TableInputError(f"cannot read {where}: {code or status}: {_one_line(exc)}")
    if isinstance(exc, bce.BotoCoreError):
        return TableInputError(f"cannot read {where}: {_one_line(exc)}")
    return TableInputError(f"cannot read {where}: {type(exc).__name__}: {_one_line(exc)}")


def _version(raw: Any) -> str | None:
    """S3 says "null" for an object written while versioning was off: no version to pin."""
    return str(raw) if raw and raw != "null" else None


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def head(client: Any, loc: S3Location) -> S3Object:
    """The object's identity, without reading it (one HEAD)."""
    kwargs = {"Bucket": loc.bucket, "Key": loc.key}
    if loc.version_id:
        kwargs["VersionId"] = loc.version_id
    try:
        found = client.head_object(**kwargs)
    except Exception as exc:
        raise _failure(exc, loc.uri, loc.version_id) from None
    return S3Object(
        loc.key,
        int(found["ContentLength"]),
        str(found.get("ETag", "")).strip('"'),
        _version(found.get("VersionId")),
        _iso(found.get("LastModified")),
    )


def list_prefix(client: Any, loc: S3Location, *, every_version: bool = False) -> list[S3Object]:
    """The objects under a prefix with their version ids (their newest versions, or with
    `every_version` all of them); folder markers (`key/`, empty) left out."""
    found: list[S3Object] = []
    try:
        pages = client.get_paginator("list_object_versions").paginate(
            Bucket=loc.bucket, Prefix=loc.key
        )
        for page in pages:
            for v in page.get("Versions", []):
                if not (every_version or v.get("IsLatest")) or v["Key"].endswith("/"):
                    continue
                found.append(
                    S3Object(
                        v["Key"],
                        int(v["Size"]),
                        str(v.get("ETag", "")).strip('"'),
                        _version(v.get("VersionId")),
                        _iso(v.get("LastModified")),
                    )
                )
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code not in ("AccessDenied", "NotImplemented"):
            raise _failure(exc, loc.uri) from None
        return _list_current(client, loc)  # no right to list versions: none are recorded
    return sorted(found, key=lambda o: o.key)


def _list_current(client: Any, loc: S3Location) -> list[S3Object]:
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=loc.bucket, Prefix=loc.key
        ):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):
                    found.append(
                        S3Object(
                            o["Key"],
                            int(o["Size"]),
                            str(o.get("ETag", "")).strip('"'),
                            None,
                            _iso(o.get("LastModified")),
                        )
                    )
    except Exception as exc:
        raise _failure(exc, loc.uri) from None
    return sorted(found, key=lambda o: o.key)


def holds_delta_log(uri: str) -> bool | None:
    """Whether `uri` is a prefix holding `_delta_log/` (a Delta table); None when the store
    cannot be asked (boto3 missing, endpoint down, no credentials)."""
    try:
        loc = parse_s3_uri(uri)
        client = s3_client()
        key = loc.key.rstrip("/") + "/_delta_log/" if loc.key.strip("/") else "_delta_log/"
        listed = client.list_objects_v2(Bucket=loc.bucket, Prefix=key, MaxKeys=1)
    except Exception:
        return None
    return bool(listed.get("KeyCount") or listed.get("Contents"))


# ---------------------------------------------------------------- content digests


def _cache_path(bucket: str, obj: S3Object) -> bytes:
    identity = (
        f"v\0{obj.version_id}"
        if obj.version_id
        else f"e\0{obj.etag}\0{obj.size}\0{obj.last_modified}"
    )
    return f"s3\0{endpoint_url() or ''}\0{bucket}/{obj.key}\0{identity}".encode()


def object_digest(client: Any, bucket: str, obj: S3Object, *, use_cache: bool = True) -> bytes:
    """The blake3 digest of one object's content: from the cache when this version (or, in an
    unversioned bucket, this ETag, size and date) was read before, else streamed from S3."""
    from repro_common.fingerprints.cache import open_cache

    cache = open_cache(use_cache)
    path = _cache_path(bucket, obj)
    if cache is not None:
        hit = cache.lookup(path)
        if hit is not None and hit[0] == _CACHE_KEY.pack(0, 0, obj.size, 0, 0):
            return hit[1]
    digest = _stream_digest(client, bucket, obj)
    if cache is not None:
        cache.store([(path, _CACHE_KEY.pack(0, 0, obj.size, 0, 0), digest)])
    return digest


def _stream_digest(client: Any, bucket: str, obj: S3Object) -> bytes:
    """Read the object in CHUNK pieces: memory stays flat whatever its size. The exact version
    is asked for (VersionId, or the listed ETag), so a concurrent overwrite is an error."""
    uri = f"s3://{bucket}/{obj.key}"
    kwargs = {"Bucket": bucket, "Key": obj.key}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    elif obj.etag:
        kwargs["IfMatch"] = f'"{obj.etag}"'
    hasher = blake3.blake3()
    read = 0
    try:
        body = client.get_object(**kwargs)["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                hasher.update(chunk)
                read += len(chunk)
        finally:
            body.close()
    except Exception as exc:
        raise _failure(exc, uri, obj.version_id) from None
    if read != obj.size:
        raise TableInputError(f"{uri}: read {read} bytes, the store listed {obj.size}")
    return hasher.digest()


# ---------------------------------------------------------------- record entries


def describe_s3(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    version: int | str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """The manifest entry for an S3 object or prefix (TableInputError, one line, when it can't)."""
    loc = parse_s3_uri(os.fspath(obj))
    if version is not None:
        if loc.is_prefix:
            raise TableInputError(f"{name}: {loc.uri} is a prefix: it has no single version")
        loc = replace(loc, version_id=str(version))
    client = s3_client()
    shown = redact_url(source, keep_user=False) if source else None
    if loc.is_prefix:
        return _prefix_entry(client, loc, name, shown, use_cache)
    try:
        found = head(client, loc)
    except TableInputError as missing:
        if loc.version_id:
            raise
        folder = replace(loc, key=loc.key + "/")  # a "folder" named without its /
        try:
            objects = list_prefix(client, folder)
        except TableInputError as exc:
            raise TableInputError(str(exc).replace(folder.uri, loc.uri)) from None
        if not objects:
            raise missing from None
        return _prefix_entry(client, folder, name, shown, use_cache, objects)
    return _object_entry(client, loc, found, name, shown, use_cache)


def _object_entry(
    client: Any, loc: S3Location, found: S3Object, name: str, source: str | None, use_cache: bool
) -> dict[str, Any]:
    digest = object_digest(client, loc.bucket, found, use_cache=use_cache)
    uri = S3Location(loc.bucket, loc.key).uri
    return {
        "name": name,
        "kind": "s3",
        "layout": "object",
        "uri": uri,
        "version_id": found.version_id,
        "etag": found.etag,
        "versioned": found.version_id is not None,
        "last_modified": found.last_modified,
        "fingerprint": "blake3:" + digest.hex(),
        "basis": BASIS,
        "basis_detail": BASIS_TEXT,
        "size_bytes": found.size,
        "files": 1,
        "source": source or uri,
    }


def _prefix_entry(
    client: Any,
    loc: S3Location,
    name: str,
    source: str | None,
    use_cache: bool,
    objects: list[S3Object] | None = None,
) -> dict[str, Any]:
    from repro_common.fingerprints.files import folder_fingerprint

    objects = list_prefix(client, loc) if objects is None else objects
    if not objects:
        raise TableInputError(f"{loc.uri}: no such object, and no objects under that prefix")
    start = len(loc.key)

    def digest(o: S3Object) -> bytes:
        return object_digest(client, loc.bucket, o, use_cache=use_cache)

    if len(objects) == 1:
        digests = [digest(objects[0])]
    else:  # many small objects: latency, not bandwidth, is the cost (boto3 clients are thread-safe)
        with ThreadPoolExecutor(max_workers=min(PREFIX_WORKERS, len(objects))) as pool:
            digests = list(pool.map(digest, objects))
    entries = [(o.key[start:].encode(), o.size, d) for o, d in zip(objects, digests, strict=True)]
    return {
        "name": name,
        "kind": "s3",
        "layout": "prefix",
        "uri": loc.uri,
        "versioned": all(o.version_id for o in objects),
        "objects": [
            {
                "key": o.key[start:],
                "version_id": o.version_id,
                "etag": o.etag,
                "size_bytes": o.size,
            }
            for o in objects
        ],
        "fingerprint": folder_fingerprint(entries),
        "basis": BASIS,
        "basis_detail": BASIS_TEXT,
        "size_bytes": sum(o.size for o in objects),
        "files": len(objects),
        "source": source or loc.uri,
    }


def recorded_objects(item: dict[str, Any]) -> tuple[S3Location, list[dict[str, Any]]]:
    """The recorded location and objects (one for an object), validated: a record is untrusted."""
    loc = parse_s3_uri(str(item.get("uri") or ""))
    if item.get("layout") == "prefix":
        if not loc.is_prefix:
            raise TableInputError(f"the record's prefix {loc.uri} does not end with /")
        objects = item.get("objects")
        if not isinstance(objects, list) or not objects:
            raise TableInputError(f"the record lists no objects under {loc.uri}")
        return loc, [o for o in objects if isinstance(o, dict)]
    return loc, [
        {
            "key": "",
            "version_id": item.get("version_id"),
            "etag": item.get("etag"),
            "size_bytes": item.get("size_bytes"),
        }
    ]


def current_objects(client: Any, loc: S3Location, recorded: list[dict[str, Any]]) -> list[S3Object]:
    """The recorded objects as the store has them now: each version by its id (every version
    must still exist); without versions, the current object, which must be the recorded one."""
    if loc.is_prefix:
        listed = list_prefix(client, loc, every_version=True)
        by_version = {(o.key, o.version_id): o for o in listed}
        current = {o.key: o for o in listed if o.version_id is None}
    found = []
    for rec in recorded:
        key = loc.key + str(rec.get("key") or "")
        uri = f"s3://{loc.bucket}/{key}"
        vid = rec.get("version_id")
        if loc.is_prefix:
            now = by_version.get((key, vid)) if vid else current.get(key)
            if now is None:
                raise TableInputError(
                    f"version {vid} of {uri} is gone (the version was deleted)"
                    if vid
                    else f"{uri} is gone (deleted from an unversioned bucket)"
                )
        else:
            now = head(client, S3Location(loc.bucket, key, str(vid) if vid else None))
        if rec.get("etag") and now.etag != rec.get("etag"):
            raise TableInputError(
                f"{uri} was overwritten since the run (ETag {now.etag}, recorded {rec.get('etag')})"
                + ("" if vid else ": the bucket keeps no versions, so the recorded content is gone")
            )
        found.append(now)
    return found


def check_s3(item: dict[str, Any]) -> str | None:
    """None while every recorded object version can still be fetched (HEAD or one listing, no
    download: a VersionId never changes content); else one line saying what is gone."""
    try:
        loc, recorded = recorded_objects(item)
        current_objects(s3_client(), loc, recorded)
    except TableInputError as exc:
        return str(exc)
    return None


def reopen_s3(item: dict[str, Any], *, use_cache: bool = True) -> dict[str, Any]:
    """The recorded objects described again, each by its recorded version (TableInputError when
    one is gone or was overwritten): for reproduce, whose fingerprint must match the record."""
    loc, recorded = recorded_objects(item)
    client = s3_client()
    objects = current_objects(client, loc, recorded)
    name, source = str(item.get("name")), item.get("source")
    if loc.is_prefix:
        return _prefix_entry(client, loc, name, source, use_cache, objects)
    return _object_entry(client, loc, objects[0], name, source, use_cache)


def unversioned_reason(item: dict[str, Any]) -> str:
    """The gate's line for an object of an unversioned bucket that has no snapshot."""
    return (
        f"{item.get('name')!r} ({item.get('uri')}) is in an S3 bucket without versioning, so "
        "it is not immutable (an overwrite replaces it): snapshot it with `mlrepro promote` "
        "(copied within MLREPRO_SNAPSHOT_LIMIT_MB) or turn on versioning for the bucket"
    )


def download_object(client: Any, bucket: str, obj: S3Object, local: Path) -> None:
    kwargs = {"Bucket": bucket, "Key": obj.key}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    elif obj.etag:
        kwargs["IfMatch"] = f'"{obj.etag}"'
    try:
        body = client.get_object(**kwargs)["Body"]
        try:
            with open(local, "wb") as handle:
                for chunk in body.iter_chunks(CHUNK):
                    handle.write(chunk)
        finally:
            body.close()
    except Exception as exc:
        raise _failure(exc, f"s3://{bucket}/{obj.key}", obj.version_id) from None


# ---------------------------------------------------------------- show and diff


def s3_label(item: dict[str, Any]) -> str:
    """`s3 s3://bucket/key @ version 3HL4…` / `s3 s3://bucket/prefix/ (12 objects, versioned)`."""
    uri = item.get("uri")
    if item.get("layout") == "prefix":
        kept = "versioned" if item.get("versioned") else "bucket without versioning"
        count = len(item.get("objects") or [])
        return f"s3 {uri} ({count} object{'' if count == 1 else 's'}, {kept})"
    if item.get("version_id"):
        return f"s3 {uri} @ version {item.get('version_id')}"
    return f"s3 {uri} (bucket without versioning, ETag {item.get('etag')})"


def s3_change(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """How an S3 input moved between two records, as `before → after`; None if it did not."""
    if a.get("uri") != b.get("uri"):
        return f"{a.get('uri')} → {b.get('uri')}"
    if a.get("layout") == "prefix" or b.get("layout") == "prefix":
        return _prefix_change(a, b)
    if a.get("version_id") or b.get("version_id"):
        if a.get("version_id") == b.get("version_id"):
            return None
        return f"version {a.get('version_id')} → version {b.get('version_id')}"
    if a.get("etag") == b.get("etag") and a.get("fingerprint") == b.get("fingerprint"):
        return None
    return f"ETag {a.get('etag')} → ETag {b.get('etag')} (overwritten in place)"


def _prefix_change(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    def objects(item: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {
            str(o.get("key")): (o.get("version_id"), o.get("etag"))
            for o in item.get("objects") or []
            if isinstance(o, dict)
        }

    before, after = objects(a), objects(b)
    added = len(after.keys() - before.keys())
    removed = len(before.keys() - after.keys())
    changed = sum(1 for k in before.keys() & after.keys() if before[k] != after[k])
    if not (added or removed or changed):
        return None
    parts = [
        f"{n} {what}"
        for n, what in ((changed, "changed"), (added, "added"), (removed, "removed"))
        if n
    ]
    return f"{len(before)} objects → {len(after)} objects ({', '.join(parts)})"
