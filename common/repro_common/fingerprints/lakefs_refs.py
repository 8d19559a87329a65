"""lakeFS references as run inputs: `lakefs://repo/ref/path`, and the same path read through
lakeFS's S3 gateway (`s3://repo/ref/path` where the S3 endpoint is the lakeFS server).

A lakeFS commit is immutable, so the record names the repository, the **commit id** and the
path. A reference already pinned to a commit (a full 64-hex commit id) is recorded as is,
with no server needed; a branch or tag moves, so it is resolved to its commit id through the
`lakefs` SDK when the input is tracked, and the record keeps both. A reference that could not
be resolved is recorded without a commit, and the production gate fails it: a branch is not
a version.

The fingerprint's basis is the reference itself (repository, commit, path): the content is
not read, and the basis says so. The server is configured by `LAKEFS_ENDPOINT` (with
`LAKEFS_ACCESS_KEY_ID` / `LAKEFS_SECRET_ACCESS_KEY`) or lakectl's own configuration
(`LAKECTL_SERVER_ENDPOINT_URL`, `~/.lakectl.yaml`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from repro_common.redact import redact_url
from repro_common.table_inputs import TableInputError, content_digest

COMMIT_ID = re.compile(r"^[0-9a-f]{64}$")
BASIS = "lakefs-commit/1"
BASIS_TEXT = (
    "the repository, commit id and path: a lakeFS commit is immutable; the content was not read"
)
ENDPOINT_VARIABLES = ("LAKEFS_ENDPOINT", "LAKECTL_SERVER_ENDPOINT_URL")


@dataclass(frozen=True)
class LakeFSRef:
    repository: str
    ref: str
    path: str

    @property
    def uri(self) -> str:
        return f"lakefs://{self.repository}/{self.ref}/{self.path}"


def parse_lakefs_uri(uri: str) -> LakeFSRef:
    """`lakefs://repo/ref/path` (or the gateway's `s3://repo/ref/path`) -> LakeFSRef;
    user-info and query dropped."""
    parts = urlsplit(uri)
    repository = parts.netloc.rpartition("@")[2]
    ref, _, path = parts.path.lstrip("/").partition("/")
    if parts.scheme.lower() not in ("lakefs", "s3", "s3a") or not repository or not ref:
        raise TableInputError(
            f"{redact_url(uri, keep_user=False)} is not a lakeFS path: lakefs://repository/ref/path"
        )
    return LakeFSRef(repository, ref, path)


def is_commit(ref: str) -> bool:
    """A full commit id: the only reference that cannot move."""
    return bool(COMMIT_ID.match(ref))


def lakefs_endpoint() -> str | None:
    for variable in ENDPOINT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


def through_gateway(uri: str) -> bool:
    """Whether an `s3://` URI is read through lakeFS's S3 gateway: the S3 endpoint in effect is
    the configured lakeFS server (same host and port)."""
    from repro_common.fingerprints.s3_objects import endpoint_url

    lakefs, s3 = lakefs_endpoint(), endpoint_url()
    if not lakefs or not s3:
        return False
    return _host_port(lakefs) == _host_port(s3)


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (parts.hostname or "").lower(), port


def _client() -> Any:
    """A lakefs SDK client for the configured server; TableInputError, one line, when the
    package or the configuration is missing."""
    try:
        import lakefs
        from lakefs.exceptions import NoAuthenticationFound
    except ImportError:
        raise TableInputError(
            "resolving a lakeFS branch or tag to its commit needs the lakefs package: "
            "pip install 'mlrepro[lakefs]' (or name the commit: lakefs://repo/<commit id>/path)"
        ) from None
    endpoint = os.environ.get("LAKEFS_ENDPOINT", "").strip()
    try:
        if endpoint:
            return lakefs.Client(
                host=endpoint,
                username=os.environ.get("LAKEFS_ACCESS_KEY_ID") or None,
                password=os.environ.get("LAKEFS_SECRET_ACCESS_KEY") or None,
            )
        return lakefs.Client()
    except NoAuthenticationFound:
        raise TableInputError(
            "no lakeFS server configured: set LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID and "
            "LAKEFS_SECRET_ACCESS_KEY (or lakectl's configuration)"
        ) from None
    except Exception as exc:
        raise TableInputError(f"cannot configure the lakeFS client: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def resolve_commit(ref: LakeFSRef) -> str:
    """The commit id a branch or tag points to now (one call to the server)."""
    client = _client()  # first: a missing package is one line naming the extra
    import lakefs

    where = f"lakeFS ref {ref.ref!r} of repository {ref.repository}"
    try:
        commit = lakefs.Reference(ref.repository, ref.ref, client=client).get_commit()
    except Exception as exc:
        raise _failure(exc, where) from None
    commit_id = str(getattr(commit, "id", "") or "")
    if not is_commit(commit_id):
        raise TableInputError(f"{where} resolved to {commit_id!r}, not a commit id")
    return commit_id


def _failure(exc: Exception, where: str) -> TableInputError:
    from lakefs import exceptions as lx

    if isinstance(exc, lx.NotFoundException):
        return TableInputError(f"{where} does not exist")
    if isinstance(exc, (lx.NotAuthorizedException, lx.ForbiddenException)):
        return TableInputError(f"the lakeFS server refused the credentials reading {where}")
    endpoint = redact_url(lakefs_endpoint() or "the lakeFS server", keep_user=False)
    if isinstance(exc, lx.ServerException):
        return TableInputError(f"{endpoint} failed reading {where}: {_one_line(exc)}")
    return TableInputError(f"cannot reach {endpoint} to read {where}: {_one_line(exc)}")


def describe_lakefs(
    obj: Any, name: str, source: str | None = None, *, version: int | str | None = None
) -> dict[str, Any]:
    """The manifest entry for a lakeFS path: pinned to its commit (resolved now for a branch
    or tag); TableInputError, one line, when it cannot be."""
    ref = parse_lakefs_uri(os.fspath(obj))
    gateway = not str(os.fspath(obj)).lower().startswith("lakefs://")
    if version is not None:
        if not is_commit(str(version)):
            raise TableInputError(
                f"{name}: version= of a lakeFS path is a commit id, not {version!r}"
            )
        ref = LakeFSRef(ref.repository, str(version), ref.path)
    if is_commit(ref.ref):
        commit = ref.ref
    else:
        try:
            commit = resolve_commit(ref)
        except TableInputError as exc:
            raise TableInputError(
                f"lakeFS ref {ref.ref!r} of repository {ref.repository} was not resolved to its "
                f"commit, so the data is not pinned (a branch moves): {exc}"
            ) from None
    return _entry(
        ref, commit, name, redact_url(source, keep_user=False) if source else None, gateway
    )


def _entry(
    ref: LakeFSRef, commit: str, name: str, source: str | None, gateway: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "lakefs",
        "uri": ref.uri,
        "repository": ref.repository,
        "ref": ref.ref,
        "commit": commit,
        "path": ref.path,
        "fingerprint": content_digest(
            BASIS, [ref.repository.encode(), commit.encode(), ref.path.encode()]
        ),
        "basis": BASIS,
        "basis_detail": BASIS_TEXT,
        "via": "s3-gateway" if gateway else "lakefs",
        "source": source or ref.uri,
    }


def unpinned_reason(item: dict[str, Any]) -> str | None:
    """Why a lakeFS input is not pinned to a commit (None when it is)."""
    commit = item.get("commit")
    if isinstance(commit, str) and is_commit(commit):
        return None
    why = f" ({item.get('reason')})" if item.get("reason") else ""
    return (
        f"{item.get('name')!r} names lakeFS ref {item.get('ref')!r} of repository "
        f"{item.get('repository')} without its commit{why}: a branch moves, so the data is not "
        "pinned; track it while the lakeFS server is reachable (the ref is resolved to its "
        "commit) or name the commit: lakefs://repo/<commit id>/path"
    )


def check_lakefs(item: dict[str, Any]) -> str | None:
    """None when the input is pinned to a commit (and, where a server is configured, that
    commit still exists there); else one line."""
    unpinned = unpinned_reason(item)
    if unpinned is not None:
        return unpinned
    if lakefs_endpoint() is None:
        return None  # no server to ask: the commit id in the record is the pin
    try:
        _require_commit(item)
    except TableInputError as exc:
        return f"{item.get('name')}: {exc}"
    return None


def _require_commit(item: dict[str, Any]) -> None:
    client = _client()
    import lakefs

    where = f"commit {item.get('commit')} of lakeFS repository {item.get('repository')}"
    try:
        lakefs.Reference(
            str(item.get("repository")), str(item.get("commit")), client=client
        ).get_commit()
    except Exception as exc:
        raise _failure(exc, where) from None


def reopen_lakefs(item: dict[str, Any]) -> dict[str, Any]:
    """The recorded commit described again (checked on the server where one is configured)."""
    unpinned = unpinned_reason(item)
    if unpinned is not None:
        raise TableInputError(unpinned)
    ref = LakeFSRef(
        str(item.get("repository")),
        str(item.get("ref") or item["commit"]),
        str(item.get("path") or ""),
    )
    if lakefs_endpoint() is not None:
        _require_commit(item)
    return _entry(
        ref,
        str(item["commit"]),
        str(item.get("name")),
        item.get("source"),
        item.get("via") == "s3-gateway",
    )


def lakefs_label(item: dict[str, Any]) -> str:
    """`lakefs lakefs://repo/<commit>/path (ref main)`."""
    commit = item.get("commit") or "?"
    text = f"lakefs lakefs://{item.get('repository')}/{commit}/{item.get('path') or ''}"
    return text + (f" (ref {item.get('ref')})" if item.get("ref") != commit else "")


def lakefs_change(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """`commit 1a2b3c4d5e6f → 9f8e7d6c5b4a (ref main moved)`; None if it did not move."""
    if (a.get("repository"), a.get("path")) != (b.get("repository"), b.get("path")):
        return f"{lakefs_label(a)} → {lakefs_label(b)}"
    ca, cb = str(a.get("commit") or "?"), str(b.get("commit") or "?")
    if ca == cb:
        return None
    moved = f" (ref {a.get('ref')} moved)" if a.get("ref") == b.get("ref") != ca else ""
    return f"commit {ca[:12]} → {cb[:12]}{moved}"
