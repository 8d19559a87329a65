"""MLflow adapter for mlrepro: every MLflow run carries its reproducibility record.

Installing the package is enough: MLflow loads `provider.ReproRunContextProvider`
through the `mlflow.run_context_provider` entry point. This package re-exports
the core, so `import mlflow_repro_plugin as repro` gives `repro.track_data(...)`
and friends. Importing it does not import mlflow, and the names are resolved on
first use: MLflow imports this package inside every `import mlflow`, even with
MLREPRO_DISABLE=1 or in the tracking server, where the core is never needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from repro_common.registration import ReproducibilityError, require_reproducible

_EXPORTS = {
    "Manifest": "repro_common",
    "capture": "repro_common",
    "check_determinism": "repro_common",
    "derive_seed": "repro_common",
    "fingerprint": "repro_common",
    "seed_everything": "repro_common",
    "track_data": "repro_common",
    "flush": "mlflow_repro_plugin.uploader",
    "require_reproducible": "repro_common.registration",
    "ReproducibilityError": "repro_common.registration",
}

__all__ = [
    "Manifest",
    "ReproducibilityError",
    "capture",
    "check_determinism",
    "derive_seed",
    "fingerprint",
    "flush",
    "require_reproducible",
    "seed_everything",
    "track_data",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
