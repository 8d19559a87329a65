"""The shapes of a record's sections, for the type checker.

A record is JSON from a shared store, so every key may be missing (`total=False`)
and readers still check values at run time; these types only stop our own code from
misspelling a key or treating a list as a dict. The JSON Schema in `schema/` is what
a stored record is checked against.
"""

from __future__ import annotations

from typing import Any, TypedDict


class EnvironmentSection(TypedDict, total=False):
    digest: str
    python: dict[str, Any]
    os: dict[str, Any]
    hardware: dict[str, Any]
    packages: list[dict[str, Any]]
    conda: list[Any] | None
    container: dict[str, Any] | None
    variables: dict[str, Any]


class CodeSection(TypedDict, total=False):
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool | None
    diff_digest: str | None
    diff_truncated: bool
    entry_point: str | None
    entry_module: str | None
    argv: list[str]
    cwd: str | None
    root: str | None
    untracked: list[str]
    unversioned_sources: list[Any]
    reason: str


# `global` is a keyword, so this one is spelled in the functional form.
SeedsSection = TypedDict(
    "SeedsSection",
    {
        "global": int | None,
        "source": str | None,
        "seeded": bool,
        "derived": dict[str, int],
        "determinism": dict[str, Any] | None,
        "hash_randomization": Any,
        "rng_digests": dict[str, Any],
        "ranks": dict[str, Any],
        "trainer": dict[str, Any],
    },
    total=False,
)


class CaptureSection(TypedDict, total=False):
    tool: str
    version: str
    created_at: str
    duration_ms: float
    promoted_at: str
    promoted_from: str
    errors: list[dict[str, Any]]
