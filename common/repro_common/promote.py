"""Move a finished exploratory run to the production track, adding what that track stores.

Promotion checks the record is intact, then checks that the data at the recorded
paths still has the recorded fingerprints: a snapshot taken now must be of the
data the run read, so any mismatch refuses the whole promotion, listed. It then
stores the environment spec (`requirements.txt`, written from the manifest's package
list, and the `Dockerfile`) and the snapshot (each copy fingerprinted again
after upload), rewrites the manifest with the snapshot locations and the blake3
of every file now in `repro/` (so the digest changes, and the run's digest tag
with it), and sets the track tag last, so a promotion cut short leaves the run
exploratory. Running it again changes nothing.
"""

from __future__ import annotations

import copy
import datetime as _dt
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repro_common.gate import DIGEST_TAG
from repro_common.manifest import DIGEST_VERSION, Manifest

if TYPE_CHECKING:
    from repro_common.gate import GateReport
    from repro_common.runs import RunBackend, RunRecord


class PromotionError(RuntimeError):
    """The run cannot be promoted; the message lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


@dataclass
class PromotionResult:
    run: str
    already: bool  # nothing was missing: the run was on the production track with its extras
    promoted_at: str
    stored: list[str] = field(default_factory=list)  # artifact paths written
    snapshots: list[str] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)  # inputs retrievable through DVC
    notes: list[str] = field(default_factory=list)
    report: GateReport | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "track": "production",
            "already_promoted": self.already,
            "promoted_at": self.promoted_at,
            "stored": self.stored,
            "snapshots": self.snapshots,
            "dvc": self.referenced,
            "notes": self.notes,
            "gate": self.report.to_dict() if self.report else None,
        }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _upload(backend: RunBackend, folder: Path, name: str, content: bytes, dest: str) -> str:
    """Write `content` as `<dest>/<name>` in the run; returns that artifact path."""
    local = folder / name
    local.write_bytes(content)
    backend.log_artifact(str(local), dest)
    return f"{dest}/{name}"


def _listing(record: RunRecord, manifest: Manifest, added: dict[str, bytes]) -> dict[str, str]:
    """The blake3 of every file the promoted run holds in repro/ (manifest.json aside).

    A rule-2 record's listing was verified before promotion; a legacy record's
    files are read back once, so promotion moves it to rule 2.
    """
    from repro_common.gate import UNLISTED_OK, stored_artifacts
    from repro_common.manifest import digest_bytes

    listing = dict(manifest.artifacts) if not manifest.legacy_digest else {}
    if manifest.legacy_digest:
        for path in sorted(stored_artifacts(record) - set(UNLISTED_OK)):
            raw = record.read_artifact(path)
            if raw is not None:
                listing[path] = digest_bytes(raw)
    listing.update({path: digest_bytes(content) for path, content in added.items()})
    return listing


def promote(record: RunRecord, allow_packages: Iterable[str] = ()) -> PromotionResult:
    """Promote `record` to the production track; raise PromotionError listing why not.

    `allow_packages` are the reviewed waivers `mlrepro check --allow-package` takes,
    used for the gate report on the promoted run.
    """
    from repro_common import environment
    from repro_common.artifacts import announcement, stored_names
    from repro_common.gate import check_run, manifest_rule, stored_artifacts
    from repro_common.runs import ANNOUNCED_TAG
    from repro_common.snapshots import (
        local_mismatch,
        plan_snapshot,
        snapshot_record,
        snapshot_stored,
        verify_uploaded_snapshot,
    )
    from repro_common.spec import render_dockerfile
    from repro_common.tracks import PRODUCTION, run_track

    run = record.run_id or record.ref
    if record.kind == "manifest" or record.backend is None:
        raise PromotionError(
            f"{record.ref} is a manifest file, not a run: promote the MLflow run or W&B run directory"
        )
    integrity = manifest_rule(record)
    if not integrity.passed or record.manifest is None:
        raise PromotionError(f"{run}: cannot promote, {integrity.reason}", [integrity.reason])
    backend = record.backend
    manifest = copy.deepcopy(record.manifest)
    stored = stored_artifacts(record)

    plans = [plan_snapshot(item, manifest) for item in manifest.data]
    to_copy, problems = [], []
    for plan in plans:
        if plan.status == "missing":
            problems.append(f"{plan.name}: {plan.path} no longer exists")
        elif plan.status == "snapshot" and not snapshot_stored(plan.item, stored):
            mismatch = local_mismatch(plan)
            if mismatch:
                problems.append(mismatch)
            else:
                to_copy.append(plan)
    if problems:
        raise PromotionError(
            f"{run}: refusing to promote, the data changed since the run: " + "; ".join(problems),
            problems,
        )

    already_production = run_track(record) == PRODUCTION
    promoted_at = (
        (record.tags or {}).get("repro.promoted_at")
        or manifest.capture.get("promoted_at")
        or _now()
    )
    result = PromotionResult(run=run, already=False, promoted_at=str(promoted_at))
    result.referenced = [p.name for p in plans if p.status == "dvc"]
    result.notes += [p.reason for p in plans if not p.retrievable and p.status != "missing"]
    note = getattr(backend, "promotion_note", None)
    if note:
        result.notes.append(str(note))

    added: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="mlrepro-promote-") as tmp:
        folder = Path(tmp)
        if "repro/requirements.txt" not in stored:
            packages = manifest.environment.get("packages") or []
            try:
                text = environment.requirements_txt(packages).encode()
            except ValueError as exc:  # a package the record names cannot be written safely
                raise PromotionError(f"{run}: cannot promote, {exc}", [str(exc)]) from exc
            result.stored.append(_upload(backend, folder, "requirements.txt", text, "repro"))
            added["repro/requirements.txt"] = text
        if "repro/Dockerfile" not in stored:
            try:
                text = render_dockerfile(manifest).encode()
            except ValueError as exc:
                result.notes.append(f"no Dockerfile: {exc}")
            else:
                result.stored.append(_upload(backend, folder, "Dockerfile", text, "repro"))
                added["repro/Dockerfile"] = text
        for plan in to_copy:
            for local, name in plan.files:
                dest = "repro/" + name.rsplit("/", 1)[0]
                content = local.read_bytes()
                backend.log_artifact(str(local), dest)
                result.stored.append(f"repro/{name}")
                added[f"repro/{name}"] = content
            failure = verify_uploaded_snapshot(backend, plan)
            if failure:
                raise PromotionError(
                    f"{run}: snapshot check failed after upload: {failure}", [failure]
                )
            next(i for i in manifest.data if i.get("name") == plan.name)["snapshot"] = (
                snapshot_record(plan)
            )
            result.snapshots.append(plan.name)

        changed = bool(result.stored) or not already_production or manifest.track != PRODUCTION
        if changed:
            manifest.track = PRODUCTION
            if not already_production:
                manifest.capture.setdefault("promoted_at", str(promoted_at))
                manifest.capture.setdefault("promoted_from", record.manifest.track)
            manifest.artifacts = _listing(record, manifest, added)
            manifest.digest_version = DIGEST_VERSION
            manifest.refresh_digest()
            text = manifest.to_json().encode()
            result.stored.append(_upload(backend, folder, "manifest.json", text, "repro"))

    # The digest tag follows the manifest at once: the listing it covers has grown.
    tags = {DIGEST_TAG: manifest.digest, "repro.track": PRODUCTION}
    if not already_production:
        tags["repro.promoted_at"] = str(promoted_at)
    if ANNOUNCED_TAG in (record.tags or {}):  # what repro/ holds now (older runs have no such tag)
        tags[ANNOUNCED_TAG] = announcement(stored_names(stored | set(result.stored)))
    if any((record.tags or {}).get(k) != v for k, v in tags.items()):
        backend.set_tags(tags)
        record.tags = {**(record.tags or {}), **tags}
    result.already = not changed and already_production
    record.manifest = Manifest.from_dict(manifest.to_dict())
    result.report = check_run(record, PRODUCTION, allow_packages)
    return result
