"""The fingerprint cache is keyed on ctime too: bytes rewritten with size, inode and mtime restored
get a new fingerprint, as git's index would notice."""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from repro_common.fingerprints import files as fingerprint_files
from repro_common.fingerprints import fingerprint
from repro_common.fingerprints.cache import CACHE_FILE

OLD_NS = (int(time.time()) - 3600) * 1_000_000_000  # outside the racy window


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files actually read and hashed (not answered from the cache)."""
    calls: list[str] = []
    real = fingerprint_files.hash_file

    def counting(path: str | bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(os.path.basename(os.fsdecode(path)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fingerprint_files, "hash_file", counting)
    return calls


def _write_old(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    os.utime(path, ns=(OLD_NS, OLD_NS))


def _rewrite_in_place_hiding_it(path: Path, content: bytes) -> None:
    """Same size, same inode, mtime put back to the nanosecond: only the ctime moves."""
    before = path.stat()
    time.sleep(0.02)  # a coarse ctime clock must tick
    with open(path, "r+b") as handle:
        handle.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert after.st_ctime_ns != before.st_ctime_ns


def test_a_file_rewritten_with_its_mtime_restored_gets_a_new_fingerprint(
    tmp_path: Path, hashed: list[str]
) -> None:
    target = tmp_path / "weights.bin"
    _write_old(target, b"A" * 4096)
    first = fingerprint(target)
    hashed.clear()
    assert fingerprint(target) == first and hashed == []  # cached
    _rewrite_in_place_hiding_it(target, b"B" * 4096)
    assert fingerprint(target) != first
    assert hashed == ["weights.bin"]
    assert fingerprint(target) == fingerprint(target, use_cache=False)


def test_a_folder_with_one_file_rewritten_that_way_gets_a_new_fingerprint(
    tmp_path: Path, hashed: list[str]
) -> None:
    root = tmp_path / "dataset"
    root.mkdir()
    for i in range(5):
        _write_old(root / f"part-{i}.csv", f"row {i}\n".encode() * 50)
    first = fingerprint(root)
    hashed.clear()
    assert fingerprint(root) == first and hashed == []  # the folder row answers
    _rewrite_in_place_hiding_it(root / "part-3.csv", b"row X\n" * 50)
    assert fingerprint(root) != first
    assert hashed == ["part-3.csv"]


def test_a_cache_file_written_by_the_previous_version_still_works(
    tmp_path: Path, hashed: list[str]
) -> None:
    """Old rows hold four-field keys (no ctime): never trusted, rehashed once, replaced."""
    target = tmp_path / "train.csv"
    _write_old(target, b"a,b\n1,2\n")
    truth = fingerprint(target, use_cache=False)
    cache = Path(os.environ["MLREPRO_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    st = target.stat()
    old_key = struct.pack("<3Qq", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with sqlite3.connect(cache / CACHE_FILE) as conn:
        conn.execute(
            "CREATE TABLE file_digests (path BLOB PRIMARY KEY, stat BLOB NOT NULL,"
            " digest BLOB NOT NULL) WITHOUT ROWID"
        )
        stale = b"\x00" * 32  # what the old version had cached for these bytes
        conn.execute(
            "INSERT INTO file_digests VALUES (?, ?, ?)", (os.fsencode(target), old_key, stale)
        )
    hashed.clear()
    assert fingerprint(target) == truth
    assert hashed == ["train.csv"]
    hashed.clear()
    assert fingerprint(target) == truth and hashed == []  # the row was replaced, cached again
