"""Keras 3 on the torch backend: model.fit with our callback next to W&B metric logging.

W&B's own `WandbMetricsLogger` imports TensorFlow at import time (wandb 0.31), and
the suite does not install TensorFlow, so `MetricsToWandb` below does the same job
in three lines: log each epoch's metrics to the run, as W&B's callback would.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

import wandb_repro_plugin as repro
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
