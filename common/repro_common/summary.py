"""One summary of a record, keyed by the `repro.*` names every tracker shows.

MLflow writes it as tags, W&B as `config["repro"]`, and the W&B reader turns that
config back into tags: all three start here, so they can never disagree on what a
value is or when it is absent. Adapters read a record's sections through these
accessors instead of walking its dicts by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from repro_common.manifest import Manifest

MANIFEST_DIGEST = "repro.manifest.digest"
TRACK = "repro.track"
ENV_DIGEST = "repro.env.digest"
PYTHON = "repro.env.python"
GIT_COMMIT = "repro.git.commit"
GIT_DIRTY = "repro.git.dirty"
SEED = "repro.seed"
DATA = (
    "repro.data"  # in a summary: {input name: fingerprint}; as tags: one `repro.data.<name>` each
)
REPRODUCES = "repro.reproduces"
CAPTURE_ERRORS = "repro.capture.errors"
CAPTURE_ID = "repro.capture.id"
ARTIFACTS = "repro.artifacts"
REPRODUCES_ENV = "MLREPRO_REPRODUCES"


def _present(value: Any) -> str | None:
    return str(value) if value else None


def env_digest(manifest: Manifest) -> str | None:
    return _present(manifest.environment.get("digest"))


def python_version(manifest: Manifest) -> str | None:
    python = manifest.environment.get("python")
    return _present(python.get("version") if isinstance(python, dict) else None)


def commit(manifest: Manifest) -> str | None:
    return _present(manifest.code.get("commit"))


def dirty(manifest: Manifest) -> bool | None:
    """True/False as git said; None when the record does not know."""
    value = manifest.code.get("dirty")
    return value if isinstance(value, bool) else None


def remote(manifest: Manifest) -> str | None:
    """The git remote the code came from (credentials already stripped at capture)."""
    value = manifest.code.get("remote")
    return value if isinstance(value, str) and value else None


def rank_seeds(manifest: Manifest) -> dict[str, Any] | None:
    """The per-rank seeds of a distributed run (`seeds.ranks`), None for one process."""
    ranks = manifest.seeds.get("ranks")
    return ranks if isinstance(ranks, dict) else None


def global_seed(manifest: Manifest) -> Any:
    """The seed the run was given (an int in a valid record; 0 is a seed), None when none."""
    return manifest.seeds.get("global")


def trainer_seeds(manifest: Manifest) -> dict[str, Any] | None:
    """The seeds a Hugging Face Trainer gave itself (`seeds.trainer`), None without a Trainer."""
    trainer = manifest.seeds.get("trainer")
    return trainer if isinstance(trainer, dict) else None


def fingerprinted_inputs(manifest: Manifest) -> dict[Any, str]:
    """Input name -> fingerprint, for the inputs that have one (the others say why in the record)."""
    return {
        item["name"]: item["fingerprint"]
        for item in manifest.data
        if "name" in item and item.get("fingerprint")
    }


def reproduces() -> str | None:
    """The run this process reproduces (`mlrepro reproduce` sets MLREPRO_REPRODUCES), if any."""
    return os.environ.get(REPRODUCES_ENV, "").strip() or None


def summary(manifest: Manifest) -> dict[str, Any]:
    """The record's summary: its values as recorded (None when absent), `repro.data` a dict."""
    return {
        MANIFEST_DIGEST: manifest.digest,
        ENV_DIGEST: env_digest(manifest),
        PYTHON: python_version(manifest),
        GIT_COMMIT: commit(manifest),
        GIT_DIRTY: dirty(manifest),
        SEED: global_seed(manifest),
        TRACK: manifest.track,
        DATA: fingerprinted_inputs(manifest),
    }


def summary_tags(values: Mapping[str, Any]) -> dict[str, str]:
    """A summary as text tags: absent values left out, `repro.git.dirty` only when a bool,
    `repro.data` spread into one `repro.data.<name>` per input."""
    tags: dict[str, str] = {}
    for name, value in values.items():
        if name == DATA:
            for input_name, fingerprint in (value or {}).items():
                tags[f"{DATA}.{input_name}"] = str(fingerprint)
        elif name == GIT_DIRTY:
            if isinstance(value, bool):
                tags[name] = "true" if value else "false"
        elif value is not None:
            tags[name] = str(value)
    return tags
