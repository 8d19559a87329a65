"""The completeness gate CI runs before model registration: named rules, each pass/fail with a reason.

Rules: manifest (present, schema-valid, untampered, matching the run's digest tag, and
every file the run's `repro.artifacts` tag announced at creation stored),
code, environment, seeds, data. On the exploratory track only `manifest` is
required; the others are still reported, as advice. Pure over a RunRecord: it
reads what the record and its stored files say and imports no tracker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro_common.environment import canonical_name
from repro_common.manifest import LEGACY_RULE_NOTE, Manifest, ManifestError
from repro_common.runs import record_incomplete
from repro_common.sections import CodeSection
from repro_common.snapshots import plan_snapshot, snapshot_counts, snapshot_stored
from repro_common.tracks import PRODUCTION, check_track, run_track

if TYPE_CHECKING:
    from repro_common.runs import RunRecord

RULES = ("manifest", "code", "environment", "seeds", "data")
DIGEST_TAG = "repro.manifest.digest"
FINGERPRINT = re.compile(r"^blake3:[0-9a-f]{64}$")
REINSTALLABLE_SOURCES = ("index", "vcs")
KNOWN_FILES = ("manifest.json", "requirements.txt", "code.diff", "Dockerfile")
# What to do when a rule fails: every failure names its way out.
REMEDIES = {
    "manifest": "rerun with the mlrepro plugin installed (pip install 'mlrepro[mlflow]'); "
    "a record edited after capture cannot be repaired, only replaced by a new run",
    "code": "commit your changes (git add -A && git commit) and run again from the checkout",
    "environment": "install every package from an index or a git URL (or waive a reviewed one "
    "with --allow-package NAME); `mlrepro promote RUN` stores the environment spec",
    "seeds": "call seed_everything(SEED, deterministic=True) before training, "
    "or run with MLREPRO_SEED=N",
    "data": "`mlrepro promote RUN` snapshots inputs up to MLREPRO_SNAPSHOT_LIMIT_MB "
    "into repro/data/; larger ones: track them with DVC (dvc add PATH) and fingerprint the "
    "DVC-tracked path with track_data(); a partial fingerprint: track_data without max_items",
}


@dataclass
class RuleResult:
    name: str
    passed: bool
    reason: str
    required: bool = True
    details: list[str] = field(default_factory=list)
    remedy: str = ""  # what to do about a failure; empty when the rule passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "required": self.required,
            "reason": self.reason,
            "remedy": self.remedy,
            "details": list(self.details),
        }


@dataclass
class GateReport:
    run: str
    track: str
    rules: list[RuleResult]

    @property
    def passed(self) -> bool:
        return all(rule.passed for rule in self.rules if rule.required)

    @property
    def failed(self) -> list[str]:
        """Names of the required rules that failed, in rule order."""
        return [rule.name for rule in self.rules if rule.required and not rule.passed]

    @property
    def advice(self) -> list[str]:
        """Rules that fail but are not required on this track."""
        return [rule.name for rule in self.rules if not rule.required and not rule.passed]

    def rule(self, name: str) -> RuleResult:
        return next(rule for rule in self.rules if rule.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "track": self.track,
            "passed": self.passed,
            "failed": self.failed,
            "rules": [rule.to_dict() for rule in self.rules],
        }

    def summary(self) -> str:
        """One line: what CI logs and what require_reproducible raises."""
        if self.passed:
            return f"{self.run}: passes the {self.track} gate"
        reasons = "; ".join(
            f"{r.name}: {r.reason}" + (f" (fix: {r.remedy})" if r.remedy else "")
            for r in self.rules
            if r.required and not r.passed
        )
        return f"{self.run}: fails the {self.track} gate ({reasons})"


def stored_artifacts(record: RunRecord) -> set[str]:
    """The run's stored files under `repro/`, as `repro/...` paths, whatever the source."""
    if record.kind == "manifest" and record.location:
        # The files a downloaded repro/ folder holds next to manifest.json; never a wider walk.
        folder = Path(record.location).parent
        names = {f"repro/{n}" for n in KNOWN_FILES if (folder / n).is_file()}
        snapshots = folder / "data"
        if snapshots.is_dir():
            names |= {
                "repro/" + p.relative_to(folder).as_posix()
                for p in snapshots.rglob("*")
                if p.is_file()
            }
        return names
    # A listing that fails raises: "no Dockerfile" would be a false verdict on a store hiccup.
    return {name for name in record.list_artifacts("repro") if name.startswith("repro/")}


def announced_missing(record: RunRecord, stored: set[str]) -> list[str]:
    """The files the run's `repro.artifacts` tag announced at creation that are not stored."""
    from repro_common.artifacts import missing_announced, parse_announcement
    from repro_common.runs import ANNOUNCED_TAG

    announced = parse_announcement((record.tags or {}).get(ANNOUNCED_TAG))
    return missing_announced(announced, stored) if announced else []


# Files under repro/ a run may hold without the manifest listing them.
UNLISTED_OK = ("repro/manifest.json", "repro/tags.json")


def artifact_mismatches(record: RunRecord) -> dict[str, str]:
    """Path -> "missing" | "differs" | "not listed": the stored files that break the listing.

    Every file the manifest lists must be there with its blake3; a file under
    repro/ the listing does not name is reported too (it would be restored or
    installed unchecked). Legacy (rule 1) records list nothing: nothing to compare.
    """
    from repro_common.manifest import digest_bytes

    manifest = record.manifest
    if manifest is None or manifest.legacy_digest:
        return {}
    found: dict[str, str] = {}
    for path, recorded in sorted(manifest.artifacts.items()):
        raw = record.read_artifact(path)
        if raw is None:
            found[path] = "missing"
        elif digest_bytes(raw) != recorded:
            found[path] = "differs"
    for path in sorted(stored_artifacts(record) - set(manifest.artifacts) - set(UNLISTED_OK)):
        found[path] = "not listed"
    return found


def artifact_problems(record: RunRecord, found: dict[str, str] | None = None) -> list[str]:
    """One line per kind of mismatch, with the first few paths (see `artifact_mismatches`)."""
    found = artifact_mismatches(record) if found is None else found
    listed = len(record.manifest.artifacts) if record.manifest is not None else 0
    lines = []
    for state, template in (
        ("missing", "{n} of {listed} listed file(s) missing (upload cut short?): {paths}"),
        ("differs", "{n} file(s) differ from their recorded blake3: {paths}"),
        ("not listed", "{n} file(s) in repro/ the record does not list: {paths}"),
    ):
        paths = [path for path, what in found.items() if what == state]
        if paths:
            shown = ", ".join(paths[:5]) + ("…" if len(paths) > 5 else "")
            lines.append(template.format(n=len(paths), listed=listed, paths=shown))
    return lines


def manifest_rule(record: RunRecord) -> RuleResult:
    """The record's integrity: schema, digest vs content vs the run's tag, every listed file."""
    manifest = record.manifest
    if manifest is None:
        return RuleResult(
            "manifest", False, record.manifest_error or "no repro/manifest.json in the run"
        )
    try:
        manifest.validate()
    except ManifestError as exc:
        return RuleResult("manifest", False, str(exc))
    if not manifest.digest:
        return RuleResult(
            "manifest", False, "unverifiable: the record holds no digest to check its content"
        )
    legacy = f" ({LEGACY_RULE_NOTE})" if manifest.legacy_digest else ""
    if not manifest.digest_matches():
        return RuleResult(
            "manifest",
            False,
            f"tampered: the content no longer matches its digest {manifest.digest[:19]}… "
            f"(manifest.json was edited after capture){legacy}",
        )
    if record.kind == "manifest":
        tag_part = "digest matches content (file: no run tag)"
    else:
        tagged = (record.tags or {}).get(DIGEST_TAG)
        if not tagged:
            return RuleResult(
                "manifest", False, f"the run has no {DIGEST_TAG} tag to check the manifest against"
            )
        if tagged != manifest.digest:
            return RuleResult(
                "manifest",
                False,
                f"tampered: manifest digest {manifest.digest[:19]}… differs from the run's "
                f"{DIGEST_TAG} tag {tagged[:19]}…{legacy}",
            )
        tag_part = f"digest {manifest.digest[:19]}… matches content and tag"
    try:
        found = artifact_mismatches(record)
        problems = artifact_problems(record, found)
    except Exception as exc:  # a store that cannot be read back cannot be vouched for
        found = {}
        problems = [f"the stored files could not be read back ({type(exc).__name__}: {exc})"]
    if problems:
        return RuleResult(
            "manifest",
            False,
            "tampered or incomplete: " + "; ".join(problems),
            details=[f"{path}: {what}" for path, what in found.items()] or problems,
        )
    files = (
        ""
        if manifest.legacy_digest
        else f"; {len(manifest.artifacts)} listed file(s) match their blake3"
    )
    return RuleResult("manifest", True, f"schema-valid; {tag_part}{files}{legacy}")


def code_rule(manifest: Manifest, artifacts: set[str] | None) -> RuleResult:
    code = manifest.code
    commit = code.get("commit")
    if not commit:
        why = code.get("reason") or "not a git checkout"
        return RuleResult("code", False, f"no commit recorded ({why})")
    short = str(commit)[:12]
    dirty = code.get("dirty")
    if dirty is False:
        return RuleResult("code", True, f"clean tree at {short}")
    if dirty is None:
        return RuleResult("code", False, f"commit {short} but the dirty state is unknown")
    missing = [
        str(source.get("path"))
        for source in code.get("unversioned_sources") or []
        if source.get("in_diff") is False
    ]
    if missing:
        return RuleResult(
            "code",
            False,
            f"{len(missing)} uncommitted source file(s) that ran are not stored "
            f"(too large, not text or git-ignored): {', '.join(missing[:3])}: commit them",
            details=missing,
        )
    if code.get("diff_truncated"):
        return RuleResult(
            "code",
            False,
            f"uncommitted changes on {short} are too large to store in full: commit them",
        )
    if artifacts is None:
        return RuleResult(
            "code", True, f"uncommitted changes on {short}; the diff is stored with the run"
        )
    if "repro/code.diff" in artifacts:
        return RuleResult(
            "code", True, f"uncommitted changes on {short}; diff stored as repro/code.diff"
        )
    return RuleResult(
        "code", False, f"uncommitted changes on {short} and no repro/code.diff stored"
    )


def _own_checkout(package: dict[str, Any], code: CodeSection) -> bool:
    """An editable install of the run's own checkout: the code record (commit + diff) rebuilds it."""
    url, root = str(package.get("url") or ""), code.get("root")
    if not (package.get("editable") and url.startswith("file://") and root and code.get("commit")):
        return False
    installed = Path(url[len("file://") :]).resolve()
    checkout = Path(str(root)).resolve()
    return installed == checkout or checkout in installed.parents


def _reinstallable(package: dict[str, Any]) -> bool:
    if "reinstallable" in package:
        return bool(package["reinstallable"])
    return package.get("source") in REINSTALLABLE_SOURCES and bool(package.get("version"))


def environment_rule(
    manifest: Manifest, artifacts: set[str] | None, allow_packages: Iterable[str] = ()
) -> RuleResult:
    from repro_common.spec import python_base_image

    allowed = {canonical_name(name) for name in allow_packages}
    packages = manifest.environment.get("packages") or []
    blocked, problems, notes = [], [], []
    if not packages:
        problems.append("no installed packages recorded")
    for package in packages:
        name = str(package.get("name"))
        if _reinstallable(package):
            continue
        if _own_checkout(package, manifest.code):
            notes.append(f"{name} is the run's own checkout (rebuilt from the code record)")
        elif canonical_name(name) in allowed:
            notes.append(f"{name} waived ({package.get('reason') or package.get('source')})")
        else:
            why = package.get("reason") or f"{package.get('source', 'unknown')} install"
            blocked.append(f"{name} {package.get('version') or '?'} cannot be reinstalled: {why}")
    if python_base_image(manifest) is None:
        problems.append("no Python version recorded: no environment spec can be built")
    elif artifacts is not None:
        missing = [f for f in ("repro/requirements.txt", "repro/Dockerfile") if f not in artifacts]
        if missing:
            problems.append(
                f"no environment spec stored ({', '.join(missing)} missing): "
                "run on the production track or `mlrepro promote RUN`"
            )
    if blocked or problems:
        parts = []
        if blocked:
            names = ", ".join(line.split(" ", 1)[0] for line in blocked[:5])
            more = "…" if len(blocked) > 5 else ""
            parts.append(
                f"{len(blocked)} package(s) cannot be reinstalled from their record: {names}{more}"
            )
        parts += problems
        return RuleResult(
            "environment", False, "; ".join(parts), details=blocked + problems + notes
        )
    spec = "environment spec stored" if artifacts is not None else "environment spec will be stored"
    if notes:
        reason = f"{len(packages) - len(notes)} of {len(packages)} packages reinstallable, "
        reason += f"{'; '.join(notes)}; {spec}"
    else:
        reason = f"all {len(packages)} packages reinstallable; {spec}"
    return RuleResult("environment", True, reason, details=notes)


def seeds_rule(manifest: Manifest) -> RuleResult:
    seeds = manifest.seeds
    details = []
    if seeds.get("global") is None:
        details.append("no global seed recorded: call seed_everything(SEED) or set MLREPRO_SEED")
    elif seeds.get("seeded") is False:
        details.append(
            f"seed {seeds['global']} was recorded but not applied in this process "
            "(e.g. an inherited PL_GLOBAL_SEED): call seed_everything()"
        )
    switches = seeds.get("determinism") or {}
    if not isinstance(switches, dict) or not switches:
        details.append("determinism switches not recorded")
    if details:
        return RuleResult("seeds", False, "; ".join(details), details=details)
    source = seeds.get("source")
    return RuleResult(
        "seeds",
        True,
        f"global seed {seeds['global']}"
        + (f" ({source})" if source else "")
        + f"; {len(switches)} determinism switches recorded",
    )


def data_rule(manifest: Manifest, artifacts: set[str] | None) -> RuleResult:
    from repro_common.table_inputs import pinned_by_version, unversioned_reason

    inputs = manifest.data
    if not inputs:
        return RuleResult("data", True, "no tracked inputs")
    details: list[str] = []
    by_dvc = by_copy = by_table = 0
    for item in inputs:
        name = item.get("name")
        if pinned_by_version(item):
            # A table version is retrievable where it lives: its files present, its log kept.
            problem = _table_problem(item)
            if problem is None:
                by_table += 1
            else:
                details.append(problem)
        elif item.get("fingerprint") is None and item.get("reason"):
            details.append(
                f"{name!r} was read but not fingerprinted ({item.get('kind')}): track the file "
                f"it comes from with track_data(<path>, {name!r})"
            )
        elif not FINGERPRINT.match(str(item.get("fingerprint") or "")):
            details.append(f"{name!r} has no full-content fingerprint")
        elif item.get("partial"):
            details.append(f"{name!r} was only partly fingerprinted (partial)")
        elif (item.get("dvc") or {}).get("md5"):
            by_dvc += 1
        elif artifacts is None:
            plan = plan_snapshot(item, manifest)
            if plan.retrievable:
                by_copy += 1
            else:
                details.append(plan.reason)
        elif snapshot_stored(item, artifacts):
            by_copy += 1
        else:
            stored, expected = snapshot_counts(item, artifacts)
            if stored:
                of = f" of {expected}" if expected is not None else ""
                details.append(
                    f"{name!r}: its snapshot is incomplete ({stored}{of} file(s) stored in "
                    "repro/data/; upload cut short?)"
                )
            else:
                details.append(
                    unversioned_reason(item)
                    or f"{name!r} has no DVC reference and no snapshot in repro/data/"
                )
    if details:
        reason = (
            details[0]
            if len(details) == 1
            else f"{len(details)} inputs not retrievable: {details[0]}; …"
        )
        return RuleResult("data", False, reason, details=details)
    return RuleResult(
        "data",
        True,
        f"{len(inputs)} input(s) fingerprinted and retrievable "
        f"({by_dvc} by DVC md5, {by_copy} by snapshot"
        + (f", {by_table} by table version" if by_table else "")
        + ")",
    )


def _table_problem(item: dict[str, Any]) -> str | None:
    """Why a Delta/Iceberg input's recorded version can't be read back (None: it can)."""
    from repro_common.table_inputs import check_table

    if item.get("fingerprint") is None:
        return f"{item.get('name')!r} was not recorded: {item.get('reason')}"
    return check_table(item)


def evaluate(
    manifest: Manifest,
    track: str,
    artifacts: set[str] | None,
    allow_packages: Iterable[str] = (),
) -> list[RuleResult]:
    """The content rules for a record; `artifacts=None` judges as at run start (nothing stored yet)."""
    check_track(track)
    rules = [
        code_rule(manifest, artifacts),
        environment_rule(manifest, artifacts, allow_packages),
        seeds_rule(manifest),
        data_rule(manifest, artifacts),
    ]
    for rule in rules:
        rule.required = track == PRODUCTION
    return _with_remedies(rules)


def _with_remedies(rules: list[RuleResult]) -> list[RuleResult]:
    for rule in rules:
        if not rule.passed and not rule.remedy:
            rule.remedy = REMEDIES.get(rule.name, "")
    return rules


def check_run(
    record: RunRecord, track: str | None = None, allow_packages: Iterable[str] = ()
) -> GateReport:
    """Judge one run for `track` (default: the track the run is on).

    `allow_packages` waives the reinstallability of the named distributions (a
    reviewed exception, e.g. an internal wheel); the rule's reason names them.
    """
    chosen = check_track(track or run_track(record))
    rules = [manifest_rule(record)]
    if record.manifest is not None:
        stored = stored_artifacts(record)
        missing = announced_missing(record, stored)
        # An announced file that never arrived is an incomplete upload, not tampering: say so,
        # unless the manifest rule found more than those files missing.
        only_missing = set(rules[0].details) <= {f"{path}: missing" for path in missing}
        if missing and (rules[0].passed or only_missing):
            rules[0] = RuleResult("manifest", False, record_incomplete(missing), details=missing)
        rules += evaluate(record.manifest, chosen, stored, allow_packages)
    else:
        rules += [
            RuleResult(name, False, "no manifest to check", required=chosen == PRODUCTION)
            for name in RULES[1:]
        ]
    return GateReport(run=record.run_id or record.ref, track=chosen, rules=_with_remedies(rules))
