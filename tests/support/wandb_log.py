"""Read what W&B wrote to disk: the offline transaction log `run-<id>.wandb`.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version),
then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 seeded with the
chunk type, length, type FULL/FIRST/MIDDLE/LAST); a block's tail shorter than a
header is zero padding. Joined chunks are protobuf `Record`s
(`wandb.proto.wandb_internal_pb2`). The SDK no longer ships a Python reader, and
the tests must see what `wandb sync` would upload, not only in-process objects.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class LogError(ValueError):
    """The transaction log is truncated or corrupt."""


def read_chunks(raw: bytes) -> Iterator[bytes]:
    """Payloads of the log, chunks joined, checksums verified."""
    if len(raw) < HEADER.size:
        raise LogError(f"truncated log header ({len(raw)} bytes)")
    ident, magic, _version = HEADER.unpack_from(raw, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise LogError(f"not a W&B transaction log (ident {ident!r}, magic {magic:#x})")
    pos, pending = HEADER.size, None
    while pos < len(raw):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:
            pos += left  # block trailer padding
            continue
        if pos + CHUNK.size > len(raw):
            raise LogError(f"truncated chunk header at byte {pos}")
        checksum, length, kind = CHUNK.unpack_from(raw, pos)
        payload = raw[pos + CHUNK.size : pos + CHUNK.size + length]
        pos += CHUNK.size + length
        if len(payload) != length:
            raise LogError(f"truncated chunk at byte {pos}")
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            raise LogError(f"bad checksum before byte {pos}")
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += payload
            if kind == LAST:
                yield pending
                pending = None
        else:
            raise LogError(f"unexpected chunk type {kind} at byte {pos}")


def read_records(path: str | Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for payload in read_chunks(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


@dataclass
class WandbLog:
    """What a run's transaction log says: its id, final config and logged artifacts."""

    run_id: str
    config: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    record_types: list[str] = field(default_factory=list)

    def artifacts_of_type(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.artifacts if a["type"] == kind]


def _apply_config(config: dict[str, Any], update: Any, remove: Any) -> None:
    for item in update:
        keys = list(item.nested_key) or [item.key]
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)
    for item in remove:
        config.pop(item.key, None)


def _artifact(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type,
        "digest": record.digest,
        "metadata": json.loads(record.metadata) if record.metadata else {},
        "aliases": list(record.aliases),
        "files": {entry.path: entry.local_path for entry in record.manifest.contents},
    }


def find_logs(wandb_dir: str | Path) -> list[Path]:
    """Every run-*.wandb under a WANDB_DIR (or a run directory), oldest first."""
    return sorted(Path(wandb_dir).rglob("run-*.wandb"), key=lambda p: p.stat().st_mtime_ns)


def read_run(path: str | Path, timeout: float = 30.0) -> WandbLog:
    """Parse one finished run: `path` is the .wandb file or the run directory holding it.

    `run.finish()` returns before wandb-core has flushed the log (seen with wandb
    0.31 offline: a 7-byte file right after finish, complete a moment later), so
    wait until the run's `exit` record is on disk.
    """
    path = Path(path)
    if path.is_dir():
        logs = list(path.glob("run-*.wandb"))
        if len(logs) != 1:
            raise LogError(f"expected one run-*.wandb in {path}, found {len(logs)}")
        path = logs[0]
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_records(path)
        except LogError:
            records = []  # a chunk still being written
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        if time.monotonic() > deadline:
            raise LogError(f"{path}: no exit record after {timeout}s (was run.finish() called?)")
        time.sleep(0.05)
    log = WandbLog(run_id="")
    for record in records:
        kind = record.WhichOneof("record_type")
        log.record_types.append(kind or "")
        if kind == "run":
            log.run_id = record.run.run_id
            _apply_config(log.config, record.run.config.update, record.run.config.remove)
        elif kind == "config":
            _apply_config(log.config, record.config.update, record.config.remove)
        elif kind == "artifact":
            log.artifacts.append(_artifact(record.artifact))
    return log
