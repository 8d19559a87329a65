"""The record summary as W&B's run config (`config["repro"]`), and back to `repro.*` tags.

W&B users filter and group runs by config keys, so the summary gets short key
names there; the reader maps them back through the same table, so what
`mlrepro show <run-dir>` reports is what MLflow would have tagged.
"""

from __future__ import annotations

from typing import Any

from repro_common import summary as record_summary
from repro_common.manifest import Manifest

CONFIG_KEY = "repro"
ARTIFACT_PREFIX = "repro-"
# config key -> summary name, in the order the config has always had them.
CONFIG_NAMES = {
    "manifest_digest": record_summary.MANIFEST_DIGEST,
    "env_digest": record_summary.ENV_DIGEST,
    "python": record_summary.PYTHON,
    "git_commit": record_summary.GIT_COMMIT,
    "git_dirty": record_summary.GIT_DIRTY,
    "seed": record_summary.SEED,
    "track": record_summary.TRACK,
    # Fingerprinted inputs, as the MLflow tags have them; the others are in `data_skipped`.
    "data": record_summary.DATA,
    "reproduces": record_summary.REPRODUCES,
}


def artifact_name(manifest: Manifest) -> str:
    """Content address: the same record (same digest) always gets the same artifact name."""
    return ARTIFACT_PREFIX + manifest.digest.split(":", 1)[-1][:32]


def config_summary(manifest: Manifest) -> dict[str, Any]:
    """The few fields people filter and group runs by in the W&B UI."""
    values = record_summary.summary(manifest)
    config = {key: values[name] for key, name in CONFIG_NAMES.items() if name in values}
    config["artifact"] = artifact_name(manifest)
    trainer = record_summary.trainer_seeds(manifest)
    if trainer is not None:  # a Hugging Face Trainer's own seeds
        config["trainer"] = trainer
    return config


def config_tags(config: dict[str, Any]) -> dict[str, str]:
    """The `repro.*` tags a run's `config["repro"]` stands for."""
    values = {
        name: config.get(key) for key, name in CONFIG_NAMES.items() if name != record_summary.DATA
    }
    tags = record_summary.summary_tags(values)
    errors = config.get("capture_errors")
    if isinstance(errors, list) and errors:
        tags[record_summary.CAPTURE_ERRORS] = "; ".join(
            f"{e.get('collector', '?')}: {e.get('error', '')}"
            for e in errors
            if isinstance(e, dict)
        )
    tags.update(record_summary.summary_tags({record_summary.DATA: config.get("data")}))
    return tags
