"""Why two runs may differ: their records compared field by field, grouped the way people debug.

Each group (packages, platform, environment variables, container, code, seeds,
data, params) is same, differs or unknown: two unseeded runs do not "share
seeds", they share the absence of a record, and their outcomes can differ. Where
seeds are unknown the RNG-state digests taken at capture (torch's initial seed
among them) are compared instead, and any difference there is a difference.
Metric deltas are the outcome, never a cause; clock metrics are shown but not
compared. Fields left out of the manifest digest (paths, hostnames, timestamps)
are left out here too, so an MLflow run and a W&B run of the same code,
environment, seeds and data compare as identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repro_common.manifest import Manifest
from repro_common.outcomes import is_timing
from repro_common.sections import CodeSection, EnvironmentSection, SeedsSection

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


SAME, DIFFERS, UNKNOWN = "same", "differs", "unknown"


@dataclass
class MetricDelta:
    name: str
    a: float | None
    b: float | None
    timing: bool = False  # a clock or machine metric: shown, not compared

    @property
    def differs(self) -> bool:
        """Compared and different (a metric only one run logged is not compared)."""
        if self.timing or self.a is None or self.b is None:
            return False
        return self.a != self.b

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "compared": not self.timing and self.a is not None and self.b is not None,
            "timing": self.timing,
        }


@dataclass
class RunDiff:
    a: str
    b: str
    groups: dict[str, list[Change]] = field(default_factory=dict)
    metrics: list[MetricDelta] = field(default_factory=list)
    digests: tuple[str, str] = ("", "")
    # group -> why it could not be compared; an unknown group is never reported as the same
    unknown: dict[str, str] = field(default_factory=dict)
    # group -> why it was not compared at all (no inputs tracked, a manifest file has no params)
    not_compared: dict[str, str] = field(default_factory=dict)

    def status(self, group: str) -> str:
        if self.groups.get(group):
            return DIFFERS
        if group in self.unknown:
            return UNKNOWN
        return SAME

    @property
    def differing_groups(self) -> list[str]:
        return [name for name in GROUPS if self.groups.get(name)]

    @property
    def unknown_groups(self) -> list[str]:
        return [name for name in GROUPS if name in self.unknown and not self.groups.get(name)]

    @property
    def records_match(self) -> bool:
        """Every group compared and the same: no difference, nothing unknown."""
        return not self.differing_groups and not self.unknown_groups

    @property
    def differing_metrics(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.differs]

    @property
    def outcomes_differ_unexplained(self) -> bool:
        """The records match but a compared metric differs: the cause is outside the record."""
        return self.records_match and bool(self.differing_metrics)

    @property
    def identical(self) -> bool:
        """Records match and no compared metric differs: the only case `diff` exits 0."""
        return self.records_match and not self.differing_metrics

    @property
    def verdict(self) -> str:
        if self.identical:
            return "identical"
        if self.differing_groups:
            return "differ"
        if self.outcomes_differ_unexplained:
            return "outcomes differ"
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"run": self.a, "digest": self.digests[0]},
            "b": {"run": self.b, "digest": self.digests[1]},
            "verdict": self.verdict,
            "identical": self.identical,
            "differing": self.differing_groups,
            "unknown": {name: self.unknown[name] for name in self.unknown_groups},
            "not_compared": dict(self.not_compared),
            "status": {name: self.status(name) for name in GROUPS},
            "groups": {
                name: [change.to_dict() for change in self.groups.get(name, [])] for name in GROUPS
            },
            "metrics": [metric.to_dict() for metric in self.metrics],
            "differing_metrics": [m.name for m in self.differing_metrics],
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


def _packages(env: EnvironmentSection) -> dict[str, Any]:
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


def _platform(env: EnvironmentSection) -> dict[str, Any]:
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


def _code(code: CodeSection) -> dict[str, Any]:
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


def _seeds(seeds: SeedsSection, variables: dict[str, Any]) -> dict[str, Any]:
    return flatten(
        {
            "global": seeds.get("global"),
            "derived": seeds.get("derived") or {},
            "determinism": seeds.get("determinism") or {},
            "hash_randomization": seeds.get("hash_randomization") or {},
            "trainer": seeds.get("trainer") or {},  # a Hugging Face Trainer's seeds
            "env": {k: v for k, v in variables.items() if k in SEED_VARIABLES},
        }
    )


def seeds_known(seeds: SeedsSection) -> bool:
    """A global seed was recorded and applied in the process (not just announced to it)."""
    return seeds.get("global") is not None and seeds.get("seeded") is not False


def _which(missing_a: bool, missing_b: bool) -> str:
    return "A and B" if missing_a and missing_b else ("A" if missing_a else "B")


def _rng_digests(seeds: SeedsSection) -> dict[str, Any]:
    digests = seeds.get("rng_digests") or {}
    return {f"rng.{k}": v for k, v in digests.items()} if isinstance(digests, dict) else {}


def _seed_changes(a: Manifest, b: Manifest) -> tuple[list[Change], str | None]:
    """Seed differences, and why seeds are unknown (None when both runs were seeded).

    When a run was not seeded, equal records mean nothing; the RNG states taken at
    capture (torch's initial seed, the digests of random/numpy/torch states) are
    compared instead, key by key where both runs have one: unseeded torch starts
    from a fresh 64-bit OS seed, so two unseeded torch runs show as different.
    """
    changes = _compare(
        _seeds(a.seeds, a.environment.get("variables") or {}),
        _seeds(b.seeds, b.environment.get("variables") or {}),
    )
    known_a, known_b = seeds_known(a.seeds), seeds_known(b.seeds)
    if known_a and known_b:
        from repro_common.hf_trainer import unseeded_models

        return changes, unseeded_models(a.seeds, b.seeds)
    rng_a, rng_b = _rng_digests(a.seeds), _rng_digests(b.seeds)
    shared = set(rng_a) & set(rng_b)
    changes += _compare({k: rng_a[k] for k in shared}, {k: rng_b[k] for k in shared})
    return changes, f"not recorded in {_which(not known_a, not known_b)} — outcomes can differ"


def _variables(env: EnvironmentSection) -> dict[str, Any]:
    return {k: v for k, v in (env.get("variables") or {}).items() if k not in SEED_VARIABLES}


def _data(data: list[dict[str, Any]]) -> dict[str, Any]:
    # An input read but not fingerprinted is still an input: absent on one side is a change.
    return {
        str(item.get("name")): item.get("fingerprint") or f"not fingerprinted ({item.get('kind')})"
        for item in data
    }


def diff_manifests(a: Manifest, b: Manifest) -> dict[str, list[Change]]:
    """The reproducibility-relevant differences between two records, by group."""
    return _diff_manifests(a, b)[0]


def _diff_manifests(
    a: Manifest, b: Manifest
) -> tuple[dict[str, list[Change]], dict[str, str], dict[str, str]]:
    """(changes by group, unknown group -> why, not-compared group -> why)."""
    env_a, env_b = a.environment, b.environment
    seed_changes, seeds_unknown = _seed_changes(a, b)
    unknown: dict[str, str] = {}
    not_compared: dict[str, str] = {}
    if seeds_unknown:
        unknown["seeds"] = seeds_unknown
    no_commit_a, no_commit_b = not a.code.get("commit"), not b.code.get("commit")
    if no_commit_a or no_commit_b:
        unknown["code"] = f"no git commit recorded in {_which(no_commit_a, no_commit_b)}"
    if not a.data and not b.data:
        not_compared["data"] = "no inputs tracked in A or B"
    unhashed = sorted(
        {str(i.get("name")) for i in a.data if not i.get("fingerprint")}
        & {str(i.get("name")) for i in b.data if not i.get("fingerprint")}
    )
    if unhashed:  # read but not fingerprinted in either run: their content was never compared
        unknown["data"] = f"not fingerprinted in A or B: {', '.join(unhashed)}"
    container_a = {k: (env_a.get("container") or {}).get(k) for k in ("image", "image_digest")}
    container_b = {k: (env_b.get("container") or {}).get(k) for k in ("image", "image_digest")}
    groups = {
        "packages": _compare(_packages(env_a), _packages(env_b)),
        "platform": _compare(_platform(env_a), _platform(env_b)),
        "environment variables": _compare(_variables(env_a), _variables(env_b)),
        "container": _compare(container_a, container_b),
        "code": _compare(_code(a.code), _code(b.code)),
        "seeds": seed_changes,
        "data": _compare(_data(a.data), _data(b.data)) + _table_versions(a.data, b.data),
    }
    return groups, unknown, not_compared


def _table_versions(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Change]:
    """A Delta or Iceberg input that moved: `events version: v12 → v15 (3 commits)`."""
    from repro_common.table_inputs import change

    right = {str(item.get("name")): item for item in b}
    changes = []
    for item in a:
        name = str(item.get("name"))
        moved = change(item, right[name]) if name in right else None
        if moved is not None:
            before, _, after = moved.partition(" → ")
            changes.append(Change(f"{name} version", before, after))
    return changes


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_deltas(
    a: dict[str, Any], b: dict[str, Any], compare_anyway: tuple[str, ...] = ()
) -> list[MetricDelta]:
    """Final metrics side by side; clock metrics marked timing unless `compare_anyway` names them."""
    return [
        MetricDelta(
            name, _number(a.get(name)), _number(b.get(name)), is_timing(name, compare_anyway)
        )
        for name in sorted(set(a) | set(b))
    ]


def diff_runs(a: RunRecord, b: RunRecord, compare_metrics: tuple[str, ...] = ()) -> RunDiff:
    """Compare two runs from any source; both need a readable manifest (ValueError otherwise).

    `compare_metrics`: globs of clock metrics to compare anyway.
    """
    for record in (a, b):
        if record.manifest is None:
            raise ValueError(f"{record.ref}: {record.manifest_error or 'no manifest'}")
    assert a.manifest is not None and b.manifest is not None
    groups, unknown, not_compared = _diff_manifests(a.manifest, b.manifest)
    # A manifest file carries no params; compare them only between two tracked runs.
    both_runs = a.kind != "manifest" and b.kind != "manifest"
    groups["params"] = (
        _compare({k: str(v) for k, v in a.params.items()}, {k: str(v) for k, v in b.params.items()})
        if both_runs
        else []
    )
    if not both_runs:
        not_compared["params"] = "a manifest file carries no params"
    return RunDiff(
        a=a.run_id or a.ref,
        b=b.run_id or b.ref,
        groups=groups,
        metrics=metric_deltas(a.metrics or {}, b.metrics or {}, compare_metrics),
        digests=(a.manifest.digest, b.manifest.digest),
        unknown=unknown,
        not_compared=not_compared,
    )


def summary_lines(diff: RunDiff) -> list[str]:
    """The verdict in words, first line first: what differs, what is unknown, what was not compared.

    Never says "identical" or "same" about something that was not compared.
    """
    lines: list[str] = []
    if diff.identical:
        lines.append(
            f"identical: {diff.a} (A) and {diff.b} (B) match in every recorded group "
            "and no compared metric differs"
        )
    elif diff.differing_groups:
        lines.append(f"differ in {', '.join(diff.differing_groups)}: {diff.a} (A) vs {diff.b} (B)")
    elif diff.outcomes_differ_unexplained:
        lines.append(
            "inputs identical, outcomes differ: something the record does not hold changed, "
            "e.g. randomness drawn before seeding"
        )
    else:
        lines.append(
            f"unknown: {diff.a} (A) and {diff.b} (B) match where both records hold a value, "
            f"but {', '.join(diff.unknown_groups)} could not be compared"
        )
    for group in GROUPS:
        status = diff.status(group)
        if group in diff.unknown:
            note = diff.unknown[group]
            text = f"{status}; {note}" if status == DIFFERS else note
        elif group in diff.not_compared:
            text = f"not compared ({diff.not_compared[group]})"
        else:
            text = status
        lines.append(f"  {group}: {text}")
    compared = [m for m in diff.metrics if not m.timing and m.a is not None and m.b is not None]
    timing = [m.name for m in diff.metrics if m.timing]
    if compared:
        bad = diff.differing_metrics
        lines.append(
            f"  metrics: {len(bad)} of {len(compared)} compared differ"
            if bad
            else f"  metrics: {len(compared)} compared, all equal"
        )
    else:
        lines.append("  metrics: none compared (no metric logged by both runs)")
    if timing:
        lines.append(f"  not compared (timing): {', '.join(timing)}")
    return lines
