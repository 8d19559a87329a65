"""mlrepro's warnings reach the user after `mlflow.pytorch.autolog()`, once, whatever the host did.

MLflow's autolog calls `logging.basicConfig(level=logging.ERROR)`: before the
`mlrepro` logger had a level and handler of its own, the production track's run-start
warnings vanished. Real autolog, real SQLite store, a fresh interpreter each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.procs import clean_env, run_python

SCRIPT = """\
import logging
import sys

import mlflow
import mlflow.pytorch

mlflow.pytorch.autolog()
assert logging.getLogger().level == logging.ERROR  # what autolog did to the host's logging
if sys.argv[1] == "quiet-root":
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.CRITICAL)  # the host silences its own handler too
with mlflow.start_run():
    mlflow.log_metric("loss", 0.5)
"""

WARNING = "mlrepro production track: seeds: no global seed recorded"


@pytest.mark.slow
@pytest.mark.parametrize("host", ["autolog", "quiet-root"])
def test_production_warnings_are_printed_once_after_autolog(tmp_path: Path, host: str) -> None:
    proc = run_python(
        SCRIPT,
        cwd=tmp_path,
        env=clean_env(
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", MLREPRO_TRACK="production"
        ),
        args=[host],
    )
    assert proc.stderr.count(WARNING) == 1, proc.stderr
