"""Hugging Face `datasets`: a full-content fingerprint read straight from the Arrow buffers.

`Dataset._fingerprint` chains the hashes of the transforms that made a dataset (and is
random for a transform it cannot hash), so two runs on the same rows can disagree and
two runs on different rows can agree. This one hashes the rows themselves, column by
column, from the Arrow buffers (no Python objects), and depends on the logical content
only: how the table is split into chunks or record batches, slice offsets, dictionary
encoding and large vs small offsets change nothing.

Encoding (``mlrepro.hf_dataset/1``; stable: changing it changes recorded fingerprints):
every column is cut into streams hashed separately and in order, so a chunk boundary
never shows: for each node of the column's type tree, the positions of its null
elements (int64), then for the non-null elements their value bytes (fixed width), their
lengths (int64) and data bytes (strings, binary), their lengths and the child values
(lists), or each field in turn (structs). A select()/shuffle() indices mapping is
honoured: rows are hashed in the mapped order, as the dataset yields them. The format
(`set_format`, `with_transform`: type, columns, options, the transform's name) is part
of the digest, because it changes what the training sees.

`datasets` is never imported here: the objects come from a user who already has it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import blake3

from repro_common.fingerprints.framing import new_hasher
from repro_common.fingerprints.framing import u64 as _u64
from repro_common.fingerprints.framing import update_framed as _frame

TAG = "mlrepro.hf_dataset/1"
DICT_TAG = "mlrepro.hf_dataset_dict/1"
TAG_BYTES = {TAG: TAG.encode(), DICT_TAG: DICT_TAG.encode()}
# Rows gathered at a time through an indices mapping: bounded memory whatever the size.
TAKE_ROWS = 1 << 16
_SHA = re.compile(r"^[0-9a-f]{40}$")
# hf://datasets/<repo>@<revision>/... and https://huggingface.co/datasets/<repo>/resolve/<revision>/...
_HUB_URLS = (
    re.compile(r"^hf://datasets/(?P<repo>[^@/]+(?:/[^@/]+)?)@(?P<rev>[^/]+)/"),
    re.compile(r"^https?://[^/]+/datasets/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/"),
)


def kind_of(obj: Any) -> str | None:
    """ "hf_dataset", "hf_dataset_dict" or "hf_iterable_dataset" for a `datasets` object, else None."""
    module = sys.modules.get("datasets")
    if module is None:
        return None
    if isinstance(obj, module.Dataset):
        return "hf_dataset"
    if isinstance(obj, module.DatasetDict):
        return "hf_dataset_dict"
    if isinstance(obj, (module.IterableDataset, module.IterableDatasetDict)):
        return "hf_iterable_dataset"
    return None


def fingerprint_digest(obj: Any) -> tuple[str, bytes, int]:
    """(kind, raw digest, bytes hashed) of a Dataset or DatasetDict."""
    kind = kind_of(obj)
    if kind == "hf_dataset":
        digest, size = dataset_digest(obj)
        return kind, digest, size
    if kind == "hf_dataset_dict":
        hasher = blake3.blake3(TAG_BYTES[DICT_TAG])
        total = 0
        hasher.update(_u64(len(obj)))
        for split in sorted(obj):
            digest, size = dataset_digest(obj[split])
            _frame(hasher, str(split).encode())
            hasher.update(digest)
            total += size
        return kind, hasher.digest(), total
    if kind == "hf_iterable_dataset":
        raise TypeError(
            "cannot fingerprint a streaming datasets.IterableDataset: its rows are read as "
            "the training goes; load it with streaming=False, or track the files it reads"
        )
    raise TypeError(f"{type(obj).__qualname__} is not a datasets.Dataset or DatasetDict")


def dataset_digest(dataset: Any) -> tuple[bytes, int]:
    """The digest of one Dataset's rows (through its indices mapping), schema and format."""
    import pyarrow as pa

    table: pa.Table = dataset.data.table
    streams = _Streams()
    indices = getattr(dataset, "_indices", None)
    if indices is None:
        for name, column in zip(table.column_names, table.columns, strict=True):
            for chunk in column.chunks:
                _feed(streams, (name,), chunk)
        rows = table.num_rows
    else:
        positions = indices.table.column(0) if hasattr(indices, "table") else indices.column(0)
        rows = len(positions)
        for start in range(0, rows, TAKE_ROWS):
            taken = table.take(positions.slice(start, TAKE_ROWS))
            for name, column in zip(taken.column_names, taken.columns, strict=True):
                for chunk in column.chunks:
                    _feed(streams, (name,), chunk)
    hasher = blake3.blake3(TAG_BYTES[TAG])
    hasher.update(_u64(rows))
    hasher.update(_u64(table.num_columns))
    for field in table.schema:
        _frame(hasher, field.name.encode("utf-8", "surrogatepass"))
        _frame(hasher, str(_logical_type(field.type)).encode())
    _frame(hasher, _labels(dataset).encode())
    _frame(hasher, _format(dataset).encode())
    streams.finish(hasher)
    return hasher.digest(), streams.size


def hub_source(dataset: Any) -> dict[str, Any]:
    """Where a dataset loaded from the Hub came from: repo id and resolved commit sha.

    Read from what the dataset's files record (the download URLs in `info`, pinned to a
    commit by `load_dataset`; the cache folder `<namespace>___<name>`). A revision that
    is not a 40-hex commit (a branch or tag) is never recorded as the version.
    """
    found: dict[str, Any] = {}
    info = getattr(dataset, "info", None)
    for url in sorted(getattr(info, "download_checksums", None) or {}):
        for pattern in _HUB_URLS:
            match = pattern.match(str(url))
            if match is None:
                continue
            found.setdefault("hub_repo", match.group("repo"))
            revision = match.group("rev")
            if _SHA.match(revision):
                found.setdefault("hub_commit", revision)
            else:
                found.setdefault("hub_revision_unresolved", revision)
    if "hub_repo" not in found:
        for entry in getattr(dataset, "cache_files", None) or []:
            match = re.search(r"/(?P<ns>[^/]+)___(?P<name>[^/]+)/", str(entry.get("filename", "")))
            if match is not None:
                found["hub_repo"] = f"{match.group('ns')}/{match.group('name')}"
                break
    found.pop("hub_revision_unresolved", None)  # a branch or tag is not a version
    if found and "hub_commit" not in found:
        found["hub_commit"] = None  # unknown: absent from what the files record
    return found


def describe(obj: Any) -> dict[str, Any]:
    """The manifest fields a `datasets` input adds: rows, splits, Hub origin, basis."""
    kind = kind_of(obj)
    parts = {"": obj} if kind == "hf_dataset" else dict(obj) if kind == "hf_dataset_dict" else {}
    extra: dict[str, Any] = {
        "basis": "hf-arrow/1",
        "basis_detail": "every row of the Arrow data (through any indices mapping), schema and format",
    }
    if kind == "hf_dataset":
        extra["rows"] = len(obj)
    elif kind == "hf_dataset_dict":
        extra["rows"] = {str(split): len(ds) for split, ds in obj.items()}
    for dataset in parts.values():
        origin = hub_source(dataset)
        if origin:
            extra.update(origin)
            break
    return extra


# ---------------------------------------------------------------------------
# streams


class _Streams:
    """One blake3 per (type-tree node, part), fed chunk after chunk: chunking never shows."""

    def __init__(self) -> None:
        self.hashers: dict[tuple[str, ...], Any] = {}
        self.counts: dict[tuple[str, ...], int] = {}
        self.size = 0

    def advance(self, path: tuple[str, ...], n: int) -> int:
        seen = self.counts.get(path, 0)
        self.counts[path] = seen + n
        return seen

    def feed(self, path: tuple[str, ...], data: Any) -> None:
        hasher = self.hashers.get(path)
        if hasher is None:
            hasher = self.hashers[path] = new_hasher()
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        hasher.update(view)
        self.size += view.nbytes

    def finish(self, hasher: Any) -> None:
        for path in sorted(self.counts):
            _frame(hasher, "\x00".join(path).encode("utf-8", "surrogatepass"))
            hasher.update(_u64(self.counts[path]))
        for path in sorted(self.hashers):
            _frame(hasher, "\x00".join(path).encode("utf-8", "surrogatepass"))
            hasher.update(self.hashers[path].digest())


def _feed(streams: _Streams, path: tuple[str, ...], arr: Any) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = arr.type
    if isinstance(kind, pa.ExtensionType):
        arr, kind = arr.storage, kind.storage_type
    if pa.types.is_dictionary(kind):
        arr = arr.dictionary_decode()
        kind = arr.type
    first = streams.advance(path, len(arr))
    if arr.null_count:
        nulls = pc.indices_nonzero(arr.is_null()).to_numpy().astype("<i8") + first
        streams.feed(path + ("#nulls",), nulls)
        arr = pc.drop_null(arr)
    if len(arr) == 0 or pa.types.is_null(kind):
        return
    if pa.types.is_boolean(kind):
        streams.feed(path + ("#values",), pc.cast(arr, pa.uint8()).buffers()[1])
        return
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        arr = arr.cast(pa.large_binary())
        kind = arr.type
    if pa.types.is_fixed_size_list(kind):
        _feed(streams, path + ("[]",), arr.flatten())
        return
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        arr = arr.cast(pa.large_list(kind.value_type))
        kind = arr.type
    if isinstance(arr, (pa.ListArray, pa.LargeListArray)):
        lengths = pc.list_value_length(arr).to_numpy().astype("<i8")
        streams.feed(path + ("#lengths",), lengths)
        _feed(streams, path + ("[]",), arr.flatten())
        return
    if pa.types.is_struct(kind):
        for field, child in zip(kind, arr.flatten(), strict=True):
            _feed(streams, path + ("." + field.name,), child)
        return
    if (
        pa.types.is_binary(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_large_string(kind)
    ):
        wide = pa.types.is_large_binary(kind) or pa.types.is_large_string(kind)
        offsets = np.frombuffer(
            arr.buffers()[1],
            dtype="<i8" if wide else "<i4",
            count=len(arr) + 1,
            offset=arr.offset * (8 if wide else 4),
        )
        streams.feed(path + ("#lengths",), np.diff(offsets).astype("<i8"))
        data = arr.buffers()[2]
        if data is not None:
            streams.feed(path + ("#data",), memoryview(data)[int(offsets[0]) : int(offsets[-1])])
        return
    width = getattr(kind, "bit_width", 0)
    if width and width % 8 == 0 and len(arr.buffers()) == 2:
        size = width // 8
        start = arr.offset * size
        streams.feed(
            path + ("#values",), memoryview(arr.buffers()[1])[start : start + len(arr) * size]
        )
        return
    raise TypeError(f"cannot fingerprint the Arrow type {kind} of column {'/'.join(path)}")


def _logical_type(kind: Any) -> Any:
    """The type with layout-only choices undone: dictionary encoding, large offsets, views."""
    import pyarrow as pa

    if isinstance(kind, pa.ExtensionType):
        return _logical_type(kind.storage_type)
    if pa.types.is_dictionary(kind):
        return _logical_type(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_map(kind):
        return pa.map_(_logical_type(kind.key_type), _logical_type(kind.item_type))
    if (
        pa.types.is_large_list(kind)
        or pa.types.is_list(kind)
        or pa.types.is_list_view(kind)
        or pa.types.is_large_list_view(kind)
    ):
        return pa.list_(_logical_type(kind.value_type))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(_logical_type(kind.value_type), kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _logical_type(f.type), f.nullable) for f in kind])
    return kind


def _labels(dataset: Any) -> str:
    """ClassLabel names per column: which integer means which class is part of the data."""
    labels: dict[str, list[str]] = {}
    for name, feature in (getattr(dataset, "features", None) or {}).items():
        names = getattr(feature, "names", None)
        if type(feature).__name__ == "ClassLabel" and isinstance(names, list):
            labels[str(name)] = [str(n) for n in names]
    return json.dumps(labels, sort_keys=True)


def _format(dataset: Any) -> str:
    """What indexing the dataset returns: format type, columns, options, transform."""
    described = {
        "type": getattr(dataset, "_format_type", None),
        "columns": getattr(dataset, "_format_columns", None),
        "output_all_columns": bool(getattr(dataset, "_output_all_columns", False)),
        "kwargs": getattr(dataset, "_format_kwargs", None) or {},
    }
    return json.dumps(described, sort_keys=True, default=_named)


def _named(value: Any) -> str:
    """A callable by its qualified name; anything else by its type and str()."""
    if callable(value):
        module = getattr(value, "__module__", None) or type(value).__module__
        return f"{module}.{getattr(value, '__qualname__', type(value).__qualname__)}"
    return f"{type(value).__qualname__}:{value}"
