"""W&B adapter: the mlrepro record in every W&B run (config, artifact, run files).

`import wandb_repro_plugin as repro` gives the core names plus `attach(run)`, and the
gate's `require_reproducible(run_dir)` as the MLflow adapter has it.
Importing it imports neither wandb, keras nor lightning: the callbacks live in
`wandb_repro_plugin.keras` and `wandb_repro_plugin.lightning` and load their host
when built.
"""

from __future__ import annotations

from repro_common import (
    Manifest,
    capture,
    check_determinism,
    derive_seed,
    fingerprint,
    seed_everything,
    track_data,
)
from repro_common.registration import ReproducibilityError, require_reproducible
from wandb_repro_plugin.core import ARTIFACT_TYPE, ReproWarning, attach
from wandb_repro_plugin.registry import link_model

__all__ = [
    "ARTIFACT_TYPE",
    "Manifest",
    "ReproWarning",
    "ReproducibilityError",
    "attach",
    "capture",
    "check_determinism",
    "derive_seed",
    "fingerprint",
    "link_model",
    "require_reproducible",
    "seed_everything",
    "track_data",
]
