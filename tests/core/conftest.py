"""Fixtures shared by the fingerprint-cache tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repro_common import data


@pytest.fixture
def cache_dir() -> Path:
    """The cache folder the autouse fixture in tests/conftest.py gave this test."""
    return Path(os.environ["MLREPRO_CACHE_DIR"])


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files actually read and hashed (not answered from a cache)."""
    calls: list[str] = []
    real = data.hash_file

    def counting(path: str | bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(os.path.basename(os.fsdecode(path)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data, "hash_file", counting)
    return calls
