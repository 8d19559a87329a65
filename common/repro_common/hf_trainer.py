"""Hugging Face Trainer: its own reproducibility settings and datasets, found for the record.

`Trainer` seeds itself (`args.seed`, or `args.full_determinism`) and shuffles with
`args.data_seed`; those belong in the record. It seeds in `__init__`, so a model passed
in already built was initialised by whatever RNG state was current before: its
initial weights are not covered by `args.seed`, and the record says so rather than
let the seed claim them (`model_init=` makes the Trainer build the model after seeding).

No code change is needed with MLflow: MLflow's run-context provider runs inside
`MLflowCallback.setup` -> `mlflow.start_run`, called from the Trainer's own training
loop, so the Trainer is a `self` in the calling frames (the W&B callback gets it the
same way when it is not handed one). transformers is never imported here.
"""

from __future__ import annotations

import sys
from typing import Any

from repro_common.sections import SeedsSection

# How far up the stack to look: Trainer.train -> _inner_training_loop -> callback handler
# -> callback -> mlflow.start_run -> registry -> provider -> capture, with room to spare.
MAX_FRAMES = 64
MODEL_NOTE = (
    "the model was passed to the Trainer already built: its initial weights come from the "
    "RNG state when it was built, which args.seed does not cover (the record cannot tell "
    "whether the script seeded before building it); pass model_init= so the Trainer builds "
    "the model after seeding"
)


def find_trainer(start: Any = None) -> Any:
    """The `transformers.Trainer` whose code is on the calling stack, or None (cheap:
    a few dozen frame hops, only when transformers is imported)."""
    module = sys.modules.get("transformers.trainer")
    trainer_cls = getattr(module, "Trainer", None)
    if trainer_cls is None:
        return None
    frame = start if start is not None else sys._getframe(1)
    for _ in range(MAX_FRAMES):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self") if "self" in frame.f_code.co_varnames else None
        if isinstance(candidate, trainer_cls):
            return candidate
        frame = frame.f_back
    return None


def settings(trainer: Any) -> dict[str, Any]:
    """`seeds.trainer`: the seeds the Trainer applied and whether they cover the model."""
    args = trainer.args
    data_seed = getattr(args, "data_seed", None)
    model_init = getattr(trainer, "model_init", None) is not None
    record: dict[str, Any] = {
        "seed": int(args.seed),
        "data_seed": int(data_seed) if data_seed is not None else None,
        "full_determinism": bool(getattr(args, "full_determinism", False)),
        "model_init": model_init,
        "model_seeded": model_init,
    }
    if not model_init:
        record["note"] = MODEL_NOTE
    return record


def datasets(trainer: Any) -> dict[str, Any]:
    """name -> dataset for the Trainer's train_dataset and eval_dataset(s)."""
    found: dict[str, Any] = {}
    if getattr(trainer, "train_dataset", None) is not None:
        found["train"] = trainer.train_dataset
    evals = getattr(trainer, "eval_dataset", None)
    if isinstance(evals, dict):
        found.update({f"eval.{key}": value for key, value in evals.items()})
    elif evals is not None:
        found["eval"] = evals
    return found


def trainer_inputs(
    trainer: Any, taken: set[str], errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Manifest entries for the Trainer's datasets, full-content fingerprints; a name the
    user tracked (`taken`) is left to the user's entry. One that cannot be fingerprinted
    is in the record with why, never hidden."""
    from repro_common.inputs import SKIPPED, describe_input, unfingerprinted_input
    from repro_common.isolation import error_entry

    entries: list[dict[str, Any]] = []
    for name, dataset in datasets(trainer).items():
        if name in taken:
            continue
        if not cheap(dataset):
            reason = (
                f"{type(dataset).__name__} is not fingerprinted automatically (reading every item "
                f"at train start could take long); call repro_common.track_data(<files or "
                f"arrays>, {name!r})"
            )
            entries.append(unfingerprinted_input(name, SKIPPED, reason))
            continue
        try:
            item, _ = describe_input(dataset, name)
        except TypeError as exc:
            item = unfingerprinted_input(name, SKIPPED, str(exc) or type(dataset).__name__)
        except Exception as exc:
            errors.append(error_entry(f"data:{name}", exc))
            continue
        entries.append(item)
    return entries


def cheap(dataset: Any) -> bool:
    """Data already in memory, fingerprinted at memory speed without reading items: Arrow
    tables, tensors, or a dataset's own `__fingerprint__()`. Anything else (a custom
    Dataset that tokenises in `__getitem__`, a streaming set) is left to track_data()."""
    from repro_common.fingerprints import hf_datasets

    if hf_datasets.kind_of(dataset) in ("hf_dataset", "hf_dataset_dict"):
        return True
    if callable(getattr(type(dataset), "__fingerprint__", None)):
        return True
    data = getattr(sys.modules.get("torch.utils"), "data", None)
    if data is None:
        return False
    if isinstance(dataset, data.TensorDataset):
        return True
    if isinstance(dataset, data.Subset):
        return cheap(dataset.dataset)
    if isinstance(dataset, data.ConcatDataset):
        return all(cheap(part) for part in dataset.datasets)
    return False


def record_warnings(seeds: SeedsSection) -> list[str]:
    """What `reproduce` and `diff` say about a record's Trainer seeds (untrusted: plain text)."""
    trainer = seeds.get("trainer") if isinstance(seeds, dict) else None
    if not isinstance(trainer, dict) or trainer.get("model_seeded") is not False:
        return []
    return [
        "the model was built before the Trainer seeded (no model_init): args.seed does not "
        "cover its initial weights, so they differ in a rerun unless the script seeded before "
        "building it; use Trainer(model_init=...)"
    ]


def annotate(
    seed_record: dict[str, Any],
    inputs: list[dict[str, Any]] | None,
    errors: list[dict[str, Any]],
) -> list[dict[str, Any]] | None:
    """capture()'s step for a Trainer on the stack: `seeds.trainer` into `seed_record`, and
    `inputs` plus the Trainer's datasets that no tracked or given input already names."""
    trainer = find_trainer()
    if trainer is None:
        return inputs
    from repro_common.inputs import collect_data

    seed_record["trainer"] = settings(trainer)
    taken = {str(item.get("name")) for item in collect_data([])}
    taken |= {str(item.get("name")) for item in inputs or []}
    return [*(inputs or []), *trainer_inputs(trainer, taken, errors)]


def unseeded_models(seeds_a: SeedsSection, seeds_b: SeedsSection) -> str | None:
    """Why `diff` cannot call two seeded Trainer runs' seeds the same: a model built before
    the Trainer seeded (None when neither record says so)."""
    which = [label for label, seeds in (("A", seeds_a), ("B", seeds_b)) if record_warnings(seeds)]
    if not which:
        return None
    return (
        f"the model's initial weights in {' and '.join(which)} were not covered by the "
        "Trainer's seed (built before the Trainer seeded; use model_init=)"
    )
