"""The reproducibility record: a versioned, schema-checked, content-digested JSON document.

The digest covers what changes results and everything `reproduce` and `diff` act
on (packages, interpreter, commit, remote, branch, checkout, diff, entry point and
argv, seeds, data, and, from rule 2 on, the blake3 of every file stored in
`repro/`), never what changes from one machine or minute to the next
(timestamps, hostnames, executable paths, durations), so two runs of the same
code, environment, seeds and data share a digest. Fields left outside are never
written into anything executable.

The rule is versioned by `digest_version`, itself covered: records made before
rule 2 (no `digest_version`) are still verified under rule 1, which covered fewer
fields; a rule-2 record cannot be passed off as a rule-1 one, because the digest
written at run creation (the run's tag) was computed under rule 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import blake3

from repro_common.sections import CaptureSection, CodeSection, EnvironmentSection, SeedsSection

SCHEMA_ID = "mlrepro.manifest/1"
TRACKS = ("exploratory", "production")
ARTIFACT_DIR = "repro"  # the run's folder of record files, manifest.json among them
MANIFEST = "manifest.json"
DIGEST_VERSION = 2  # the rule new records are digested with
LEGACY_DIGEST_VERSION = 1  # records without `digest_version`
LEGACY_RULE_NOTE = (
    "legacy digest rule 1: remote, branch, checkout path and the repro/ files are not covered"
)

# Rule 1 (legacy): dotted paths left out of the digest.
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
# Rule 2: only where and when the run happened stays outside, never what reproduce acts on.
# `seeds.ranks` is completed after the run is created; rng digests are states at capture time.
VOLATILE_PATHS_V2: tuple[str, ...] = (
    "environment.python.executable",
    "environment.python.prefix",
    "environment.os.release",
    "environment.os.version",
    "environment.hardware.cpu_count",
    "environment.hardware.memory_bytes",
    "environment.hardware.cpu",
    "environment.container.in_container",
    "code.untracked",
    "code.untracked_truncated",
    "seeds.rng_digests",
    "seeds.ranks",
    "capture.created_at",
    "capture.hostname",
    "capture.pid",
    "capture.duration_ms",
    "capture.errors",
    "capture.promoted_at",
    "capture.promoted_from",
)


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


def _relevant_view_v2(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("digest_version", "environment", "code", "seeds", "data", "artifacts", "capture")
    view = {k: doc.get(k) for k in keys}  # copy on write, as in rule 1
    for dotted in VOLATILE_PATHS_V2:
        _drop_path(view, dotted)
    data = view.get("data") or []
    view["data"] = sorted(
        data, key=lambda item: str(item.get("name")) if isinstance(item, dict) else ""
    )
    return view


def digest_version_of(doc: dict[str, Any]) -> int:
    """The rule a document says it was digested with (1 when it says nothing: a legacy record)."""
    version = doc.get("digest_version", LEGACY_DIGEST_VERSION)
    if version in (LEGACY_DIGEST_VERSION, DIGEST_VERSION) and not isinstance(version, bool):
        return int(version)
    raise ManifestError(f"unknown digest_version {version!r}: this mlrepro knows rules 1 and 2")


def environment_digest(environment: EnvironmentSection) -> str:
    """Digest of the environment section alone (same exclusions as the manifest digest)."""
    return digest_bytes(canonical_json(_relevant_view({"environment": environment})["environment"]))


def manifest_digest(doc: dict[str, Any]) -> str:
    if digest_version_of(doc) == LEGACY_DIGEST_VERSION:
        return digest_bytes(canonical_json(_relevant_view(doc)))
    return digest_bytes(canonical_json(_relevant_view_v2(doc)))


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

    environment: EnvironmentSection = field(default_factory=lambda: EnvironmentSection())
    code: CodeSection = field(default_factory=lambda: CodeSection())
    seeds: SeedsSection = field(default_factory=lambda: SeedsSection())
    data: list[dict[str, Any]] = field(default_factory=list)
    capture: CaptureSection = field(default_factory=lambda: CaptureSection())
    track: str = "exploratory"
    schema: str = SCHEMA_ID
    digest: str = ""
    # Rule 2: `repro/<path>` -> "blake3:<hex>" of the exact bytes stored (manifest.json aside).
    artifacts: dict[str, str] = field(default_factory=dict)
    digest_version: int = DIGEST_VERSION
    # The content `validate` last passed (its bytes' digest): the same content is not re-checked.
    _valid_content: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.digest:
            self.refresh_digest()

    @property
    def legacy_digest(self) -> bool:
        """Digested under rule 1, which left remote, branch, checkout and repro/ files out."""
        return self.digest_version == LEGACY_DIGEST_VERSION

    def list_artifacts(self, files: dict[str, bytes]) -> None:
        """Record the digest of every stored file (names relative to `repro/`) and re-digest."""
        self.artifacts = {
            f"{ARTIFACT_DIR}/{name}": digest_bytes(content)
            for name, content in sorted(files.items())
            if name != MANIFEST
        }
        self.digest_version = DIGEST_VERSION
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
        if self.digest_version != LEGACY_DIGEST_VERSION:
            doc["digest_version"] = self.digest_version
            doc["artifacts"] = self.artifacts
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        """Build from a parsed document, keeping its recorded digest (see `digest_matches`).

        A missing digest stays missing: a record that cannot be verified must fail the
        gate, not be given a digest of whatever it now holds.
        """
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ManifestError(
                f"not an mlrepro manifest (schema {found!r}, expected {SCHEMA_ID!r})"
            )
        check_field_types(doc)
        artifacts = doc.get("artifacts")
        manifest = cls(
            environment=doc.get("environment") or {},
            code=doc.get("code") or {},
            seeds=doc.get("seeds") or {},
            data=doc.get("data") or [],
            capture=doc.get("capture") or {},
            track=doc.get("track") or "exploratory",
            schema=doc["schema"],
            digest="unverified",  # set below: __post_init__ must not compute one
            artifacts=dict(artifacts) if isinstance(artifacts, dict) else {},
            digest_version=digest_version_of(doc),
        )
        digest = doc.get("digest")
        manifest.digest = digest if isinstance(digest, str) else ""
        return manifest

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)

    def digest_matches(self) -> bool:
        """False when the content was edited after the digest was written, or there is none."""
        if not self.digest:
            return False
        return manifest_digest(self.to_dict(with_digest=False)) == self.digest

    def validate(self) -> None:
        """Raise ManifestError naming the first schema violation.

        Checked once per content: `show` judges a record for every track, and the schema
        check of a 200,000-input record takes seconds where hashing its bytes takes a fraction.
        """
        doc = self.to_dict()
        try:
            content = digest_bytes(canonical_json(doc))
        except (TypeError, ValueError):  # not JSON at all: the schema check names the field
            content = None
        if content is not None and content == self._valid_content:
            return
        validate_document(doc)
        self._valid_content = content

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.capture.get("errors") or [])

    def add_errors(self, errors: list[dict[str, Any]]) -> None:
        """Failures met after capture (an adapter's own): outside the digest, like the others."""
        self.capture["errors"] = self.errors + list(errors)

    def set_rank_seeds(self, ranks: dict[str, Any]) -> None:
        """The seeds every rank of a distributed run used, completed after capture."""
        self.seeds["ranks"] = ranks


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
    from repro_common.schema_check import first_problem

    problem = first_problem(doc, schema())
    if problem:
        raise ManifestError(f"manifest does not follow {SCHEMA_ID}: field {problem}")
