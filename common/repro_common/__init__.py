"""mlrepro core: capture the environment, code, seeds and data behind a run.

Knows no tracker; the MLflow and W&B adapters put this record where users look.
Importing it is cheap: numpy, torch, pandas and the trackers are only touched
when the user already uses them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from repro_common.logs import install as _install_logging  # noqa: E402

_install_logging()

from repro_common.capture import capture, reset_cache  # noqa: E402
from repro_common.determinism import check_determinism  # noqa: E402
from repro_common.fingerprints import fingerprint  # noqa: E402
from repro_common.inputs import track_data  # noqa: E402
from repro_common.manifest import Manifest  # noqa: E402
from repro_common.seeds import derive_seed, seed_everything  # noqa: E402
from repro_common.table_inputs import data_version  # noqa: E402

__all__ = [
    "Manifest",
    "__version__",
    "capture",
    "check_determinism",
    "data_version",
    "derive_seed",
    "fingerprint",
    "reset_cache",
    "seed_everything",
    "track_data",
]
