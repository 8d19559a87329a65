"""The per-file digest cache: stat-only re-fingerprints, shared by processes, never fatal."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from repro_common.fingerprints import fingerprint, fingerprint_details
from repro_common.fingerprints.cache import CACHE_FILE
from support.procs import clean_env

OLD = time.time() - 3600  # outside the racy window


def make_files(root: Path, count: int, mtime: float = OLD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        target = root / f"part-{i:03d}.bin"
        target.write_bytes(f"record {i}\n".encode() * (i + 1))
        os.utime(target, (mtime, mtime))
    return root


def test_an_unchanged_folder_is_answered_from_the_cache(tmp_path: Path, hashed: list[str]) -> None:
    root = make_files(tmp_path / "d", 30)
    first = fingerprint(root)
    assert len(hashed) == 30
    hashed.clear()
    assert fingerprint(root) == first
    assert hashed == []
    assert fingerprint(root, use_cache=False) == first
    assert len(hashed) == 30


def test_a_changed_file_is_hashed_again(tmp_path: Path, hashed: list[str]) -> None:
    root = make_files(tmp_path / "d", 5)
    first = fingerprint(root)
    target = root / "part-002.bin"
    target.write_bytes(target.read_bytes().replace(b"2", b"7"))  # same size
    os.utime(target, (OLD + 10, OLD + 10))
    hashed.clear()
    assert fingerprint(root) != first
    assert hashed == ["part-002.bin"]
    # Replacing a file (new inode) with the old mtime and size is caught too.
    replacement = root / "tmp"
    replacement.write_bytes(target.read_bytes().replace(b"7", b"9"))
    os.utime(replacement, (OLD + 10, OLD + 10))
    replacement.rename(target)
    hashed.clear()
    fingerprint(root)
    assert hashed == ["part-002.bin"]


def test_single_files_use_the_cache_too(tmp_path: Path, hashed: list[str]) -> None:
    target = make_files(tmp_path / "d", 1) / "part-000.bin"
    first = fingerprint(target)
    assert fingerprint(target) == first
    assert hashed == ["part-000.bin"]


def test_files_modified_just_now_are_not_cached(
    tmp_path: Path, hashed: list[str], frozen_clock: float
) -> None:
    window = 2.0  # the racy window: files modified within 2 s of a walk are never cached
    inside = make_files(tmp_path / "inside", 3, mtime=frozen_clock - window / 2)
    fingerprint(inside)
    fingerprint(inside)
    assert len(hashed) == 6, "a file in its racy window may still change unseen"

    hashed.clear()
    outside = make_files(tmp_path / "outside", 3, mtime=frozen_clock - window - 1)
    fingerprint(outside)
    fingerprint(outside)
    assert len(hashed) == 3, "a file just past the racy window is cached"


def test_no_cache_neither_reads_nor_writes(tmp_path: Path, cache_dir: Path) -> None:
    root = make_files(tmp_path / "d", 3)
    fingerprint(root, use_cache=False)
    assert not (cache_dir / CACHE_FILE).exists()
    fingerprint(root)
    assert (cache_dir / CACHE_FILE).exists()


def test_a_corrupt_cache_is_ignored_with_one_warning(
    tmp_path: Path, cache_dir: Path, hashed: list[str]
) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    root = make_files(tmp_path / "d", 4)
    expected = fingerprint(root, use_cache=False)
    with pytest.warns(RuntimeWarning, match="unusable") as caught:
        assert fingerprint(root) == expected
        assert fingerprint(root) == expected
    assert len([w for w in caught if "fingerprint cache" in str(w.message)]) == 1


def test_an_unwritable_cache_location_is_never_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLREPRO_CACHE_DIR", str(blocker / "cache"))
    root = make_files(tmp_path / "d", 2)
    with pytest.warns(RuntimeWarning, match="fingerprint cache"):
        result = fingerprint_details(root)
    assert result.files == 2


def test_a_read_only_cache_file_still_answers(
    tmp_path: Path, cache_dir: Path, read_only_fingerprints: Callable[..., list[dict[str, Any]]]
) -> None:
    """A cache file its user may not write (a shared or older one) answers what it knows;
    a new file is hashed, not cached, with one warning, and nothing is lost."""
    root = make_files(tmp_path / "d", 3)
    first = fingerprint(root)

    unchanged, grown, again = read_only_fingerprints(root, f"+{root / 'new.bin'}", root, root)

    assert (unchanged["fingerprint"], unchanged["hashed"], unchanged["warnings"]) == (first, [], [])
    assert grown["fingerprint"] == again["fingerprint"] == fingerprint(root, use_cache=False)
    assert grown["hashed"] == again["hashed"] == ["new.bin"], (
        "the old files still come from the cache"
    )
    assert len(grown["warnings"]) == 1 and "cannot write fingerprint cache" in grown["warnings"][0]
    assert again["warnings"] == []
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        assert conn.execute("SELECT count(*) FROM file_digests").fetchone()[0] == 3


CONCURRENT = """
import json, sys, warnings
warnings.simplefilter("error")
from repro_common.fingerprints import fingerprint_details
results = []
for _ in range(3):
    for root in sys.argv[1:]:
        results.append(fingerprint_details(root).fingerprint)
print(json.dumps(results))
"""


def test_four_processes_share_the_cache_safely(tmp_path: Path, cache_dir: Path) -> None:
    roots = [str(make_files(tmp_path / f"d{i}", 60)) for i in range(4)]
    expected = [fingerprint(r, use_cache=False) for r in roots]
    env = clean_env(MLREPRO_CACHE_DIR=str(cache_dir))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, *roots[i:], *roots[:i]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Warning" not in err, err
        rotated = json.loads(out)
        assert sorted(set(rotated)) == sorted(set(expected))
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM file_digests").fetchone()[0] == 240
        assert conn.execute("SELECT count(*) FROM tree_digests").fetchone()[0] == 4
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
