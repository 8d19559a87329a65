"""Keras 3 callback (any backend): the record goes into the W&B run when training begins.

Keras does not hand callbacks the training arrays, so inputs are given to the
callback (`data={"train": (x, y)}`) or registered earlier with `track_data`.
Keras is imported when the callback is built, never when this module is.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from repro_common.capture import prefetch
from wandb_repro_plugin.core import active_run, check_track, record_run, require_host, warn

EXTRA = "keras"
_FIT_ARGUMENTS = ("x", "y", "sample_weight")


class ReproCallback:
    """`model.fit(..., callbacks=[ReproCallback(data={"train": (x, y)})])`.

    An instance is a `keras.callbacks.Callback`: building one creates (once) the
    subclass that also derives from Keras's base class, which needs keras imported.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ReproCallback:
        if cls is ReproCallback:
            cls = _keras_class()
        return super().__new__(cls)

    def __init__(self, data: Mapping[str, Any] | None = None, track: str | None = None) -> None:
        self.data = dict(data or {})
        self.track = check_track(track)
        self._recorded_run: Any = None
        prefetch()  # environment and code are read while the model is being built

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReproCallback, (self.data, self.track))

    def on_train_begin(self, logs: Any = None) -> None:
        try:
            run = active_run()
            if run is not None and run is self._recorded_run:
                return  # a second fit() in the same run: recorded already
            record_run(run, track=self.track, data=fit_inputs(self.data))
            self._recorded_run = run
        except Exception as exc:  # Keras does not protect training from callbacks
            warn(
                f"ReproCallback failed at train begin ({type(exc).__name__}: {exc}); training goes on"
            )


def fit_inputs(data: Mapping[str, Any]) -> dict[str, Any]:
    """Name the parts of `(x, y[, sample_weight])` tuples as `fit()` does: train.x, train.y."""
    named: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, tuple) and 1 <= len(value) <= len(_FIT_ARGUMENTS):
            named.update(
                {
                    f"{name}.{part}": v
                    for part, v in zip(_FIT_ARGUMENTS, value, strict=False)
                    if v is not None
                }
            )
        else:
            named[name] = value
    return named


@functools.cache
def _keras_class() -> type[ReproCallback]:
    require_host(EXTRA, "wandb", "keras")
    import keras

    class KerasReproCallback(ReproCallback, keras.callbacks.Callback):
        __doc__ = ReproCallback.__doc__

        def __init__(self, data: Mapping[str, Any] | None = None, track: str | None = None) -> None:
            keras.callbacks.Callback.__init__(self)
            ReproCallback.__init__(self, data=data, track=track)

    return KerasReproCallback
