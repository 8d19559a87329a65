"""Seeds (minimal first cut; deepened by the seeds issue)."""

from __future__ import annotations

import os
from typing import Any

import blake3

_global_seed: int | None = None


def derive_seed(name: str, seed: int | None = None) -> int:
    base = _global_seed if seed is None else seed
    return int.from_bytes(blake3.blake3(f"{base}:{name}".encode()).digest()[:4], "big")


def seed_everything(seed: int | None = None, deterministic: bool = False, workers: bool = True) -> dict[str, Any]:
    global _global_seed
    import random

    _global_seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    random.seed(_global_seed)
    return {"global": _global_seed}


def collect_seeds(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"global": _global_seed, "seeded": _global_seed is not None}
