"""Data fingerprints (minimal first cut; deepened by the data issue)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import blake3

_registry: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def fingerprint(obj: Any) -> str:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "blake3:" + blake3.blake3(bytes(obj)).hexdigest()
    if isinstance(obj, (str, Path)):
        return "blake3:" + blake3.blake3(Path(obj).read_bytes()).hexdigest()
    raise TypeError(f"cannot fingerprint {type(obj).__name__}")


def track_data(obj: Any, name: str, source: str | None = None) -> dict[str, Any]:
    item = {"name": name, "kind": "bytes", "fingerprint": fingerprint(obj), "source": source, "partial": False}
    with _lock:
        _registry[name] = item
    return item


def collect_data(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with _lock:
        return [dict(v) for v in _registry.values()]
