"""The files that travel with a run, the same for every tracker.

What a tracker stores in a run's `repro/` (`record_files`), decided per track so
that a shared server pays one request for an exploratory run:

- exploratory: `manifest.json`, and `code.diff` only when the tree was dirty;
- production adds `requirements.txt`, the environment spec (`Dockerfile`) and the
  data snapshot (`data/<name>/...`, inputs without a DVC reference and under the
  snapshot limit; see repro_common.tracks). Snapshot files are included only when
  the data still matches its recorded fingerprint, so a copy is never mislabelled.

`requirements.txt` is the manifest's package list written out, so `reproduce` and
`promote` write it from the manifest for any run. Every tracker stores the same
files, so one training logged to MLflow and W&B has one manifest digest; only a
local folder (`mlrepro capture -o`) keeps `requirements.txt` on every track
(`artifact_files`).

`announced_names` says, from the manifest alone and before anything is uploaded,
which names `record_files` will store: trackers put it in a tag set when the run
is created, so a reader that finds the tag but not the files knows the upload never
landed. Snapshots are announced as one `data/*` (the files are listed in the
manifest's `data[].snapshot`), which keeps the tag short whatever the inputs.
"""

from __future__ import annotations

import copy
import logging

from repro_common.manifest import ARTIFACT_DIR, MANIFEST, Manifest

REQUIREMENTS = "requirements.txt"
CODE_DIFF = "code.diff"
DOCKERFILE = "Dockerfile"
SNAPSHOTS = "data/*"
SEPARATOR = ","

log = logging.getLogger("mlrepro")


def record_files(manifest: Manifest, *, with_requirements: bool = False) -> dict[str, bytes]:
    """Relative name -> content: what a tracker stores in the run's `repro/` folder.

    The one place that decides what a run stores: it also lists every file's blake3
    in `manifest.artifacts` and re-digests `manifest` in place, so the digest the
    caller tags the run with covers the exact bytes uploaded.
    """
    from repro_common import code

    extras: dict[str, bytes] = {}
    if manifest.track == "production":
        extras = production_files(manifest)
    files: dict[str, bytes] = {}
    if with_requirements or manifest.track == "production":
        files[REQUIREMENTS] = requirements(manifest)
    diff = code.diff_text(manifest.code)
    if diff:
        files[CODE_DIFF] = diff.encode()
    files.update(extras)
    manifest.list_artifacts(files)
    # The manifest first: a writer that stops half-way still leaves the record.
    return {MANIFEST: manifest.to_json().encode(), **files}


def artifact_files(manifest: Manifest) -> dict[str, bytes]:
    """`record_files` plus `requirements.txt` on every track: for a local folder."""
    return record_files(manifest, with_requirements=True)


def requirements(manifest: Manifest) -> bytes:
    """The pinned `requirements.txt` of the recorded packages (what any run's manifest holds)."""
    from repro_common import environment

    return environment.requirements_txt(manifest.environment.get("packages") or []).encode()


def announced_names(manifest: Manifest) -> list[str]:
    """The names `record_files(manifest)` stores, judged cheaply (no file is read or hashed).

    A snapshot that turns out not to match its fingerprint at upload time is left out
    of the files but not of the announcement: `data/*` promises only what the stored
    manifest lists, and the gate's data rule judges that.
    """
    from repro_common import code

    names = [MANIFEST]
    if code.diff_text(manifest.code):
        names.append(CODE_DIFF)
    if manifest.track == "production":
        from repro_common.snapshots import plan_snapshot
        from repro_common.spec import python_base_image

        names.append(REQUIREMENTS)
        if python_base_image(manifest) is not None:  # render_dockerfile's only refusal
            names.append(DOCKERFILE)
        if any(plan_snapshot(item, manifest).status == "snapshot" for item in manifest.data):
            names.append(SNAPSHOTS)
    return names


def announcement(names: list[str]) -> str:
    """The tag value for `names`: `manifest.json,code.diff`."""
    return SEPARATOR.join(names)


def stored_names(paths: set[str]) -> list[str]:
    """The announcement of what `repro/...` paths a run holds (snapshot files as one `data/*`)."""
    prefix = f"{ARTIFACT_DIR}/"
    names = {p[len(prefix) :] for p in paths if p.startswith(prefix)}
    top = sorted(n for n in names if "/" not in n and n != MANIFEST)
    snapshots = [SNAPSHOTS] if any(n.startswith("data/") for n in names) else []
    return ([MANIFEST] if MANIFEST in names else []) + top + snapshots


def parse_announcement(value: str | None) -> list[str] | None:
    """The names a `repro.artifacts` tag announces; None when there is no tag (older runs)."""
    if value is None:
        return None
    return [name.strip() for name in value.split(SEPARATOR) if name.strip()]


def missing_announced(announced: list[str], stored: set[str]) -> list[str]:
    """`repro/<name>` of each announced file not stored (snapshots are the data rule's to judge)."""
    return [
        f"{ARTIFACT_DIR}/{name}"
        for name in announced
        if name != SNAPSHOTS and f"{ARTIFACT_DIR}/{name}" not in stored
    ]


def production_files(manifest: Manifest) -> dict[str, bytes]:
    """The environment spec and data snapshot; notes each snapshot in `manifest` (in its digest)."""
    from repro_common.snapshots import local_mismatch, plan_snapshot, snapshot_record
    from repro_common.spec import render_dockerfile

    files: dict[str, bytes] = {}
    manifest.data = copy.deepcopy(manifest.data)  # the registry's items stay as they were
    try:
        files[DOCKERFILE] = render_dockerfile(manifest).encode()
    except ValueError as exc:
        log.warning("mlrepro: no Dockerfile for this run: %s", exc)
    for item in manifest.data:
        plan = plan_snapshot(item, manifest)
        if plan.status != "snapshot":
            continue
        mismatch = local_mismatch(plan)
        if mismatch:
            log.warning("mlrepro: no snapshot of %s", mismatch)
            continue
        for local, name in plan.files:
            files[name] = local.read_bytes()
        item["snapshot"] = snapshot_record(plan)
    return files
