"""Encodings of in-memory values: bytes, numpy arrays, torch tensors, pandas objects, images.

Each depends on the logical content, never the memory layout:

- bytes: plain blake3 of the content (``b3sum`` of the same bytes prints the same hex).
- numpy arrays and torch tensors: a header (little-endian dtype, shape) then the
  element bytes in C order, so C, Fortran, strided views and copies agree, and a
  tensor equals the numpy array with the same dtype, shape and values.
- pandas: column names, dtypes, index and values, column by column.
- images (PIL): mode, size and pixel bytes.
- the protocol: an object's own ``__fingerprint__()`` value (a version id, a content
  hash it already knows) stands for its content.

numpy, torch and pandas are passed in by the caller, who found them already imported:
a value of theirs is the only reason to touch them.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from repro_common.fingerprints.framing import (
    SUPPORTED_KINDS,
    Node,
    combine,
    int64s,
    kind_tag,
    new_hasher,
    u64,
    update_framed,
)

# Non-contiguous arrays are copied to C order this much at a time.
ARRAY_CHUNK = 16 << 20


# ---------------------------------------------------------------------------
# bytes and the protocol


def bytes_node(obj: bytes | bytearray | memoryview) -> Node:
    view = memoryview(obj)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    hasher = new_hasher()
    hasher.update(view)
    return Node(hasher.digest(), size=view.nbytes)


def protocol_node(obj: Any) -> Node:
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
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.custom/1"))
    update_framed(hasher, payload)
    return Node(hasher.digest())


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
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.ndarray/1"))
    update_framed(hasher, token.encode())
    update_framed(hasher, ",".join(str(int(n)) for n in shape).encode())
    size = 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.digest(), size


def ndarray_node(arr: Any, np: Any) -> Node:
    dtype = arr.dtype
    if dtype.hasobject:
        raise TypeError(
            f"cannot fingerprint a numpy array of dtype {dtype} (object elements have no "
            f"stable bytes); convert it to a numeric or string dtype. Supported kinds are {SUPPORTED_KINDS}"
        )
    if dtype.names is not None:
        # Fields one by one: padding bytes between fields are not content.
        hasher = new_hasher()
        hasher.update(kind_tag("mlrepro.structured/1"))
        update_framed(hasher, ",".join(str(int(n)) for n in arr.shape).encode())
        size = 0
        for name in dtype.names:
            sub = ndarray_node(arr[name], np)
            update_framed(hasher, name.encode("utf-8", "surrogatepass"))
            hasher.update(sub.digest)
            size += sub.size
        return Node(hasher.digest(), size=size)
    digest, size = _array_digest(_dtype_token(dtype), arr.shape, _c_order_chunks(arr, np))
    return Node(digest, size=size)


_TORCH_ONLY_DTYPES = ("bfloat16", "float8", "complex32", "bits", "quint", "qint", "uint1", "int1")


def tensor_node(tensor: Any, torch: Any) -> Node:
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
        return Node(digest, size=size)
    # Accelerator memory: copy to the host one slab at a time, never the whole tensor.
    host_dtype = torch.empty(0, dtype=tensor.dtype).numpy().dtype
    digest, size = _array_digest(
        token or _dtype_token(host_dtype), tuple(tensor.shape), _device_chunks(tensor, np)
    )
    return Node(digest, size=size)


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


def index_digest(indices: Iterable[int]) -> Node:
    """A list of indices (a Subset's, a sampler's): order matters."""
    packed = int64s(indices)
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.indices/1"))
    update_framed(hasher, packed)
    return Node(hasher.digest(), size=len(packed))


# ---------------------------------------------------------------------------
# images


def image_node(image: Any) -> Node:
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.image/1"))
    update_framed(hasher, f"{image.mode}|{image.size[0]}x{image.size[1]}".encode())
    payload = image.tobytes()
    update_framed(hasher, payload)
    return Node(hasher.digest(), size=len(payload))


# ---------------------------------------------------------------------------
# pandas


def dataframe_node(frame: Any, pd: Any) -> Node:
    parts = [index_node(frame.columns, pd), index_node(frame.index, pd)]
    parts += [_values_node(frame.iloc[:, i], pd) for i in range(frame.shape[1])]
    return combine("dataframe", parts)


def series_node(series: Any, pd: Any) -> Node:
    name = _objects_node([series.name], pd)
    return combine("series", [name, index_node(series.index, pd), _values_node(series, pd)])


def index_node(index: Any, pd: Any) -> Node:
    names = _objects_node(list(index.names), pd)
    levels = [_values_node(index.get_level_values(i), pd) for i in range(index.nlevels)]
    return combine("index", [names, *levels])


def _values_node(column: Any, pd: Any) -> Node:
    """One Series' or Index's values with its dtype: Int64 and int64 are different data."""
    import numpy as np

    dtype = column.dtype
    label = str(dtype).encode()
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(column.array.codes)
        parts = [index_node(dtype.categories, pd), ndarray_node(codes, np)]
        return combine("categorical", parts, label + (b"|ordered" if dtype.ordered else b""))
    if isinstance(dtype, np.dtype):
        arr = np.asarray(column)
        if dtype.hasobject:
            return combine("column", [_objects_node(arr, pd)], label)
        return combine("column", [ndarray_node(arr, np)], label)
    values = column.array
    if isinstance(dtype, pd.DatetimeTZDtype):
        return combine("column", [ndarray_node(np.asarray(values.asi8), np)], label)
    masked = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)
    if isinstance(values, masked):
        numpy_dtype = dtype.numpy_dtype
        mask = np.asarray(values.isna(), dtype=bool)
        filled = values.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))
        return combine("column", [ndarray_node(mask, np), ndarray_node(filled, np)], label)
    return combine("column", [_objects_node(np.asarray(values, dtype=object), pd)], label)


def _objects_node(values: Any, pd: Any) -> Node:
    """Python objects in a column: strings fast, other plain values one by one."""
    values = list(values)
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.objects/1"))
    hasher.update(u64(len(values)))
    if all(type(v) is str for v in values):
        encoded = [v.encode("utf-8", "surrogatepass") for v in values]
        hasher.update(b"S")
        hasher.update(int64s(map(len, encoded), "Q"))
        blob = b"".join(encoded)
        hasher.update(blob)
        return Node(hasher.digest(), size=len(blob))
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
    return Node(hasher.digest(), size=size)


def _object_bytes(value: Any, pd: Any) -> bytes:
    def framed(tag: bytes, payload: bytes) -> bytes:
        return tag + u64(len(payload)) + payload

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
