"""Keras 3 on the torch backend: model.fit with our callback next to W&B metric logging.

W&B's own `WandbMetricsLogger` imports TensorFlow at import time (wandb 0.31), and
the suite does not install TensorFlow, so `MetricsToWandb` below does the same job
in three lines: log each epoch's metrics to the run, as W&B's callback would.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest

import wandb_repro_plugin as repro
from support.procs import PYTHON, clean_env
from support.wandb_log import read_run
from wandb_repro_plugin import core

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # must precede the first keras import
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


def fit(keras, callbacks, epochs=2):
    import numpy as np

    from wandb_repro_plugin.keras import ReproCallback

    class MetricsToWandb(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            import wandb

            if wandb.run is not None:
                wandb.run.log({"epoch": epoch, **(logs or {})})

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    built = [ReproCallback(data={"train": (x, y)}) if c == "repro" else c for c in callbacks]
    history = model.fit(
        x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[*built, MetricsToWandb()]
    )
    return history, x, y, built[0]


def test_fit_puts_the_record_in_the_run(keras, new_run):
    from wandb_repro_plugin.keras import ReproCallback

    run = new_run()
    history, x, y, callback = fit(keras, ["repro"])
    assert isinstance(callback, ReproCallback) and isinstance(callback, keras.callbacks.Callback)
    run.finish()

    log = read_run(Path(run.dir).parent)
    summary = log.config["repro"]
    assert summary["data"]["train.x"] == repro.fingerprint(x)
    assert summary["data"]["train.y"] == repro.fingerprint(y)
    assert summary["manifest_digest"].startswith("blake3:")
    (artifact,) = log.artifacts_of_type("repro-manifest")
    assert artifact["name"] == summary["artifact"]
    assert (Path(run.dir) / "repro" / "manifest.json").is_file()
    assert log.record_types.count("history") == len(history.history["loss"]) == 2


def test_no_active_run_warns_once_and_training_goes_on(keras, wandb_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history, *_ = fit(keras, ["repro"])
    assert len(history.history["loss"]) == 2
    ours = [w for w in caught if issubclass(w.category, repro.ReproWarning)]
    assert len(ours) == 1 and "no active W&B run" in str(ours[0].message)


def test_failure_inside_the_callback_is_recorded_and_training_goes_on(keras, new_run, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(core, "capture", boom)
    run = new_run()
    with pytest.warns(repro.ReproWarning) as caught:
        history, *_ = fit(keras, ["repro"])
    assert len([w for w in caught if issubclass(w.category, repro.ReproWarning)]) == 1
    assert len(history.history["loss"]) == 2
    run.finish()

    log = read_run(Path(run.dir).parent)
    assert {"collector": "capture", "error": "RuntimeError: injected failure"} in log.config[
        "repro"
    ]["capture_errors"]
    assert log.record_types.count("history") == 2


KERAS_FIT = """
import os, sys
import numpy as np
import keras
import wandb
from wandb_repro_plugin.keras import ReproCallback

table_path = sys.argv[1]
table = np.loadtxt(table_path, delimiter=",", dtype="float32")
x, y = table[:, :4], table[:, 4:]
run = wandb.init(project="mlrepro-tests")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy")
callback = ReproCallback(data={"train": (x, y), "table": table_path}, track="production")
model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
run.finish()
print("BACKEND", keras.backend.backend(), flush=True)
print("RUN_DIR", os.path.dirname(run.dir), flush=True)
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_any_backend_on_the_production_track_stores_dockerfile_and_data_snapshot(
    backend: str, wandb_dir: Path, tmp_path: Path
) -> None:
    """README: "Keras 3, any backend" (the two this suite installs: torch and JAX, on CPU), and
    `track="production"` stores a Dockerfile and a copy of each input small enough to copy."""
    pytest.importorskip(backend)
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    table = tmp_path / "table.csv"
    np.savetxt(table, np.hstack([x, (x.sum(axis=1, keepdims=True) > 0)]), delimiter=",")
    # The backend is fixed at keras's first import: one fresh process per backend.
    proc = subprocess.run(
        [PYTHON, "-c", KERAS_FIT, str(table)],
        env=clean_env(KERAS_BACKEND=backend, MLREPRO_CACHE_DIR=os.environ["MLREPRO_CACHE_DIR"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"BACKEND {backend}" in proc.stdout
    run_dir = Path(proc.stdout.split("RUN_DIR ", 1)[1].split("\n", 1)[0])

    log = read_run(run_dir)
    summary = log.config["repro"]
    assert summary["track"] == "production"
    assert summary["data"]["table"] == repro.fingerprint(str(table))
    assert set(summary["data"]) == {"table", "train.x", "train.y"}
    (artifact,) = log.artifacts_of_type("repro-manifest")
    files = {name: Path(staged).read_bytes() for name, staged in artifact["files"].items()}
    from repro_common.manifest import Manifest
    from repro_common.spec import render_dockerfile

    manifest = Manifest.from_json(files["manifest.json"])
    assert files["Dockerfile"].decode() == render_dockerfile(manifest)
    assert b"\nFROM python:" in files["Dockerfile"]
    snapshots = {name: body for name, body in files.items() if name.startswith("data/")}
    assert snapshots == {"data/table/table.csv": table.read_bytes()}, sorted(files)
