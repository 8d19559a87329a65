"""Real W&B SDK, offline, inside each test's tmp dir, torn down after every test.

What it takes to make the SDK behave under pytest: every directory it writes
pointed into tmp (the root `wandb_offline` fixture); console capture off (so W&B
does not wrap the stdout pytest has already redirected); `run.finish()` on every run even when
the test fails; `wandb.teardown()` after each test, or the process-wide
`wandb.setup()` singleton keeps the first test's root dir for every later run; and
reading the transaction log only once its `exit` record is there, because
`run.finish()` returns before wandb-core has flushed it (support/wandb_log.py waits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def wandb_dir(wandb_offline: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_PROJECT", "mlrepro-tests")
    yield wandb_offline
    import wandb

    if wandb.run is not None:
        wandb.run.finish()
    wandb.teardown()


@pytest.fixture
def new_run(wandb_dir: Path) -> Iterator[Callable[..., Any]]:
    """Start offline runs; every one is finished at the end of the test, pass or fail."""
    import wandb

    runs: list[Any] = []

    def start(**kwargs: Any) -> Any:
        run = wandb.init(dir=str(wandb_dir), **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.finish()


@pytest.fixture(autouse=True)
def _no_tracked_inputs() -> Iterator[None]:
    """track_data() registers inputs for the whole process; each test starts with none."""
    from support.inputs_registry import clear_registry

    clear_registry()
    yield
    clear_registry()
