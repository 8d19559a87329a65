"""Datasets, data loaders, and the choice of encoding for any in-memory object.

Both live here because a dataset's items can be any supported object: the choice
recurses through them.

- torch datasets: ``TensorDataset`` (its tensors), ``Subset`` (dataset and indices),
  ``ConcatDataset`` (its parts), ``DataLoader`` (dataset plus sampler and batch settings).
- any other map-style dataset (``__len__`` and ``__getitem__``): every item, in
  index order. Pass ``max_items`` to stop early; the result is then marked
  ``partial``, never silently sampled. The items are read twice, each time under
  its own seeded random state, with every global RNG saved and restored around
  both reads (repro_common.rng_guard): the training draws exactly what it would
  have drawn without us, and a dataset whose items differ between the reads
  (random augmentation) raises `AugmentedDataError` instead of getting a
  fingerprint of one random draw.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable
from typing import Any

import blake3

from repro_common.fingerprints.framing import (
    PREFIX,
    SUPPORTED_KINDS,
    Context,
    Node,
    combine,
    kind_tag,
    new_hasher,
    u64,
    unsupported_error,
    update_framed,
)
from repro_common.fingerprints.objects import (
    dataframe_node,
    image_node,
    index_digest,
    index_node,
    ndarray_node,
    protocol_node,
    series_node,
    tensor_node,
)


def object_node(obj: Any, ctx: Context) -> tuple[str, Node] | None:
    """Arrays, frames, datasets and the protocol; None when `obj` is none of them."""
    custom = getattr(type(obj), "__fingerprint__", None)
    if custom is not None and callable(custom):
        return "custom", protocol_node(obj)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, (np.ndarray, np.generic)):
        return "ndarray", ndarray_node(np.asarray(obj), np)
    if "datasets" in sys.modules:  # Hugging Face datasets: from the Arrow buffers
        from repro_common.fingerprints import hf_datasets

        if hf_datasets.kind_of(obj) is not None:
            kind, digest, size = hf_datasets.fingerprint_digest(obj)
            return kind, Node(digest, size=size)
    torch = sys.modules.get("torch")
    if torch is not None:
        found = _torch_node(obj, torch, ctx)
        if found is not None:
            return found
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(obj, pd.DataFrame):
            return "dataframe", dataframe_node(obj, pd)
        if isinstance(obj, pd.Series):
            return "series", series_node(obj, pd)
        if isinstance(obj, pd.Index):
            return "index", index_node(obj, pd)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(obj, pil.Image):
        return "image", image_node(obj)
    if _is_map_style(obj):
        return "dataset", _dataset_node(obj, ctx)
    return None


def _is_map_style(obj: Any) -> bool:
    if isinstance(
        obj, (str, bytes, bytearray, memoryview, list, tuple, dict, set, frozenset, range)
    ):
        return False
    cls = type(obj)
    return callable(getattr(cls, "__len__", None)) and callable(getattr(cls, "__getitem__", None))


def _torch_node(obj: Any, torch: Any, ctx: Context) -> tuple[str, Node] | None:
    if isinstance(obj, torch.Tensor):
        return "tensor", tensor_node(obj, torch)
    data = getattr(torch.utils, "data", None)
    if data is None:
        return None
    if isinstance(obj, data.DataLoader):
        return "dataloader", _dataloader_node(obj, torch, ctx)
    if isinstance(obj, data.TensorDataset):
        return "tensor_dataset", combine(
            "tensor_dataset", [tensor_node(t, torch) for t in obj.tensors]
        )
    if isinstance(obj, data.Subset):
        inner = _child(obj.dataset, ctx)
        indices = index_digest(map(int, obj.indices))
        node = combine("subset", [inner, indices])
        node.items_hashed, node.items_total = inner.items_hashed, inner.items_total
        return "subset", node
    if isinstance(obj, data.ConcatDataset):
        parts = [_child(d, ctx) for d in obj.datasets]
        node = combine("concat_dataset", parts)
        if any(p.items_total is not None for p in parts):
            node.items_hashed = sum(p.items_hashed or 0 for p in parts)
            node.items_total = sum(p.items_total or 0 for p in parts)
        return "concat_dataset", node
    if isinstance(obj, data.IterableDataset):
        raise TypeError(
            f"cannot fingerprint the iterable dataset {type(obj).__qualname__}: it has no "
            "indexable items; give it a __fingerprint__() method, or fingerprint its source "
            f"files instead. Supported kinds are {SUPPORTED_KINDS}"
        )
    return None


def _child(obj: Any, ctx: Context) -> Node:
    found = object_node(obj, ctx)
    if found is None:
        raise unsupported_error(obj, " inside a dataset")
    return found[1]


# ---------------------------------------------------------------------------
# DataLoader and generic datasets


def _qualname(obj: Any) -> str:
    target = obj if isinstance(obj, type) else type(obj)
    return f"{target.__module__}.{target.__qualname__}"


def _loader_settings(loader: Any, torch: Any) -> dict[str, Any]:
    """What decides which items go into which batch, in which order."""
    data = torch.utils.data
    sampler = loader.sampler
    settings: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "drop_last": bool(loader.drop_last),
        "sampler": _qualname(sampler),
        "shuffle": isinstance(sampler, data.RandomSampler),
    }
    if isinstance(sampler, data.RandomSampler):
        settings["replacement"] = bool(sampler.replacement)
        settings["num_samples"] = int(sampler.num_samples)
    if isinstance(sampler, data.SubsetRandomSampler):
        settings["indices"] = index_digest(map(int, sampler.indices)).digest.hex()
    if isinstance(sampler, data.WeightedRandomSampler):
        settings["weights"] = (
            PREFIX + tensor_node(torch.as_tensor(sampler.weights), torch).digest.hex()
        )
        settings["replacement"] = bool(sampler.replacement)
        settings["num_samples"] = int(sampler.num_samples)
    generator = getattr(sampler, "generator", None)
    if generator is None:
        generator = getattr(loader, "generator", None)
    if generator is not None:
        settings["generator_seed"] = int(generator.initial_seed())
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not data.BatchSampler:
        settings["batch_sampler"] = _qualname(batch_sampler)
    collate = loader.collate_fn
    if collate is not None and collate is not data.dataloader.default_collate:
        settings["collate_fn"] = (
            getattr(collate, "__module__", "?")
            + "."
            + getattr(collate, "__qualname__", type(collate).__qualname__)
        )
    return settings


def _dataloader_node(loader: Any, torch: Any, ctx: Context) -> Node:
    inner = _child(loader.dataset, ctx)
    settings = json.dumps(_loader_settings(loader, torch), sort_keys=True, separators=(",", ":"))
    node = combine("dataloader", [inner], settings.encode())
    node.items_hashed, node.items_total = inner.items_hashed, inner.items_total
    return node


class AugmentedDataError(ValueError):
    """A dataset whose items differ from one read to the next: it has no content fingerprint."""


# Each read of a generic dataset gets its own seeded state (the user's is restored after).
_READ_SEEDS = (0x5EED_0001, 0x5EED_0002)


def _dataset_node(dataset: Any, ctx: Context) -> Node:
    """Every item, read twice under different random states: equal reads are content."""
    from repro_common.rng_guard import preserved_rng, reseeded

    with preserved_rng():
        reseeded(_READ_SEEDS[0])
        items: list[bytes] = []
        node = _read_dataset(dataset, ctx, items.append)
        reseeded(_READ_SEEDS[1])

        def compare(index: int, digest: bytes) -> None:
            if digest != items[index]:
                raise AugmentedDataError(
                    f"item {index} of {type(dataset).__qualname__} differs between two reads "
                    "(random augmentation?): its items are not fixed content"
                )

        _read_dataset(dataset, ctx, None, compare)
    return node


def _read_dataset(
    dataset: Any,
    ctx: Context,
    keep: Callable[[bytes], None] | None,
    compare: Callable[[int, bytes], None] | None = None,
) -> Node:
    total = len(dataset)
    limit = total if ctx.max_items is None else min(total, ctx.max_items)
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.dataset/1"))
    hasher.update(u64(total))
    hasher.update(u64(limit))
    size = 0
    partial = limit < total
    for index in range(limit):
        try:
            value = dataset[index]
        except (KeyError, IndexError) as exc:
            raise TypeError(
                f"{type(dataset).__qualname__} has __len__ and __getitem__ but item {index} cannot "
                f"be read ({exc!r}): map-style datasets are indexed 0..len-1; give it a "
                "__fingerprint__() method instead"
            ) from exc
        try:
            item = _item_node(value, ctx)
        except TypeError as exc:
            raise TypeError(f"item {index} of {type(dataset).__qualname__}: {exc}") from exc
        if keep is not None:
            keep(item.digest)
        if compare is not None:
            compare(index, item.digest)
        hasher.update(item.digest)
        size += item.size
        partial = partial or item.partial
    return Node(hasher.digest(), size=size, partial=partial, items_hashed=limit, items_total=total)


def _item_node(value: Any, ctx: Context) -> Node:
    """One item of a dataset: plain Python values, containers, or any supported kind."""
    if value is None:
        return _leaf(b"N", b"")
    if isinstance(value, bool):
        return _leaf(b"b", b"1" if value else b"0")
    if isinstance(value, int):
        return _leaf(b"i", str(value).encode())
    if isinstance(value, float):
        return _leaf(b"f", struct.pack("<d", value))
    if isinstance(value, complex):
        return _leaf(b"c", struct.pack("<dd", value.real, value.imag))
    if isinstance(value, str):
        return _leaf(b"s", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _leaf(b"y", bytes(value))
    if isinstance(value, (tuple, list)):
        return combine("sequence", [_item_node(v, ctx) for v in value])
    if isinstance(value, dict):
        keyed = sorted(
            ((_item_node(k, ctx), _item_node(v, ctx)) for k, v in value.items()),
            key=lambda kv: kv[0].digest,
        )
        return combine("mapping", [part for pair in keyed for part in pair])
    return _child(value, ctx)


def _leaf(tag: bytes, payload: bytes) -> Node:
    hasher = blake3.blake3()
    hasher.update(b"mlrepro.value/1" + tag)
    update_framed(hasher, payload)
    return Node(hasher.digest(), size=len(payload))
