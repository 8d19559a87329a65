"""Hugging Face Trainer callback: the record goes into the W&B run the Trainer's WandbCallback made.

`Trainer(..., report_to=["wandb"], callbacks=[ReproCallback()])`. The record is written
once per run, from the main process only (`state.is_world_process_zero`); the other
ranks post their seeds for it. The Trainer's seeds (`args.seed`, `data_seed`,
`full_determinism`, whether the model was built before seeding) and its train/eval
datasets come from the core (repro_common.hf_trainer), as they do for MLflow.

WandbCallback creates the run in its own `on_train_begin`; when it comes after this
callback in the list, there is no run yet, so the record waits for the next event
(the first step, or the end of training at the latest). transformers is imported
when the callback is built, never when this module is.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from repro_common.capture import prefetch
from repro_common.isolation import guarded
from wandb_repro_plugin.core import active_run, check_track, record_run, require_host, warn

EXTRA = "transformers"
# Rank zero waits this long at most for the other ranks' seeds (posted when their process
# group came up, normally long before training starts).
RANK_WAIT_S = 10.0


class ReproCallback:
    """`Trainer(..., callbacks=[ReproCallback()])`: the mlrepro record in the Trainer's W&B run.

    An instance is a `transformers.TrainerCallback`; building one creates (once) that subclass.
    `data` adds inputs by name; the Trainer's own datasets are tracked as `train` and `eval`
    unless an input of that name is tracked already.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ReproCallback:
        if cls is ReproCallback:
            cls = _callback_class()
        return super().__new__(cls)

    def __init__(self, track: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        self.track = check_track(track)
        self.data = dict(data or {})
        self._recorded_run: Any = None
        self._posted = False
        prefetch()  # environment and code are read while the model is built; ranks post seeds

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReproCallback, (self.track, self.data))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._try(state, "train begin")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._recorded_run is None:  # WandbCallback came after us: its run exists now
            self._try(state, "step begin")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._recorded_run is None:  # a run with no step: the last chance
            self._try(state, "train end", last=True)

    def _try(self, state: Any, event: str, last: bool = False) -> None:
        try:
            if not getattr(state, "is_world_process_zero", True):
                if not self._posted:  # the Trainer has seeded this rank by now
                    self._posted = True
                    post_rank_seed()
                return
            run = active_run()
            if run is None and not last:
                return  # WandbCallback has not created it yet: the next event records it
            if run is not None and run is self._recorded_run:
                return
            self._record(run)
        except Exception as exc:  # the Trainer does not protect training from callbacks
            warn(f"ReproCallback failed at {event} ({type(exc).__name__}: {exc}); training goes on")

    def _record(self, run: Any) -> None:
        errors: list[dict[str, Any]] = []
        ranks = guarded("ranks", rank_seeds, None, errors)
        manifest = record_run(run, track=self.track, data=self.data, ranks=ranks, errors=errors)
        if manifest is not None or run is None:
            self._recorded_run = run if run is not None else False


def rank_seeds() -> dict[str, Any] | None:
    """seeds.ranks with the seeds the other ranks posted (None in a single process)."""
    from repro_common import seeds

    scratch: list[dict[str, Any]] = []
    ranks = seeds.collect_seeds(scratch).get("ranks") or {}
    if int(ranks.get("world_size") or 1) <= 1:
        return None
    return seeds.await_rank_seeds(ranks, RANK_WAIT_S)


def post_rank_seed() -> None:
    """On a rank that is not the main one: put its seed where rank zero reads it (a store
    write, no collective: nothing waits on it)."""
    from repro_common import seeds

    seeds.collect_seeds([])


@functools.cache
def _callback_class() -> type[ReproCallback]:
    require_host(EXTRA, "wandb", "transformers")
    import transformers

    base = transformers.TrainerCallback

    class TrainerReproCallback(ReproCallback, base):  # type: ignore[misc, valid-type]
        __doc__ = ReproCallback.__doc__

        def __init__(self, track: str | None = None, data: Mapping[str, Any] | None = None) -> None:
            ReproCallback.__init__(self, track=track, data=data)

    return TrainerReproCallback
