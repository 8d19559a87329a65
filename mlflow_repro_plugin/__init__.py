"""MLflow adapter for mlrepro: every MLflow run carries its reproducibility record.

Installing the package is enough: MLflow loads `provider.ReproRunContextProvider`
through the `mlflow.run_context_provider` entry point. This package re-exports
the core, so `import mlflow_repro_plugin as repro` gives `repro.track_data(...)`
and friends. Importing it does not import mlflow.
"""

from __future__ import annotations

from mlflow_repro_plugin.uploader import flush
from repro_common import (
    Manifest,
    capture,
    check_determinism,
    derive_seed,
    fingerprint,
    seed_everything,
    track_data,
)

# Production gate (mlflow_repro_plugin/gate.py) is re-exported here by its owner.

__all__ = [
    "Manifest",
    "capture",
    "check_determinism",
    "derive_seed",
    "fingerprint",
    "flush",
    "seed_everything",
    "track_data",
]
