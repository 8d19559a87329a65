"""Real W&B SDK, offline, inside each test's tmp dir, torn down after every test.

What it takes to make the SDK behave under pytest: every directory it writes
pointed into tmp (the root `wandb_offline` fixture), console capture off (W&B's
stdout wrapper and pytest's capture fight), `run.finish()` on every run even when
the test fails, and `wandb.teardown()` so the next test starts a fresh service with
its own settings instead of inheriting the first test's directories.
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
    from repro_common import data

    data.clear_registry()
    yield
    data.clear_registry()
