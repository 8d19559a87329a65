"""The reproducibility record: a versioned, schema-checked, content-digested JSON document.

The digest covers only what changes results (packages, interpreter, commit, diff,
seeds, data fingerprints, argv), never what changes from one machine or minute to
the next (timestamps, hostnames, executable paths, durations), so two runs of the
same code, environment, seeds and data share a digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import blake3

SCHEMA_ID = "mlrepro.manifest/1"
TRACKS = ("exploratory", "production")

# Dotted paths left out of the digests: they describe where and when, not what.
VOLATILE_PATHS: tuple[str, ...] = (
    "environment.digest",
    "environment.python.executable",
    "environment.python.prefix",
    "environment.os.release",
    "environment.os.version",
    "environment.hardware.cpu_count",
    "environment.hardware.memory_bytes",
    "environment.hardware.cpu",
    "environment.container.in_container",
    "code.root",
    "code.branch",
    "code.remote",
    "code.untracked",
    "code.untracked_truncated",
    "code.diff_bytes",
    "code.reason",
    "seeds.rng_digests",
    "seeds.source",
    "seeds.ranks",
)
# Package sources whose `url` is a local path: where the checkout sits, not what it holds.
PATH_SOURCES = ("editable", "local")
# Per-item keys left out of the data digest (the fingerprint already covers content;
# `snapshot` says where a copy is stored, added by the production track or promotion).
VOLATILE_DATA_KEYS = ("source", "size_bytes", "files", "dvc", "snapshot")


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for hashing: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_bytes(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def _drop_path(doc: dict[str, Any], dotted: str) -> None:
    """Remove `dotted` from `doc`, copying each dict on the way: the caller's record is shared."""
    *parents, leaf = dotted.split(".")
    node: Any = doc
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            return
        node[key] = child = dict(child)
        node = child
    node.pop(leaf, None)


def _relevant_view(doc: dict[str, Any]) -> dict[str, Any]:
    # Copy on write, not deepcopy: a record with 200,000 inputs is hashed in a second.
    view = {k: doc.get(k) for k in ("environment", "code", "seeds", "data")}
    for dotted in VOLATILE_PATHS:
        _drop_path(view, dotted)
    environment = view.get("environment")
    if isinstance(environment, dict) and isinstance(environment.get("packages"), list):
        view["environment"] = environment = dict(environment)
        environment["packages"] = [
            # a checkout's location, not its content
            {k: v for k, v in package.items() if k != "url"}
            if isinstance(package, dict) and package.get("source") in PATH_SOURCES
            else package
            for package in environment["packages"]
        ]
    data = view.get("data") or []
    view["data"] = sorted(
        ({k: v for k, v in item.items() if k not in VOLATILE_DATA_KEYS} for item in data),
        key=lambda item: str(item.get("name")),
    )
    return view


def environment_digest(environment: dict[str, Any]) -> str:
    """Digest of the environment section alone (same exclusions as the manifest digest)."""
    return digest_bytes(canonical_json(_relevant_view({"environment": environment})["environment"]))


def manifest_digest(doc: dict[str, Any]) -> str:
    return digest_bytes(canonical_json(_relevant_view(doc)))


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema shipped inside the package."""
    text = resources.files("repro_common").joinpath("schema/manifest.schema.json").read_text()
    return json.loads(text)


class ManifestError(ValueError):
    """A manifest that is not valid JSON or does not follow the schema."""


@dataclass
class Manifest:
    """One run's record. Sections are plain JSON-ready dicts/lists."""

    environment: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, Any]] = field(default_factory=list)
    capture: dict[str, Any] = field(default_factory=dict)
    track: str = "exploratory"
    schema: str = SCHEMA_ID
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            self.refresh_digest()

    def refresh_digest(self) -> str:
        """Recompute both digests after a section was changed in place."""
        if self.environment:
            self.environment["digest"] = environment_digest(self.environment)
        self.digest = manifest_digest(self.to_dict(with_digest=False))
        return self.digest

    def to_dict(self, with_digest: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": self.schema,
            "digest": self.digest if with_digest else "",
            "track": self.track,
            "environment": self.environment,
            "code": self.code,
            "seeds": self.seeds,
            "data": self.data,
            "capture": self.capture,
        }
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        """Build from a parsed document, keeping its recorded digest (see `digest_matches`)."""
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ManifestError(
                f"not an mlrepro manifest (schema {found!r}, expected {SCHEMA_ID!r})"
            )
        check_field_types(doc)
        return cls(
            environment=doc.get("environment") or {},
            code=doc.get("code") or {},
            seeds=doc.get("seeds") or {},
            data=doc.get("data") or [],
            capture=doc.get("capture") or {},
            track=doc.get("track") or "exploratory",
            schema=doc["schema"],
            digest=doc.get("digest") or "",
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)

    def digest_matches(self) -> bool:
        """False when the content was edited after the digest was written (tamper check)."""
        return manifest_digest(self.to_dict(with_digest=False)) == self.digest

    def validate(self) -> None:
        """Raise ManifestError naming the first schema violation."""
        validate_document(self.to_dict())

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.capture.get("errors") or [])


def check_field_types(doc: dict[str, Any]) -> None:
    """Raise ManifestError naming the first field whose type readers cannot walk.

    A record is untrusted input: `data` as an object or a package as a string must
    say so by name, not fail later as `'list' object has no attribute 'get'`.
    """
    from repro_common.schema_check import first_problem

    problem = first_problem(doc, schema(), types_only=True)
    if problem:
        raise ManifestError(f"manifest field {problem}")


def validate_document(doc: dict[str, Any]) -> None:
    from repro_common.schema_check import first_problem, supports

    if supports(schema()):  # the fast checker; jsonschema only for keywords it lacks
        problem = first_problem(doc, schema())
        if problem:
            raise ManifestError(f"manifest does not follow {SCHEMA_ID}: field {problem}")
        return
    import jsonschema

    try:
        jsonschema.validate(doc, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise ManifestError(
            f"manifest does not follow {SCHEMA_ID} at {where}: {exc.message}"
        ) from exc
