"""Lightning callback: the record goes into the W&B run when training starts, from rank zero.

Lightning does not protect the trainer from a callback's exceptions, so every
hook here catches its own. The run is the trainer's `WandbLogger` run when there
is one, else `wandb.run`. Lightning (`lightning.pytorch` or `pytorch_lightning`,
whichever the user imports) is loaded when the callback is built.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Mapping
from typing import Any

from repro_common.capture import prefetch
from repro_common.inputs import collect_data
from repro_common.isolation import guarded
from wandb_repro_plugin.core import active_run, check_track, record_run, require_host, warn

EXTRA = "lightning"


class ReproCallback:
    """`Trainer(logger=WandbLogger(...), callbacks=[ReproCallback()])`.

    An instance is a Lightning `Callback` of the Lightning package the user has;
    building one creates (once) that subclass.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ReproCallback:
        if cls is ReproCallback:
            require_host(EXTRA, "wandb")
            cls = _callback_class(_lightning_package())
        return super().__new__(cls)

    def __init__(self, track: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        self.track = check_track(track)
        self.data = dict(data or {})
        self._recorded_run: Any = None
        prefetch()  # environment and code are read while the model is being built

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReproCallback, (self.track, self.data))

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        try:
            self._record(trainer)
        except Exception as exc:
            warn(
                f"ReproCallback failed at train start ({type(exc).__name__}: {exc}); training goes on"
            )

    def _record(self, trainer: Any) -> None:
        errors: list[dict[str, Any]] = []
        # a collective: every rank takes part before the others leave
        ranks = guarded("ranks", lambda: rank_seeds(trainer), None, errors)
        if not trainer.is_global_zero:
            return
        run = wandb_run(trainer)
        if run is not None and run is self._recorded_run:
            return
        skipped: dict[str, str] = {}
        found: dict[str, Any] = {}
        guarded("datasets", lambda: found.update(trainer_datasets(trainer, skipped)), None, errors)
        # A name the user tracked (often the file the loaders were built from) wins.
        # What the callback found belongs to this run only (record_run keeps it out of the
        # process-wide registry), so the next run of the process finds its own.
        ours = {item["name"] for item in collect_data([])} | set(self.data)
        inputs = {k: v for k, v in found.items() if k not in ours}
        inputs.update(self.data)
        skipped = {k: v for k, v in skipped.items() if k not in ours}
        record_run(
            run,
            track=self.track,
            data=inputs,
            ranks=ranks,
            errors=errors,
            skipped=skipped,
            hosts=list(getattr(trainer, "loggers", None) or []),
        )
        self._recorded_run = run


def wandb_run(trainer: Any) -> Any:
    """The run of the trainer's WandbLogger (created on rank zero when first used), else wandb.run."""
    for logger in getattr(trainer, "loggers", None) or []:
        if type(logger).__name__ == "WandbLogger":
            return logger.experiment
    return active_run()


def rank_seeds(trainer: Any) -> dict[str, Any]:
    """world_size, global_rank and every known rank seed (gathered: all ranks must call this)."""
    from repro_common import seeds

    scratch: list[dict[str, Any]] = []  # capture() records seed problems itself
    local = guarded("seeds", lambda: seeds.collect_seeds(scratch).get("global"), None, scratch)
    rank, world_size = int(trainer.global_rank), int(trainer.world_size)
    values = {rank: local}
    if world_size > 1:
        import torch

        mine = torch.tensor([-1 if local is None else int(local)], dtype=torch.int64)
        gathered = trainer.strategy.all_gather(mine.to(trainer.strategy.root_device))
        values = dict(enumerate(int(v) for v in gathered.reshape(-1).tolist()))
    known = {str(r): v for r, v in sorted(values.items()) if v is not None and v >= 0}
    return {"world_size": world_size, "global_rank": rank, "seeds": known}


def trainer_datasets(trainer: Any, skipped: dict[str, str]) -> dict[str, Any]:
    """name -> dataset for the train/val loaders Lightning has set up (datamodule or loaders)."""
    found: dict[str, Any] = {}
    for name, loaders in (("train", trainer.train_dataloader), ("val", trainer.val_dataloaders)):
        for label, loader in _flatten(name, loaders):
            dataset = getattr(loader, "dataset", None)
            if dataset is None:
                continue
            if _cheap(dataset):
                found[label] = dataset
            else:
                skipped[label] = (
                    f"{type(dataset).__name__} is not fingerprinted automatically; "
                    f"call repro_common.track_data(<files or arrays>, {label!r})"
                )
    return found


def _flatten(name: str, loaders: Any) -> list[tuple[str, Any]]:
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return [pair for key, value in loaders.items() for pair in _flatten(f"{name}.{key}", value)]
    if isinstance(loaders, (list, tuple)):
        if len(loaders) == 1:
            return _flatten(name, loaders[0])
        return [pair for i, value in enumerate(loaders) for pair in _flatten(f"{name}.{i}", value)]
    return [(name, loaders)]


def _cheap(dataset: Any) -> bool:
    """Tensors already in memory: a complete fingerprint at memory speed. Anything else
    (image folders, streaming sets) could mean reading a whole disk at train start,
    so it is left to an explicit track_data()."""
    from torch.utils.data import ConcatDataset, Subset, TensorDataset

    if isinstance(dataset, TensorDataset) or callable(
        getattr(type(dataset), "__fingerprint__", None)
    ):
        return True  # a dataset's own __fingerprint__() says how to hash it cheaply
    if isinstance(dataset, Subset):
        return _cheap(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return all(_cheap(part) for part in dataset.datasets)
    return False


def _lightning_package() -> str:
    """The Lightning the user imports: pytorch_lightning only when it alone is loaded."""
    if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:
        return "pytorch_lightning"
    failure: ImportError | None = None
    for package in ("lightning.pytorch", "pytorch_lightning"):
        try:
            importlib.import_module(package)
            return package
        except ImportError as exc:
            failure = failure or exc
    raise ImportError(
        f"lightning could not be imported ({failure}); "
        f"install the host libraries with: pip install 'mlrepro[{EXTRA}]'"
    ) from failure


@functools.cache
def _callback_class(package: str) -> type[ReproCallback]:
    base = importlib.import_module(package).Callback

    class LightningReproCallback(ReproCallback, base):  # type: ignore[misc, valid-type]
        __doc__ = ReproCallback.__doc__

        def __init__(self, track: str | None = None, data: Mapping[str, Any] | None = None) -> None:
            base.__init__(self)
            ReproCallback.__init__(self, track=track, data=data)

    return LightningReproCallback
