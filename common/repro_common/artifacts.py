"""The files that travel with a run, the same for every tracker.

Every run: `manifest.json`, `requirements.txt`, `code.diff` (when dirty). A run on
the production track adds its environment spec (`Dockerfile`) and the data
snapshot (`data/<name>/...`, inputs without a DVC reference and under the
snapshot limit; see repro_common.tracks). Snapshot files are included only when
the data still matches its recorded fingerprint, so a copy is never mislabelled.
"""

from __future__ import annotations

import copy
import logging

from repro_common.manifest import Manifest

MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.txt"
CODE_DIFF = "code.diff"
DOCKERFILE = "Dockerfile"
ARTIFACT_DIR = "repro"

log = logging.getLogger("mlrepro")


def artifact_files(manifest: Manifest) -> dict[str, bytes]:
    """Relative name -> content, for the `repro/` folder of a run.

    The one place that decides what a run stores: it also lists every file's blake3
    in `manifest.artifacts` and re-digests `manifest` in place, so the digest the
    caller tags the run with covers the exact bytes uploaded.
    """
    from repro_common import code, environment

    extras: dict[str, bytes] = {}
    if manifest.track == "production":
        extras = production_files(manifest)
    files: dict[str, bytes] = {}
    files[REQUIREMENTS] = environment.requirements_txt(
        manifest.environment.get("packages") or []
    ).encode()
    diff = code.diff_text(manifest.code)
    if diff:
        files[CODE_DIFF] = diff.encode()
    files.update(extras)
    manifest.list_artifacts(files)
    # The manifest first: a writer that stops half-way still leaves the record.
    return {MANIFEST: manifest.to_json().encode(), **files}


def production_files(manifest: Manifest) -> dict[str, bytes]:
    """The environment spec and data snapshot; notes each snapshot in `manifest` (in its digest)."""
    from repro_common.spec import render_dockerfile
    from repro_common.tracks import local_mismatch, plan_snapshot, snapshot_record

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
