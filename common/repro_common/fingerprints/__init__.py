"""Data fingerprints: full-content blake3 digests of every input a run reads.

A run is reproducible only if we know exactly which bytes it trained on. MLflow's
own dataset digest looks at the first 10,000 elements and keeps 8 hex digits; ours
covers every byte, runs at memory bandwidth (blake3, multithreaded, files
memory-mapped in windows, folders on a thread pool, unchanged files from a stat
cache) and depends on the logical content, never on the memory layout.

Encodings are stable: changing one changes fingerprints users have recorded. Each
has its module, importing downward only (framing <- objects <- datasets; framing,
cache <- files; all of them <- this front door):

- `framing`: how fields are laid out before blake3, shared by every encoding.
- `objects`: bytes, numpy arrays, torch tensors, pandas, images, ``__fingerprint__()``.
- `datasets`: torch datasets, DataLoaders, any map-style dataset (every item, read
  twice to catch random augmentation), and the choice among in-memory kinds.
- `files`: a file's content; a folder as a Merkle digest over its sorted files.
- `cache`: per-file and per-folder digests keyed by stat, so a warm run costs stat calls.
- `delta`, `iceberg`: one version of a Delta or Iceberg table (see repro_common.table_inputs).
- `hf_datasets`: a Hugging Face Dataset or DatasetDict, from its Arrow buffers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from repro_common.fingerprints.cache import open_cache
from repro_common.fingerprints.datasets import AugmentedDataError, object_node
from repro_common.fingerprints.files import FileEntry, path_node, unpack_entries
from repro_common.fingerprints.framing import (
    PREFIX,
    SUPPORTED_KINDS,
    Context,
    Node,
    ProgressFn,
    unsupported_error,
)
from repro_common.fingerprints.objects import bytes_node

__all__ = [
    "PREFIX",
    "SUPPORTED_KINDS",
    "AugmentedDataError",
    "FileEntry",
    "FingerprintResult",
    "ProgressFn",
    "fingerprint",
    "fingerprint_details",
]


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
    # What a folder digest covers (see `files._pack_entry`), decoded only when asked for:
    # a folder answered from the cache then builds no per-file objects.
    packed_entries: bytes = field(default=b"", repr=False)

    @property
    def raw_entries(self) -> list[tuple[bytes, int, bytes]]:
        """(relative path, size, digest) per file, sorted by path."""
        return list(unpack_entries(self.packed_entries))

    @property
    def entries(self) -> list[FileEntry]:
        """Every file, sorted by relative POSIX path (built on demand: folders can be large)."""
        return [
            FileEntry(os.fsdecode(rel), size, PREFIX + digest.hex())
            for rel, size, digest in unpack_entries(self.packed_entries)
        ]

    def listing(self) -> list[dict[str, Any]]:
        """The per-file manifest, ready for JSON (sorted by path)."""
        return [
            {"path": e.path, "size_bytes": e.size_bytes, "digest": e.digest} for e in self.entries
        ]


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
    ctx = Context(max_items=max_items, cache=open_cache(use_cache), progress=progress)
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


def _top_level(obj: Any, ctx: Context) -> tuple[str, Node]:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "bytes", bytes_node(obj)
    if isinstance(obj, (str, os.PathLike)):
        return path_node(os.fspath(obj), ctx)
    found = object_node(obj, ctx)
    if found is None:
        raise unsupported_error(obj)
    return found
