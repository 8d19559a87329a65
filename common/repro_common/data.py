"""Data fingerprints: full-content blake3 digests of every input a run reads.

A run is reproducible only if we know exactly which bytes it trained on. MLflow's
own dataset digest looks at the first 10,000 elements and keeps 8 hex digits; ours
covers every byte, runs at memory bandwidth (blake3, multithreaded, files
memory-mapped in windows, folders on a thread pool, unchanged files from a stat
cache) and depends on the logical content, never on the memory layout.

Encodings (stable: changing one changes fingerprints users have recorded):

- bytes and files: plain blake3 of the content (``b3sum FILE`` prints the same hex).
- directory: a Merkle digest over its regular files (symlinks followed, empty
  folders ignored) sorted by relative POSIX path: path, size, per-file digest.
- numpy arrays and torch tensors: a header (little-endian dtype, shape) then the
  element bytes in C order, so C, Fortran, strided views and copies agree, and a
  tensor equals the numpy array with the same dtype, shape and values.
- pandas: column names, dtypes, index and values, column by column.
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
- the protocol: an object with a ``__fingerprint__()`` method returning ``str`` or
  ``bytes`` (a version id, a content hash it already knows) is fingerprinted by
  that value instead, whatever its type.
"""

from __future__ import annotations

import array
import errno
import json
import mmap
import operator
import os
import stat
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import blake3

from repro_common.fingerprint_cache import (
    STAT_KEY_SIZE,
    FingerprintCache,
    open_cache,
    stat_key,
    stat_keys,
    unpack_stat_keys,
)

PREFIX = "blake3:"
SUPPORTED_KINDS = (
    "bytes/bytearray/memoryview, a file or directory path (str or os.PathLike), "
    "numpy arrays (not object dtype), torch tensors (dense), pandas DataFrame/Series/Index, "
    "torch TensorDataset/Subset/ConcatDataset/DataLoader, map-style datasets "
    "(__len__ and __getitem__), or any object with a __fingerprint__() method"
)
# Below this a file is read in one call; above it, memory-mapped in windows of
# MMAP_WINDOW so that peak memory stays flat whatever the file size.
MMAP_MIN = 1 << 20
MMAP_WINDOW = 32 << 20
# Non-contiguous arrays are copied to C order this much at a time.
ARRAY_CHUNK = 16 << 20
# Small files are handed to the pool in batches to amortise scheduling.
_BATCH_BYTES = 8 << 20
_BATCH_FILES = 64

ProgressFn = Callable[[int, int], None]
"""progress(advance_bytes, total_bytes): called from worker threads as bytes are hashed."""


def _hasher() -> Any:
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def _u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def _frame(hasher: Any, payload: bytes) -> None:
    """Length-prefixed, so that no two different sequences of fields hash alike."""
    hasher.update(_u64(len(payload)))
    hasher.update(payload)


def _tag(text: str) -> bytes:
    return text.encode()


class FileEntry(NamedTuple):
    """One file of a fingerprinted path: the per-file listing behind a folder's digest."""

    path: str
    size_bytes: int
    digest: str


@dataclass
class FingerprintResult:
    """A fingerprint with what it covers; `entries` lists files for path inputs."""

    kind: str
    fingerprint: str
    size_bytes: int | None = None
    files: int | None = None
    partial: bool = False
    items_hashed: int | None = None
    items_total: int | None = None
    # What a folder digest covers (see `_pack_entry`), decoded only when asked for:
    # a folder answered from the cache then builds no per-file objects.
    packed_entries: bytes = field(default=b"", repr=False)

    @property
    def raw_entries(self) -> list[tuple[bytes, int, bytes]]:
        """(relative path, size, digest) per file, sorted by path."""
        return list(_unpack_entries(self.packed_entries))

    @property
    def entries(self) -> list[FileEntry]:
        """Every file, sorted by relative POSIX path (built on demand: folders can be large)."""
        return [
            FileEntry(os.fsdecode(rel), size, PREFIX + digest.hex())
            for rel, size, digest in _unpack_entries(self.packed_entries)
        ]

    def listing(self) -> list[dict[str, Any]]:
        """The per-file manifest, ready for JSON (sorted by path)."""
        return [
            {"path": e.path, "size_bytes": e.size_bytes, "digest": e.digest} for e in self.entries
        ]


@dataclass
class _Node:
    digest: bytes
    size: int = 0
    partial: bool = False
    items_hashed: int | None = None
    items_total: int | None = None


@dataclass
class _Context:
    max_items: int | None
    cache: FingerprintCache | None
    progress: ProgressFn | None
    packed_entries: bytes = b""
    files: int | None = None


# ---------------------------------------------------------------------------
# public API


def fingerprint(obj: Any, *, max_items: int | None = None, use_cache: bool = True) -> str:
    """`"blake3:<hex>"` of the full logical content of `obj` (see the module doc for kinds)."""
    return fingerprint_details(obj, max_items=max_items, use_cache=use_cache).fingerprint


def fingerprint_details(
    obj: Any,
    *,
    max_items: int | None = None,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> FingerprintResult:
    """The fingerprint with its kind, size, file count, partial flag and per-file listing."""
    if max_items is not None and max_items < 0:
        raise ValueError("max_items must be >= 0 or None")
    ctx = _Context(max_items=max_items, cache=open_cache(use_cache), progress=progress)
    kind, node = _top_level(obj, ctx)
    return FingerprintResult(
        kind=kind,
        fingerprint=PREFIX + node.digest.hex(),
        size_bytes=node.size,
        files=ctx.files,
        partial=node.partial,
        items_hashed=node.items_hashed,
        items_total=node.items_total,
        packed_entries=ctx.packed_entries,
    )


# ---------------------------------------------------------------------------
# dispatch


def _unsupported(obj: Any, where: str = "") -> TypeError:
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    return TypeError(f"cannot fingerprint {name}{where}: supported kinds are {SUPPORTED_KINDS}")


def _top_level(obj: Any, ctx: _Context) -> tuple[str, _Node]:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "bytes", _bytes_node(obj)
    if isinstance(obj, (str, os.PathLike)):
        return _path_node(os.fspath(obj), ctx)
    found = _structured(obj, ctx)
    if found is None:
        raise _unsupported(obj)
    return found


def _structured(obj: Any, ctx: _Context) -> tuple[str, _Node] | None:
    """Arrays, frames, datasets and the protocol; None when `obj` is none of them."""
    custom = getattr(type(obj), "__fingerprint__", None)
    if custom is not None and callable(custom):
        return "custom", _protocol_node(obj)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, (np.ndarray, np.generic)):
        return "ndarray", _ndarray_node(np.asarray(obj), np)
    torch = sys.modules.get("torch")
    if torch is not None:
        found = _torch_node(obj, torch, ctx)
        if found is not None:
            return found
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(obj, pd.DataFrame):
            return "dataframe", _dataframe_node(obj, pd)
        if isinstance(obj, pd.Series):
            return "series", _series_node(obj, pd)
        if isinstance(obj, pd.Index):
            return "index", _index_node(obj, pd)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(obj, pil.Image):
        return "image", _image_node(obj)
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


# ---------------------------------------------------------------------------
# bytes and the protocol


def _bytes_node(obj: bytes | bytearray | memoryview) -> _Node:
    view = memoryview(obj)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    hasher = _hasher()
    hasher.update(view)
    return _Node(hasher.digest(), size=view.nbytes)


def _protocol_node(obj: Any) -> _Node:
    from repro_common.rng_guard import preserved_rng

    with preserved_rng():  # the user's method runs inside the training's random streams
        value = obj.__fingerprint__()
    if isinstance(value, str):
        payload = b"s" + value.encode("utf-8", "surrogatepass")
    elif isinstance(value, (bytes, bytearray)):
        payload = b"y" + bytes(value)
    else:
        raise TypeError(
            f"{type(obj).__qualname__}.__fingerprint__() returned {type(value).__name__}; "
            "it must return str or bytes"
        )
    hasher = _hasher()
    hasher.update(_tag("mlrepro.custom/1"))
    _frame(hasher, payload)
    return _Node(hasher.digest())


# ---------------------------------------------------------------------------
# arrays and tensors


def _little(dtype: Any) -> Any:
    """The same dtype in little-endian byte order: byte order is layout, not content."""
    return dtype.newbyteorder("<") if dtype.str.startswith(">") else dtype


def _dtype_token(dtype: Any) -> str:
    return str(_little(dtype).str)


def _c_order_chunks(arr: Any, np: Any) -> Iterator[Any]:
    """The array's elements in C order, little-endian, as byte buffers of bounded size."""
    if arr.nbytes == 0:
        return
    target = _little(arr.dtype)
    if arr.flags.c_contiguous and target == arr.dtype:
        yield arr.reshape(-1).view(np.uint8)
        return
    if arr.ndim == 0:
        yield np.ascontiguousarray(arr, dtype=target).reshape(-1).view(np.uint8)
        return
    row_bytes = arr.nbytes // arr.shape[0]
    if row_bytes >= ARRAY_CHUNK and arr.ndim > 1:
        for index in range(arr.shape[0]):
            yield from _c_order_chunks(arr[index], np)
        return
    rows = max(1, ARRAY_CHUNK // max(row_bytes, 1))
    for start in range(0, arr.shape[0], rows):
        block = np.ascontiguousarray(arr[start : start + rows], dtype=target)
        yield block.reshape(-1).view(np.uint8)


def _array_digest(token: str, shape: tuple[int, ...], chunks: Iterable[Any]) -> tuple[bytes, int]:
    hasher = _hasher()
    hasher.update(_tag("mlrepro.ndarray/1"))
    _frame(hasher, token.encode())
    _frame(hasher, ",".join(str(int(n)) for n in shape).encode())
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.digest(), size


def _ndarray_node(arr: Any, np: Any) -> _Node:
    dtype = arr.dtype
    if dtype.hasobject:
        raise TypeError(
            f"cannot fingerprint a numpy array of dtype {dtype} (object elements have no "
            f"stable bytes); convert it to a numeric or string dtype. Supported kinds are {SUPPORTED_KINDS}"
        )
    if dtype.names is not None:
        # Fields one by one: padding bytes between fields are not content.
        hasher = _hasher()
        hasher.update(_tag("mlrepro.structured/1"))
        _frame(hasher, ",".join(str(int(n)) for n in arr.shape).encode())
        size = 0
        for name in dtype.names:
            sub = _ndarray_node(arr[name], np)
            _frame(hasher, name.encode("utf-8", "surrogatepass"))
            hasher.update(sub.digest)
            size += sub.size
        return _Node(hasher.digest(), size=size)
    digest, size = _array_digest(_dtype_token(dtype), arr.shape, _c_order_chunks(arr, np))
    return _Node(digest, size=size)


def _torch_node(obj: Any, torch: Any, ctx: _Context) -> tuple[str, _Node] | None:
    if isinstance(obj, torch.Tensor):
        return "tensor", _tensor_node(obj, torch)
    data = getattr(torch.utils, "data", None)
    if data is None:
        return None
    if isinstance(obj, data.DataLoader):
        return "dataloader", _dataloader_node(obj, torch, ctx)
    if isinstance(obj, data.TensorDataset):
        return "tensor_dataset", _combine(
            "tensor_dataset", [_tensor_node(t, torch) for t in obj.tensors]
        )
    if isinstance(obj, data.Subset):
        inner = _child(obj.dataset, ctx)
        indices = _index_digest(map(int, obj.indices))
        node = _combine("subset", [inner, indices])
        node.items_hashed, node.items_total = inner.items_hashed, inner.items_total
        return "subset", node
    if isinstance(obj, data.ConcatDataset):
        parts = [_child(d, ctx) for d in obj.datasets]
        node = _combine("concat_dataset", parts)
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


_TORCH_ONLY_DTYPES = ("bfloat16", "float8", "complex32", "bits", "quint", "qint", "uint1", "int1")


def _tensor_node(tensor: Any, torch: Any) -> _Node:
    if tensor.layout != torch.strided:
        raise TypeError(
            f"cannot fingerprint a {tensor.layout} tensor: only dense (strided) tensors; "
            "call .to_dense() first"
        )
    if tensor.device.type == "meta":
        raise TypeError("cannot fingerprint a meta tensor: it has no data")
    if tensor.is_quantized:
        raise TypeError(
            "cannot fingerprint a quantized tensor: call .dequantize() or .int_repr() first"
        )
    tensor = tensor.detach()
    if tensor.is_conj():
        tensor = tensor.resolve_conj()
    if tensor.is_neg():
        tensor = tensor.resolve_neg()
    name = str(tensor.dtype).removeprefix("torch.")
    token: str | None = None
    if any(name.startswith(p) for p in _TORCH_ONLY_DTYPES):
        # No numpy twin: hash the raw bits under the torch name.
        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[
            tensor.element_size()
        ]
        token = f"torch.{name}"
        tensor = tensor.view(bits)
    import numpy as np

    if tensor.device.type == "cpu":
        arr = tensor.numpy()
        digest, size = _array_digest(
            token or _dtype_token(arr.dtype), tuple(arr.shape), _c_order_chunks(arr, np)
        )
        return _Node(digest, size=size)
    # Accelerator memory: copy to the host one slab at a time, never the whole tensor.
    host_dtype = torch.empty(0, dtype=tensor.dtype).numpy().dtype
    digest, size = _array_digest(
        token or _dtype_token(host_dtype), tuple(tensor.shape), _device_chunks(tensor, np)
    )
    return _Node(digest, size=size)


def _device_chunks(tensor: Any, np: Any) -> Iterator[Any]:
    if tensor.numel() == 0:
        return
    if tensor.dim() == 0:
        yield np.ascontiguousarray(tensor.cpu().numpy()).reshape(-1).view(np.uint8)
        return
    row_bytes = tensor.element_size() * (tensor.numel() // tensor.shape[0])
    if row_bytes >= ARRAY_CHUNK and tensor.dim() > 1:
        for index in range(tensor.shape[0]):
            yield from _device_chunks(tensor[index], np)
        return
    rows = max(1, ARRAY_CHUNK // max(row_bytes, 1))
    for start in range(0, tensor.shape[0], rows):
        host = tensor[start : start + rows].contiguous().cpu().numpy()
        yield np.ascontiguousarray(host, dtype=_little(host.dtype)).reshape(-1).view(np.uint8)


def _int64s(values: Iterable[int], typecode: str = "q") -> bytes:
    packed = array.array(typecode, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _index_digest(indices: Iterable[int]) -> _Node:
    packed = _int64s(indices)
    hasher = _hasher()
    hasher.update(_tag("mlrepro.indices/1"))
    _frame(hasher, packed)
    return _Node(hasher.digest(), size=len(packed))


def _combine(kind: str, parts: list[_Node], extra: bytes = b"") -> _Node:
    hasher = _hasher()
    hasher.update(_tag(f"mlrepro.{kind}/1"))
    hasher.update(_u64(len(parts)))
    for part in parts:
        hasher.update(part.digest)
    _frame(hasher, extra)
    return _Node(
        hasher.digest(),
        size=sum(p.size for p in parts),
        partial=any(p.partial for p in parts),
    )


def _child(obj: Any, ctx: _Context) -> _Node:
    found = _structured(obj, ctx)
    if found is None:
        raise _unsupported(obj, " inside a dataset")
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
        settings["indices"] = _index_digest(map(int, sampler.indices)).digest.hex()
    if isinstance(sampler, data.WeightedRandomSampler):
        settings["weights"] = (
            PREFIX + _tensor_node(torch.as_tensor(sampler.weights), torch).digest.hex()
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


def _dataloader_node(loader: Any, torch: Any, ctx: _Context) -> _Node:
    inner = _child(loader.dataset, ctx)
    settings = json.dumps(_loader_settings(loader, torch), sort_keys=True, separators=(",", ":"))
    node = _combine("dataloader", [inner], settings.encode())
    node.items_hashed, node.items_total = inner.items_hashed, inner.items_total
    return node


class AugmentedDataError(ValueError):
    """A dataset whose items differ from one read to the next: it has no content fingerprint."""


# Each read of a generic dataset gets its own seeded state (the user's is restored after).
_READ_SEEDS = (0x5EED_0001, 0x5EED_0002)


def _dataset_node(dataset: Any, ctx: _Context) -> _Node:
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
    ctx: _Context,
    keep: Callable[[bytes], None] | None,
    compare: Callable[[int, bytes], None] | None = None,
) -> _Node:
    total = len(dataset)
    limit = total if ctx.max_items is None else min(total, ctx.max_items)
    hasher = _hasher()
    hasher.update(_tag("mlrepro.dataset/1"))
    hasher.update(_u64(total))
    hasher.update(_u64(limit))
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
    return _Node(hasher.digest(), size=size, partial=partial, items_hashed=limit, items_total=total)


def _item_node(value: Any, ctx: _Context) -> _Node:
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
        return _combine("sequence", [_item_node(v, ctx) for v in value])
    if isinstance(value, dict):
        keyed = sorted(
            ((_item_node(k, ctx), _item_node(v, ctx)) for k, v in value.items()),
            key=lambda kv: kv[0].digest,
        )
        return _combine("mapping", [part for pair in keyed for part in pair])
    return _child(value, ctx)


def _leaf(tag: bytes, payload: bytes) -> _Node:
    hasher = blake3.blake3()
    hasher.update(b"mlrepro.value/1" + tag)
    _frame(hasher, payload)
    return _Node(hasher.digest(), size=len(payload))


def _image_node(image: Any) -> _Node:
    hasher = _hasher()
    hasher.update(_tag("mlrepro.image/1"))
    _frame(hasher, f"{image.mode}|{image.size[0]}x{image.size[1]}".encode())
    payload = image.tobytes()
    _frame(hasher, payload)
    return _Node(hasher.digest(), size=len(payload))


# ---------------------------------------------------------------------------
# pandas


def _dataframe_node(frame: Any, pd: Any) -> _Node:
    parts = [_index_node(frame.columns, pd), _index_node(frame.index, pd)]
    parts += [_values_node(frame.iloc[:, i], pd) for i in range(frame.shape[1])]
    return _combine("dataframe", parts)


def _series_node(series: Any, pd: Any) -> _Node:
    name = _objects_node([series.name], pd)
    return _combine("series", [name, _index_node(series.index, pd), _values_node(series, pd)])


def _index_node(index: Any, pd: Any) -> _Node:
    names = _objects_node(list(index.names), pd)
    levels = [_values_node(index.get_level_values(i), pd) for i in range(index.nlevels)]
    return _combine("index", [names, *levels])


def _values_node(column: Any, pd: Any) -> _Node:
    """One Series' or Index's values with its dtype: Int64 and int64 are different data."""
    import numpy as np

    dtype = column.dtype
    label = str(dtype).encode()
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(column.array.codes)
        parts = [_index_node(dtype.categories, pd), _ndarray_node(codes, np)]
        return _combine("categorical", parts, label + (b"|ordered" if dtype.ordered else b""))
    if isinstance(dtype, np.dtype):
        arr = np.asarray(column)
        if dtype.hasobject:
            return _combine("column", [_objects_node(arr, pd)], label)
        return _combine("column", [_ndarray_node(arr, np)], label)
    values = column.array
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _combine("column", [_ndarray_node(np.asarray(values.asi8), np)], label)
    masked = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)
    if isinstance(values, masked):
        numpy_dtype = dtype.numpy_dtype
        mask = np.asarray(values.isna(), dtype=bool)
        filled = values.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        return _combine("column", [_ndarray_node(mask, np), _ndarray_node(filled, np)], label)
    return _combine("column", [_objects_node(np.asarray(values, dtype=object), pd)], label)


def _objects_node(values: Any, pd: Any) -> _Node:
    """Python objects in a column: strings fast, other plain values one by one."""
    values = list(values)
    hasher = _hasher()
    hasher.update(_tag("mlrepro.objects/1"))
    hasher.update(_u64(len(values)))
    if all(type(v) is str for v in values):
        encoded = [v.encode("utf-8", "surrogatepass") for v in values]
        hasher.update(b"S")
        hasher.update(_int64s(map(len, encoded), "Q"))
        blob = b"".join(encoded)
        hasher.update(blob)
        return _Node(hasher.digest(), size=len(blob))
    hasher.update(b"G")
    size = 0
    buffer = bytearray()
    for value in values:
        buffer += _object_bytes(value, pd)
        if len(buffer) >= 1 << 20:
            size += len(buffer)
            hasher.update(buffer)
            buffer.clear()
    size += len(buffer)
    hasher.update(buffer)
    return _Node(hasher.digest(), size=size)


def _object_bytes(value: Any, pd: Any) -> bytes:
    def framed(tag: bytes, payload: bytes) -> bytes:
        return tag + _u64(len(payload)) + payload

    if value is None:
        return b"N"
    if pd is not None and value is pd.NA:
        return b"A"
    if pd is not None and value is pd.NaT:
        return b"T"
    if isinstance(value, bool):
        return b"b1" if value else b"b0"
    if isinstance(value, int):
        return framed(b"i", str(value).encode())
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    if isinstance(value, str):
        return framed(b"s", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return framed(b"y", value)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic) and not isinstance(value, np.object_):
        arr = np.asarray(value)
        return framed(
            b"g", _dtype_token(arr.dtype).encode() + b"|" + arr.astype(_little(arr.dtype)).tobytes()
        )
    if pd is not None and isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return framed(
            b"t", f"{type(value).__name__}|{value.value}|{getattr(value, 'tz', None)}".encode()
        )
    import datetime
    import decimal

    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)):
        return framed(b"d", f"{type(value).__name__}|{value!r}".encode())
    if isinstance(value, tuple):
        return framed(b"(", b"".join(_object_bytes(v, pd) for v in value))
    raise TypeError(
        f"cannot fingerprint a {type(value).__qualname__} value in an object column: supported "
        "values are str, bytes, int, float, bool, None/NA/NaT, numpy scalars, timestamps, "
        "dates, decimals and tuples of these"
    )


# ---------------------------------------------------------------------------
# files and directories


def _path_node(path: str, ctx: _Context) -> tuple[str, _Node]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _path_error(exc, path) from None
    absolute = os.path.abspath(path)
    if stat.S_ISREG(st.st_mode):
        files = [_FileStat(os.fsencode(absolute), st.st_size, stat_key(st))]
        digest, size = _file_digests(files, b"", ctx, tree=False)[0]
        ctx.files = 1
        ctx.packed_entries = _pack_entry(os.fsencode(os.path.basename(absolute)), size, digest)
        return "file", _Node(digest, size=size)
    if stat.S_ISDIR(st.st_mode):
        return "directory", _directory_node(os.fsencode(absolute), st, ctx)
    raise OSError(errno.EINVAL, "not a regular file or directory (cannot fingerprint it)", path)


def _path_error(exc: OSError, path: str | bytes, *, exact: bool = False) -> OSError:
    """Keep the errno but always name the path the user gave or the file we stopped at.

    With `exact`, `path` wins over the exception's filename (a bare name when the
    call was relative to a folder's fd).
    """
    where = os.fsdecode(path if exact or exc.filename is None else exc.filename)
    if exc.errno == errno.ELOOP:
        return OSError(errno.ELOOP, "symlink loop (too many levels of symbolic links)", where)
    return type(exc)(exc.errno, exc.strerror or str(exc), where)


class _FileStat(NamedTuple):
    """A file found by the walk: path (relative to the folder, or absolute), size, stat key."""

    path: bytes
    size: int
    key: bytes


class _Walk(NamedTuple):
    """The regular files under a folder, one group per sub-folder in walk order, and its signature.

    A group is (relative prefix, NUL-joined names, stat keys back to back): no
    per-file objects outlive their folder's scan.
    """

    groups: list[tuple[bytes, bytes, bytes]]
    signature: bytes
    files: int
    size: int


# Each folder is opened once and its entries stat'ed relative to that fd
# (fstatat): cheaper than resolving every file's full path again.
_STAT_AT = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_WALK_TAG = b"mlrepro.walk/2"  # /2: stat keys hold the ctime
_ENTRY_STAT = os.DirEntry.stat
_MODE = operator.attrgetter("st_mode")
_SIZE = operator.attrgetter("st_size")
_NAME = operator.attrgetter("name")


def _walk(root: bytes, root_st: os.stat_result) -> _Walk:
    """Every regular file under `root` (symlinks followed, loops refused) and the walk's signature.

    The signature covers each file's relative path and stat key in walk order, so
    an unchanged folder is answered by one cache lookup (a different readdir order
    only misses). Beyond its stat, a file costs only a few C-level passes per
    folder: on a warm run this walk is nearly all the time. Paths stay bytes, so
    names that are not UTF-8 hash exactly.
    """
    groups: list[tuple[bytes, bytes, bytes]] = []
    signature = blake3.blake3(_WALK_TAG)
    files = size = 0
    stack: list[tuple[bytes, bytes, frozenset[tuple[int, int]]]] = [
        (root, b"", frozenset({(root_st.st_dev, root_st.st_ino)}))
    ]
    while stack:
        directory, prefix, ancestors = stack.pop()
        entries, stats = _read_folder(directory)
        if not all(map(stat.S_ISREG, map(_MODE, stats))):
            entries, stats, folders = _split_folder(directory, prefix, ancestors, entries, stats)
            stack.extend(folders)
        if not stats:
            continue
        names = os.fsencode("\0".join(map(_NAME, entries)))
        keys = stat_keys(stats)
        signature.update(_u64(len(prefix)) + prefix + _u64(len(stats)) + _u64(len(names)))
        signature.update(names)
        signature.update(keys)
        groups.append((prefix, names, keys))
        files += len(stats)
        size += sum(map(_SIZE, stats))
    return _Walk(groups, signature.digest(), files, size)


def _read_folder(directory: bytes) -> tuple[list[os.DirEntry[str]], list[os.stat_result]]:
    """The entries of one folder with their stats (symlinks followed)."""
    if not _STAT_AT:
        return _stat_entries(directory, _list_folder(os.fsdecode(directory), directory))
    try:
        fd = os.open(directory, _FOLDER_FLAGS)
    except OSError as exc:
        raise _path_error(exc, directory) from None
    try:
        return _stat_entries(directory, _list_folder(fd, directory))
    finally:
        os.close(fd)


def _list_folder(target: int | str, directory: bytes) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(target) as listing:
            return list(listing)
    except OSError as exc:
        raise _path_error(exc, directory, exact=True) from None


def _stat_entries(
    directory: bytes, entries: list[os.DirEntry[str]]
) -> tuple[list[os.DirEntry[str]], list[os.stat_result]]:
    try:
        return entries, list(map(_ENTRY_STAT, entries))
    except OSError:
        pass  # stat them one by one to name the entry that failed
    for entry in entries:
        try:
            entry.stat()
        except OSError as exc:
            path = os.path.join(directory, os.fsencode(entry.name))
            if isinstance(exc, FileNotFoundError) and entry.is_symlink():
                raise OSError(errno.ENOENT, "broken symbolic link", os.fsdecode(path)) from None
            raise _path_error(exc, path, exact=True) from None
    return entries, [entry.stat() for entry in entries]


def _split_folder(
    directory: bytes,
    prefix: bytes,
    ancestors: frozenset[tuple[int, int]],
    entries: list[os.DirEntry[str]],
    stats: list[os.stat_result],
) -> tuple[
    list[os.DirEntry[str]],
    list[os.stat_result],
    list[tuple[bytes, bytes, frozenset[tuple[int, int]]]],
]:
    """A folder that holds more than regular files: its files, its sub-folders to walk, or an error."""
    files: list[os.DirEntry[str]] = []
    file_stats: list[os.stat_result] = []
    folders: list[tuple[bytes, bytes, frozenset[tuple[int, int]]]] = []
    for entry, st in zip(entries, stats, strict=True):
        if stat.S_ISREG(st.st_mode):
            files.append(entry)
            file_stats.append(st)
            continue
        name = os.fsencode(entry.name)
        path = os.path.join(directory, name)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(
                errno.EINVAL,
                "not a regular file or directory (cannot fingerprint it)",
                os.fsdecode(path),
            )
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            raise OSError(
                errno.ELOOP,
                "symlink loop (a folder links back to its ancestor)",
                os.fsdecode(path),
            )
        folders.append((path, prefix + name + b"/", ancestors | {key}))
    return files, file_stats, folders


_LEN_SIZE = struct.Struct("<QQ")
_DIGEST_SIZE = 32


def _pack_entry(relative: bytes, size: int, digest: bytes) -> bytes:
    """One file as a folder digest covers it: lengths, relative path, blake3 digest."""
    return _LEN_SIZE.pack(len(relative), size) + relative + digest


def _unpack_entries(packed: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(relative path, size, digest) per file from a packed listing, in order."""
    offset = 0
    while offset < len(packed):
        length, size = _LEN_SIZE.unpack_from(packed, offset)
        start = offset + _LEN_SIZE.size
        offset = start + length + _DIGEST_SIZE
        yield packed[start : start + length], size, packed[start + length : offset]


def _directory_node(root: bytes, root_st: os.stat_result, ctx: _Context) -> _Node:
    """A folder's digest: from its cached listing when the walk matches, else file by file."""
    walked_at = time.time_ns()  # before the first stat: the racy window counts from here
    walk = _walk(root, root_st)
    cache = ctx.cache
    packed = cache.lookup_listing(root, walk.signature) if cache is not None else None
    if packed is not None:
        size = walk.size
        if ctx.progress is not None:
            ctx.progress(size, size)
    else:
        packed, size = _hash_folder(root, walk, ctx, walked_at)
    hasher = _hasher()
    hasher.update(_tag("mlrepro.dir/1"))
    hasher.update(_u64(walk.files))
    hasher.update(packed)
    ctx.packed_entries = packed
    ctx.files = walk.files
    return _Node(hasher.digest(), size=size)


def _hash_folder(root: bytes, walk: _Walk, ctx: _Context, walked_at: int) -> tuple[bytes, int]:
    """The packed listing from per-file digests (cached or hashed) and its size.

    It becomes the folder's row only if every file read back the size its stat
    said (otherwise it changed under us) and none is within the racy window.
    """
    files: list[_FileStat] = []
    newest = -1 << 63
    for prefix, names, keys in walk.groups:
        split = names.split(b"\0")
        for i, (_, _, size, mtime, _) in enumerate(unpack_stat_keys(keys)):
            key = keys[i * STAT_KEY_SIZE : (i + 1) * STAT_KEY_SIZE]
            files.append(_FileStat(prefix + split[i], size, key))
            newest = max(newest, mtime)
    files.sort(key=operator.itemgetter(0))
    digests = _file_digests(files, os.path.join(root, b""), ctx, tree=True)
    packed = b"".join(
        _pack_entry(relative, length, digest)
        for (relative, _, _), (digest, length) in zip(files, digests, strict=True)
    )
    total = sum(length for _, length in digests)
    complete = all(f.size == length for f, (_, length) in zip(files, digests, strict=True))
    if ctx.cache is not None and complete:
        ctx.cache.store_listing(root, walk.signature, packed, newest, walked_at)
    return packed, total


def _file_digests(
    files: list[_FileStat], base: bytes, ctx: _Context, tree: bool
) -> list[tuple[bytes, int]]:
    """(digest, size) per file, in order: from the cache when the stat key matches, else hashed.

    File paths are `base + path`; with `tree`, `base` is a folder whose cached
    entries are read in one range scan.
    """
    cache = ctx.cache
    results: list[tuple[bytes, int] | None] = [None] * len(files)
    if cache is not None:
        if tree:
            known = cache.lookup_tree(base)
            for i, (path, size, key) in enumerate(files):
                hit = known.get(base + path)
                if hit is not None and hit[0] == key:
                    results[i] = (hit[1], size)
        else:
            for i, (path, size, key) in enumerate(files):
                one = cache.lookup(base + path)
                if one is not None and one[0] == key:
                    results[i] = (one[1], size)
    total = sum(f.size for f in files)
    progress = ctx.progress
    if progress is not None:
        progress(sum(r[1] for r in results if r is not None), total)
    missing = [i for i, r in enumerate(results) if r is None]
    paths = [base + files[i].path for i in missing]
    sizes = [files[i].size for i in missing]
    for n, result in _hash_files(paths, sizes, progress, total):
        results[missing[n]] = result
    if cache is not None and missing:
        cache.store(
            (paths[n], files[i].key, results[i][0])  # type: ignore[index]
            for n, i in enumerate(missing)
            if results[i][1] == files[i].size  # type: ignore[index]
        )
    return results  # type: ignore[return-value]


def _hash_files(
    paths: list[bytes], sizes: list[int], progress: ProgressFn | None, total: int
) -> Iterator[tuple[int, tuple[bytes, int]]]:
    """(position, (digest, size)) for each path: small files in batches on a thread pool."""
    if not paths:
        return
    batches: list[list[int]] = [[]]
    batch_bytes = 0
    for n, size in enumerate(sizes):
        if batches[-1] and (batch_bytes >= _BATCH_BYTES or len(batches[-1]) >= _BATCH_FILES):
            batches.append([])
            batch_bytes = 0
        batches[-1].append(n)
        batch_bytes += size

    def run(batch: list[int]) -> list[tuple[int, tuple[bytes, int]]]:
        return [(n, hash_file(paths[n], progress, total)) for n in batch]

    if len(batches) == 1:
        yield from run(batches[0])
        return
    workers = min(len(batches), max(2, 2 * (os.cpu_count() or 2)), 16)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlrepro-hash")
    try:
        for finished in pool.map(run, batches):
            yield from finished
    finally:
        # On an error, do not read the rest of a large folder before reporting it.
        pool.shutdown(wait=True, cancel_futures=True)


def hash_file(
    path: str | bytes, progress: ProgressFn | None = None, total: int = 0
) -> tuple[bytes, int]:
    """(blake3 digest, bytes read) of one file; memory stays flat whatever its size."""
    try:
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < MMAP_MIN:
                data = handle.read()
                hasher = blake3.blake3(data)
                if progress is not None:
                    progress(len(data), total)
                return hasher.digest(), len(data)
            hasher = _hasher()
            offset = 0
            while offset < size:
                # Re-check before each window: touching pages past a truncated end
                # would raise SIGBUS, so a file that shrinks mid-way is an error.
                if os.fstat(handle.fileno()).st_size < offset + min(MMAP_WINDOW, size - offset):
                    raise OSError(
                        errno.EIO, "file shrank while it was being fingerprinted", os.fsdecode(path)
                    )
                length = min(MMAP_WINDOW, size - offset)
                window = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ, offset=offset)
                try:
                    view = memoryview(window)
                    try:
                        hasher.update(view)
                    finally:
                        view.release()
                finally:
                    window.close()
                offset += length
                if progress is not None:
                    progress(length, total)
            return hasher.digest(), size
    except OSError as exc:
        raise _path_error(exc, path) from None


def hash_local_files(
    paths: Sequence[str], *, use_cache: bool = True, progress: ProgressFn | None = None
) -> list[tuple[bytes, int]]:
    """(blake3 digest, size) of each file, through the stat cache (a re-run costs stat calls).

    For sources that list their own files (a Delta version, an Iceberg snapshot).
    """
    ctx = _Context(max_items=None, cache=open_cache(use_cache), progress=progress)
    files = []
    for path in paths:
        absolute = os.path.abspath(path)
        try:
            st = os.stat(absolute)
        except OSError as exc:
            raise _path_error(exc, absolute) from None
        files.append(_FileStat(os.fsencode(absolute), st.st_size, stat_key(st)))
    return _file_digests(files, b"", ctx, tree=False)


# ---------------------------------------------------------------------------
# registry


_registry: dict[str, dict[str, Any]] = {}
_details: dict[str, FingerprintResult] = {}
_listeners: list[Callable[[dict[str, Any]], None]] = []
_run_listeners: list[Callable[[list[dict[str, Any]], Sequence[Any]], None]] = []
_lock = threading.Lock()

SKIPPED = "skipped"
AUGMENTED = "augmented"


def unfingerprinted_input(
    name: str, kind: str, reason: str, source: str | None = None
) -> dict[str, Any]:
    """An input the run read but we could not fingerprint: in the record, with why, never hidden."""
    return {"name": name, "kind": kind, "fingerprint": None, "reason": reason, "source": source}


def describe_input(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    max_items: int | None = None,
    use_cache: bool = True,
    version: int | str | None = None,
) -> tuple[dict[str, Any], FingerprintResult | None]:
    """The manifest entry for one input, without registering it (a run's own inputs).

    A dataset whose items change between reads is described as `augmented`, with the
    reason and no fingerprint; an unsupported kind raises TypeError.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("track_data needs a non-empty name")
    from repro_common import table_inputs

    table = table_inputs.table_kind(obj)
    if table is not None or version is not None:
        # A Delta or Iceberg table: a named, immutable version (repro_common.table_inputs).
        # One that cannot be read is recorded with why (and a capture error), never raised.
        try:
            item = table_inputs.describe_table(
                obj, name, source, version=version, use_cache=use_cache
            )
        except table_inputs.TableInputError as exc:
            shown = source or (os.fspath(obj) if isinstance(obj, (str, os.PathLike)) else None)
            item = table_inputs.unreadable_table(name, table or "table", str(exc), shown)
        return item, None
    if isinstance(obj, (str, os.PathLike)) and source is None:
        source = os.path.abspath(os.fspath(obj))
    if isinstance(source, str):
        from repro_common.redact import redact_url

        source = redact_url(source, keep_user=True)  # a presigned URL carries its signature
    try:
        result = fingerprint_details(obj, max_items=max_items, use_cache=use_cache)
    except AugmentedDataError as exc:
        reason = (
            f"{exc}; fingerprint the data underneath instead (its files or arrays, with "
            f"track_data(<path or array>, {name!r}))"
        )
        return unfingerprinted_input(name, AUGMENTED, reason, source), None
    dvc = None
    if isinstance(obj, (str, os.PathLike)):
        from repro_common.dvc import dvc_record

        try:
            dvc = dvc_record(os.fspath(obj))
        except Exception as exc:  # the link is a bonus; the fingerprint stands without it
            warnings.warn(
                f"mlrepro: cannot read DVC files for {name!r}: {exc}", RuntimeWarning, stacklevel=3
            )
    item = {
        "name": name,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "size_bytes": result.size_bytes,
        "files": result.files,
        "source": source,
        "partial": result.partial,
        "dvc": dvc,
    }
    return item, result


def track_data(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    max_items: int | None = None,
    use_cache: bool = True,
    version: int | str | None = None,
) -> dict[str, Any]:
    """Fingerprint `obj` and register it as an input of this process under `name`.

    Both adapters log registered inputs; the manifest's `data` list holds them. A
    second call with the same name replaces the first. Paths also get their DVC
    version when DVC tracks them. A dataset that augments its items is registered
    without a fingerprint (kind `augmented`, with the reason) and a warning.

    A Delta table (a `deltalake.DeltaTable`, a folder with `_delta_log/`, an `s3://` URI,
    `path@v12`) or an Iceberg table (`pyiceberg.table.Table`) is recorded as its resolved
    version (`version=` pins one) with table id and fingerprint; one that cannot be read
    is registered without a fingerprint, with the reason, and a capture error.
    """
    item, result = describe_input(
        obj, name, source, max_items=max_items, use_cache=use_cache, version=version
    )
    if result is None and item.get("fingerprint") is None:
        warnings.warn(
            f"mlrepro: {name!r} is not fingerprinted: {item['reason']}",
            RuntimeWarning,
            stacklevel=2,
        )
    with _lock:
        _registry.pop(name, None)
        _registry[name] = item
        _details.pop(name, None)
        if result is not None:
            _details[name] = result
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(_copy_item(item))
        except Exception as exc:  # a listener must never fail the user's call
            warnings.warn(
                f"mlrepro: data listener {getattr(listener, '__qualname__', listener)!s} failed for "
                f"{name!r}: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return _copy_item(item)


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    """A copy nobody can use to edit the registry (the dvc link is the only nested part)."""
    dvc = item.get("dvc")
    return {**item, "dvc": dict(dvc) if isinstance(dvc, dict) else dvc}


def collect_data(
    errors: list[dict[str, Any]], run_inputs: Iterable[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The manifest's `data`: the registered inputs in registration order, then the run's own
    (`run_inputs`, found or given for one run only; one of them replaces a registered input
    of the same name)."""
    with _lock:
        merged = {name: _copy_item(item) for name, item in _registry.items()}
    for item in run_inputs or ():
        merged[str(item.get("name"))] = _copy_item(item)
    for item in merged.values():
        if item.get("table_error"):  # a table input that could not be read: a real failure
            errors.append({"collector": f"data.{item.get('name')}", "error": str(item["reason"])})
    return list(merged.values())


def tracked_details(name: str) -> FingerprintResult | None:
    """The full result of a tracked input, per-file listing included (for artifacts)."""
    with _lock:
        return _details.get(name)


def add_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call fn(item) after each track_data (the MLflow adapter logs datasets this way)."""
    with _lock:
        if fn not in _listeners:
            _listeners.append(fn)


def remove_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    with _lock:
        if fn in _listeners:
            _listeners.remove(fn)


def add_run_listener(fn: Callable[[list[dict[str, Any]], Sequence[Any]], None]) -> None:
    """Call fn(items, hosts) when one training records inputs of its own (see publish_run_inputs)."""
    with _lock:
        if fn not in _run_listeners:
            _run_listeners.append(fn)


def remove_run_listener(fn: Callable[[list[dict[str, Any]], Sequence[Any]], None]) -> None:
    with _lock:
        if fn in _run_listeners:
            _run_listeners.remove(fn)


def publish_run_inputs(items: list[dict[str, Any]], hosts: Sequence[Any] = ()) -> None:
    """One training's own inputs (found at fit start or given to a callback, not registered):
    every tracker that training logs to records them, so all its records agree.

    `hosts` are the training's loggers (e.g. Lightning's `trainer.loggers`): each adapter
    picks the ones it knows. A listener that fails is one warning; the training goes on.
    """
    if not items:
        return
    with _lock:
        listeners = list(_run_listeners)
    for listener in listeners:
        try:
            listener([_copy_item(item) for item in items], tuple(hosts))
        except Exception as exc:
            warnings.warn(
                f"mlrepro: run-inputs listener {getattr(listener, '__qualname__', listener)!s} "
                f"failed: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def clear_registry(listeners: bool = False) -> None:
    """Forget tracked inputs (tests); listeners too when asked."""
    with _lock:
        _registry.clear()
        _details.clear()
        if listeners:
            _listeners.clear()
            _run_listeners.clear()
