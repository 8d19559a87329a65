"""The `repro.*` tags of an MLflow run: their names, MLflow's limits on them, their encoding.

The values come from the core's record summary (`repro_common.summary`); this module
only fits them into MLflow tags. MLflow imports the provider, and so this module,
while `import mlflow` is still running: it imports the standard library only, the
core lazily, and MLflow never.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro_common.manifest import Manifest

MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
MAX_TAG_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
# The names of repro_common.summary, spelled here so that importing this module loads no core.
ERRORS_TAG = "repro.capture.errors"
CAPTURE_ID_TAG = "repro.capture.id"
ARTIFACTS_TAG = "repro.artifacts"
TRACK_TAG = "repro.track"
MANIFEST_POINTER = " [full list: repro/manifest.json capture.errors]"
# MLflow's tag names (mlflow.utils.mlflow_tags), spelled here: importing them would load MLflow.
GIT_REPO_URL_TAG = "mlflow.source.git.repoURL"
LEGACY_GIT_REPO_URL_TAG = "mlflow.gitRepoURL"


def disabled() -> bool:
    """MLREPRO_DISABLE=1: no tags, no capture, no upload.

    Same rule as repro_common.capture.disabled(), read here without importing the core so
    that a disabled plugin costs `import mlflow` nothing.
    """
    return os.environ.get("MLREPRO_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")


def tag_key(name: str) -> str:
    """MLflow tag keys allow letters, digits and `_-. /` only, 250 characters at most."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_-. /") else "_" for c in name)
    return clean[:MAX_TAG_KEY]


def clip(value: Any) -> str:
    """A tag value cut to MLflow's limit, its end marked."""
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def errors_value(errors: list[dict[str, Any]], note: str | None = None) -> str | None:
    """One line per failure, the artifact note first; cut to fit a tag with a pointer to the rest."""
    parts = ([note] if note else []) + [
        f"{e.get('collector', '?')}: {e.get('error', '')}".strip() for e in errors
    ]
    if not parts:
        return None
    pointer = MANIFEST_POINTER if errors else ""
    text = "; ".join(parts)
    if len(text) + len(pointer) <= MAX_TAG_VALUE:
        return text + pointer
    kept: list[str] = []
    for index, part in enumerate(parts):
        more = f"; ... {len(parts) - index} more"
        if len("; ".join([*kept, part])) + len(more) + len(pointer) > MAX_TAG_VALUE:
            budget = MAX_TAG_VALUE - len(more) - len(pointer) - len("; ".join(kept)) - 2
            if not kept and budget > 20:
                kept.append(part[:budget] + "...")
                index += 1
                more = f"; ... {len(parts) - index} more" if index < len(parts) else ""
            return "; ".join(kept) + more + pointer
        kept.append(part)
    return "; ".join(kept) + pointer  # pragma: no cover - loop always returns once too long


def manifest_tags(manifest: Manifest) -> dict[str, str]:
    """The record summary as tags, and what the run's `repro/` will hold (no capture id, no
    errors). Set when the run is created: they travel with `create_run`, at no extra request."""
    from repro_common import summary as record_summary
    from repro_common.artifacts import announced_names, announcement

    values = record_summary.summary(manifest)
    # An MLflow tag needs a name after `repro.data.`.
    values[record_summary.DATA] = {
        name: fingerprint for name, fingerprint in values[record_summary.DATA].items() if name
    }
    tags = {
        record_summary.MANIFEST_DIGEST: manifest.digest,
        record_summary.TRACK: manifest.track,
    }
    try:
        tags[ARTIFACTS_TAG] = announcement(announced_names(manifest))
    except Exception:  # readers still see a missing manifest by the digest tag alone
        pass
    tags.update(record_summary.summary_tags(values))
    reproduces = record_summary.reproduces()
    if reproduces:
        tags[record_summary.REPRODUCES] = reproduces
    return {tag_key(k): clip(v) for k, v in tags.items()}
