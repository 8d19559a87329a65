"""Digest framing: how fields are laid out before blake3, shared by every encoding.

Stable: each encoding starts with a kind tag (`mlrepro.<kind>/<n>`), lengths go
before variable fields, and composites hash their parts' digests in order, so no
two different contents hash alike. Changing any of this changes fingerprints
users have recorded (tests/core/test_recorded_values.py pins them).
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import blake3

if TYPE_CHECKING:
    from repro_common.fingerprints.cache import FingerprintCache

PREFIX = "blake3:"
SUPPORTED_KINDS = (
    "bytes/bytearray/memoryview, a file or directory path (str or os.PathLike), "
    "numpy arrays (not object dtype), torch tensors (dense), pandas DataFrame/Series/Index, "
    "torch TensorDataset/Subset/ConcatDataset/DataLoader, Hugging Face Dataset/DatasetDict, "
    "map-style datasets "
    "(__len__ and __getitem__), or any object with a __fingerprint__() method"
)

ProgressFn = Callable[[int, int], None]
"""progress(advance_bytes, total_bytes): called from worker threads as bytes are hashed."""


def new_hasher() -> Any:
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def update_framed(hasher: Any, payload: bytes) -> None:
    """Length-prefixed, so that no two different sequences of fields hash alike."""
    hasher.update(u64(len(payload)))
    hasher.update(payload)


def kind_tag(text: str) -> bytes:
    return text.encode()


@dataclass
class Node:
    """One encoded value: its digest and what it covers (bytes, partial read, items)."""

    digest: bytes
    size: int = 0
    partial: bool = False
    items_hashed: int | None = None
    items_total: int | None = None


@dataclass
class Context:
    """One fingerprint call's settings, and what a path input reports back (its listing)."""

    max_items: int | None
    cache: FingerprintCache | None
    progress: ProgressFn | None
    packed_entries: bytes = b""
    files: int | None = None


def int64s(values: Iterable[int], typecode: str = "q") -> bytes:
    """Integers as little-endian 64-bit words, whatever the machine's byte order."""
    packed = array.array(typecode, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def combine(kind: str, parts: list[Node], extra: bytes = b"") -> Node:
    """A composite: its kind, the number of parts, their digests in order, then `extra`."""
    hasher = new_hasher()
    hasher.update(kind_tag(f"mlrepro.{kind}/1"))
    hasher.update(u64(len(parts)))
    for part in parts:
        hasher.update(part.digest)
    update_framed(hasher, extra)
    return Node(
        hasher.digest(),
        size=sum(p.size for p in parts),
        partial=any(p.partial for p in parts),
    )


def unsupported_error(obj: Any, where: str = "") -> TypeError:
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    return TypeError(f"cannot fingerprint {name}{where}: supported kinds are {SUPPORTED_KINDS}")
