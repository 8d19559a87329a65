"""Why two runs may differ: their records compared field by field, grouped the way people debug.

Groups that decide "identical": packages, platform (interpreter, OS, CUDA),
environment variables, container, code, seeds, data, params. Metric deltas are
reported as the outcome, never as a cause. Fields left out of the manifest
digest (paths, hostnames, timestamps) are left out here too, so an MLflow run and
a W&B run of the same code, environment, seeds and data compare as identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repro_common.manifest import Manifest

if TYPE_CHECKING:
    from repro_common.runs import RunRecord

GROUPS = (
    "packages",
    "platform",
    "environment variables",
    "container",
    "code",
    "seeds",
    "data",
    "params",
)


# Variables that carry a seed or a determinism switch: a difference in them is a seed difference.
SEED_VARIABLES = frozenset(
    {
        "PL_GLOBAL_SEED",
        "PL_SEED_WORKERS",
        "MLREPRO_SEED",
        "PYTHONHASHSEED",
        "CUBLAS_WORKSPACE_CONFIG",
    }
)


@dataclass
class Change:
    field: str
    a: Any
    b: Any

    @property
    def kind(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "changed"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "change": self.kind, "a": self.a, "b": self.b}


@dataclass
class MetricDelta:
    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "delta": self.delta}


@dataclass
class RunDiff:
    a: str
    b: str
    groups: dict[str, list[Change]] = field(default_factory=dict)
    metrics: list[MetricDelta] = field(default_factory=list)
    digests: tuple[str, str] = ("", "")

    @property
    def identical(self) -> bool:
        """True when nothing that changes results differs (metrics are outcomes, not causes)."""
        return not any(self.groups.values())

    @property
    def differing_groups(self) -> list[str]:
        return [name for name in GROUPS if self.groups.get(name)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"run": self.a, "digest": self.digests[0]},
            "b": {"run": self.b, "digest": self.digests[1]},
            "identical": self.identical,
            "differing": self.differing_groups,
            "groups": {
                name: [change.to_dict() for change in self.groups.get(name, [])] for name in GROUPS
            },
            "metrics": [metric.to_dict() for metric in self.metrics],
        }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists and scalars stay leaves."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


def _compare(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    changes = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if left != right:
            changes.append(Change(key, left, right))
    return changes


def _packages(env: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for package in env.get("packages") or []:
        value = str(package.get("version"))
        source = package.get("source")
        if source and source != "index":
            value += (
                f" ({source}"
                + (f" {package['commit'][:12]}" if package.get("commit") else "")
                + ")"
            )
        found[str(package.get("name", "")).lower().replace("_", "-")] = value
    for package in env.get("conda") or []:
        if isinstance(package, dict) and package.get("name"):
            found[f"conda:{package['name']}"] = str(package.get("version"))
    return found


def _platform(env: dict[str, Any]) -> dict[str, Any]:
    py, os_info, hw = env.get("python") or {}, env.get("os") or {}, env.get("hardware") or {}
    return {
        "python": py.get("version"),
        "implementation": py.get("implementation"),
        "os": os_info.get("system"),
        "machine": os_info.get("machine"),
        "libc": os_info.get("libc"),
        "cuda": hw.get("cuda"),
        "cudnn": hw.get("cudnn"),
        "driver": hw.get("driver"),
        "gpus": hw.get("gpus") or None,
    }


def _code(code: dict[str, Any]) -> dict[str, Any]:
    sources = {
        f"unversioned {s.get('path')}": s.get("digest")
        for s in code.get("unversioned_sources") or []
    }
    return {
        "commit": code.get("commit"),
        "dirty": code.get("dirty"),
        "diff_digest": code.get("diff_digest"),
        "entry_point": code.get("entry_point"),
        "argv": " ".join(code.get("argv") or []) or None,
        **sources,
    }


def _seeds(seeds: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    return flatten(
        {
            "global": seeds.get("global"),
            "derived": seeds.get("derived") or {},
            "determinism": seeds.get("determinism") or {},
            "hash_randomization": seeds.get("hash_randomization") or {},
            "env": {k: v for k, v in variables.items() if k in SEED_VARIABLES},
        }
    )


def _variables(env: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (env.get("variables") or {}).items() if k not in SEED_VARIABLES}


def _data(data: list[dict[str, Any]]) -> dict[str, Any]:
    # An input read but not fingerprinted is still an input: absent on one side is a change.
    return {
        str(item.get("name")): item.get("fingerprint") or f"not fingerprinted ({item.get('kind')})"
        for item in data
    }


def diff_manifests(a: Manifest, b: Manifest) -> dict[str, list[Change]]:
    """The reproducibility-relevant differences between two records, by group."""
    env_a, env_b = a.environment, b.environment
    container_a = {k: (env_a.get("container") or {}).get(k) for k in ("image", "image_digest")}
    container_b = {k: (env_b.get("container") or {}).get(k) for k in ("image", "image_digest")}
    return {
        "packages": _compare(_packages(env_a), _packages(env_b)),
        "platform": _compare(_platform(env_a), _platform(env_b)),
        "environment variables": _compare(_variables(env_a), _variables(env_b)),
        "container": _compare(container_a, container_b),
        "code": _compare(_code(a.code), _code(b.code)),
        "seeds": _compare(
            _seeds(a.seeds, env_a.get("variables") or {}),
            _seeds(b.seeds, env_b.get("variables") or {}),
        ),
        "data": _compare(_data(a.data), _data(b.data)),
    }


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> list[MetricDelta]:
    return [
        MetricDelta(name, _number(a.get(name)), _number(b.get(name)))
        for name in sorted(set(a) | set(b))
    ]


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Compare two runs from any source; both need a readable manifest (ValueError otherwise)."""
    for record in (a, b):
        if record.manifest is None:
            raise ValueError(f"{record.ref}: {record.manifest_error or 'no manifest'}")
    assert a.manifest is not None and b.manifest is not None
    groups = diff_manifests(a.manifest, b.manifest)
    # A manifest file carries no params; compare them only between two tracked runs.
    both_runs = a.kind != "manifest" and b.kind != "manifest"
    groups["params"] = (
        _compare({k: str(v) for k, v in a.params.items()}, {k: str(v) for k, v in b.params.items()})
        if both_runs
        else []
    )
    return RunDiff(
        a=a.run_id or a.ref,
        b=b.run_id or b.ref,
        groups=groups,
        metrics=metric_deltas(a.metrics or {}, b.metrics or {}),
        digests=(a.manifest.digest, b.manifest.digest),
    )
