"""The files that travel with a run, the same for every tracker."""

from __future__ import annotations

from repro_common.manifest import Manifest

MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.txt"
CODE_DIFF = "code.diff"
ARTIFACT_DIR = "repro"


def artifact_files(manifest: Manifest) -> dict[str, bytes]:
    """Relative name -> content, for the `repro/` folder of a run."""
    from repro_common import code, environment

    files = {MANIFEST: manifest.to_json().encode()}
    files[REQUIREMENTS] = environment.requirements_txt(
        manifest.environment.get("packages") or []
    ).encode()
    diff = code.diff_text(manifest.code)
    if diff:
        files[CODE_DIFF] = diff.encode()
    return files
