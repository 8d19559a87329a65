"""The per-folder cache: an unchanged folder is one lookup, any change to its files is seen."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from repro_common.fingerprints import (
    FileEntry,
    FingerprintResult,
    fingerprint,
    fingerprint_details,
)
from repro_common.fingerprints import files as fingerprint_files
from repro_common.fingerprints.cache import CACHE_FILE, FingerprintCache

OLD = time.time() - 3600  # outside the racy window


@pytest.fixture
def per_file_lookups(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Folders whose per-file rows were read: empty when the folder row answered."""
    calls: list[bytes] = []
    real = FingerprintCache.lookup_tree

    def counting(self: FingerprintCache, root: bytes) -> dict[bytes, tuple[bytes, bytes]]:
        calls.append(root)
        return real(self, root)

    monkeypatch.setattr(FingerprintCache, "lookup_tree", counting)
    return calls


def write(path: Path, content: bytes, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def make_tree(root: Path, mtime: float = OLD) -> Path:
    for i in range(6):
        write(root / f"shard-{i % 2}" / f"part-{i}.bin", f"record {i}\n".encode() * (i + 1), mtime)
    write(root / "labels.csv", b"cat\ndog\n", mtime)
    write(root / "empty.bin", b"", mtime)
    (root / "no-files-here").mkdir()
    return root


def tree_rows(cache_dir: Path) -> dict[str, bytes]:
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        rows = conn.execute("SELECT root, listing FROM tree_digests").fetchall()
    return {os.fsdecode(root): listing for root, listing in rows}


def forget_trees(cache_dir: Path) -> None:
    with sqlite3.connect(cache_dir / CACHE_FILE) as conn:
        conn.execute("DELETE FROM tree_digests")


def summary(result: FingerprintResult) -> tuple[object, ...]:
    return (
        result.kind,
        result.fingerprint,
        result.size_bytes,
        result.files,
        result.entries,
        result.listing(),
        result.raw_entries,
    )


def test_cold_per_file_and_folder_answers_agree(
    tmp_path: Path, cache_dir: Path, hashed: list[str], per_file_lookups: list[bytes]
) -> None:
    root = make_tree(tmp_path / "d")
    (root / "linked.csv").symlink_to(root / "labels.csv")
    (root / "linked-shard").symlink_to(root / "shard-0", target_is_directory=True)
    uncached = fingerprint_details(root, use_cache=False)
    assert uncached.files == 12
    hashed.clear()

    cold = fingerprint_details(root)
    assert len(hashed) == 12
    assert set(tree_rows(cache_dir)) == {str(root)}

    hashed.clear()
    per_file_lookups.clear()
    folder_hit = fingerprint_details(root)
    assert hashed == [] and per_file_lookups == [], "answered by the folder row alone"

    forget_trees(cache_dir)
    per_file = fingerprint_details(root)
    assert hashed == [] and per_file_lookups == [os.fsencode(root) + b"/"]
    assert set(tree_rows(cache_dir)) == {str(root)}, "a per-file answer stores the folder row"

    assert summary(cold) == summary(folder_hit) == summary(per_file) == summary(uncached)
    assert folder_hit.entries[0] == FileEntry(
        "empty.bin", 0, "blake3:" + blake3.blake3(b"").hexdigest()
    )
    assert [e.path for e in folder_hit.entries] == sorted(e.path for e in folder_hit.entries)


def test_the_digest_format_is_unchanged(tmp_path: Path) -> None:
    """Fingerprints users logged before the folder cache must still match."""
    root = tmp_path / "d"
    files = {b"a.bin": b"a", b"b/x.bin": b"xx", b"b/caf\xe9.bin": b"not utf-8 name"}
    for rel, content in files.items():
        write(Path(os.fsdecode(os.path.join(os.fsencode(root), rel))), content)
    listing = b""
    for rel, content in sorted(files.items()):
        listing += len(rel).to_bytes(8, "little") + len(content).to_bytes(8, "little")
        listing += rel + blake3.blake3(content).digest()
    expected = blake3.blake3(b"mlrepro.dir/1" + (3).to_bytes(8, "little") + listing).hexdigest()
    for _ in range(3):  # cold, then from the folder row
        result = fingerprint_details(root)
        assert result.fingerprint == "blake3:" + expected
        assert [os.fsencode(e.path) for e in result.entries] == sorted(files)


def test_an_in_place_edit_with_a_new_mtime_is_seen(tmp_path: Path, hashed: list[str]) -> None:
    root = make_tree(tmp_path / "d")
    first = fingerprint(root)
    target = root / "shard-1" / "part-3.bin"
    content = target.read_bytes()
    write(target, content.replace(b"3", b"8"), OLD + 10)  # same size, same inode
    hashed.clear()
    edited = fingerprint(root)
    assert hashed == ["part-3.bin"]
    assert edited == fingerprint(root, use_cache=False) != first

    write(target, content, OLD)  # back to the old content and mtime
    assert fingerprint(root) == first


def test_a_replaced_file_with_the_same_size_and_mtime_is_seen(
    tmp_path: Path, hashed: list[str]
) -> None:
    root = make_tree(tmp_path / "d")
    first = fingerprint(root)
    target = root / "labels.csv"
    replacement = write(root / "new.tmp", b"cow\nemu\n")  # a new inode
    replacement.rename(target)
    hashed.clear()
    assert fingerprint(root) != first
    assert hashed == ["labels.csv"]


@pytest.mark.parametrize(
    "change", ["add", "remove", "rename", "move", "rename-folder", "empty-folder"]
)
def test_adding_removing_renaming_or_moving_a_file_is_seen(
    tmp_path: Path, cache_dir: Path, hashed: list[str], change: str
) -> None:
    root = make_tree(tmp_path / "d")
    first = fingerprint(root)
    before = tree_rows(cache_dir)[str(root)]
    if change == "add":
        write(root / "shard-0" / "extra.bin", b"more")
    elif change == "remove":
        (root / "shard-0" / "part-2.bin").unlink()
    elif change == "rename":
        (root / "shard-0" / "part-2.bin").rename(root / "shard-0" / "part-9.bin")
    elif change == "move":
        (root / "shard-0" / "part-2.bin").rename(root / "shard-1" / "part-2.bin")
    elif change == "rename-folder":
        (root / "shard-0").rename(root / "shard-x")
    else:
        (root / "shard-1" / "nested").mkdir()
    hashed.clear()
    after = fingerprint(root)
    new_paths = {
        "add": ["extra.bin"],
        "rename": ["part-9.bin"],
        "move": ["part-2.bin"],
        "rename-folder": ["part-0.bin", "part-2.bin", "part-4.bin"],
    }
    assert sorted(hashed) == new_paths.get(change, []), "the others come from per-file rows"
    assert after == fingerprint(root, use_cache=False)
    if change == "empty-folder":
        assert after == first, "empty folders are not content"
    else:
        assert after != first
        assert tree_rows(cache_dir)[str(root)] != before


def test_renames_are_seen_even_when_the_walk_order_stays_the_same(
    tmp_path: Path, hashed: list[str]
) -> None:
    """One entry per folder: only the names themselves tell the walks apart."""
    root = tmp_path / "d"
    write(root / "inner" / "a.bin", b"payload")
    first = fingerprint(root)
    (root / "inner" / "a.bin").rename(root / "inner" / "b.bin")
    renamed_file = fingerprint(root)
    (root / "inner").rename(root / "outer")
    renamed_folder = fingerprint(root)
    assert len({first, renamed_file, renamed_folder}) == 3
    assert renamed_folder == fingerprint(root, use_cache=False)
    assert hashed.count("b.bin") == 3


def test_a_change_in_a_sub_folder_reaches_every_cached_ancestor(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d")
    outer, inner = fingerprint(root), fingerprint(root / "shard-0")
    write(root / "shard-0" / "part-0.bin", b"changed!!", OLD + 5)
    assert fingerprint(root) == fingerprint(root, use_cache=False) != outer
    assert fingerprint(root / "shard-0") != inner
    assert fingerprint(root / "shard-0") == fingerprint(root / "shard-0", use_cache=False)


def test_a_folder_with_a_racy_file_is_not_stored_whole(
    tmp_path: Path, cache_dir: Path, hashed: list[str], frozen_clock: float
) -> None:
    window = 2.0  # the racy window: files modified within 2 s of a walk are never cached
    just_now = frozen_clock - window / 2  # inside the racy window of every walk below
    root = make_tree(tmp_path / "d")
    write(root / "fresh.bin", b"just written", just_now)
    first = fingerprint(root)
    assert tree_rows(cache_dir) == {}, "a file in its racy window may still change unseen"
    hashed.clear()
    assert fingerprint(root) == first
    assert hashed == ["fresh.bin"], "the other files still come from per-file rows"

    all_fresh = make_tree(tmp_path / "all-fresh", mtime=just_now)
    fingerprint(all_fresh)
    hashed.clear()
    fingerprint(all_fresh)
    assert len(hashed) == 8 and str(all_fresh) not in tree_rows(cache_dir)

    settled = make_tree(tmp_path / "settled", mtime=frozen_clock - window - 1)
    fingerprint(settled)
    assert str(settled) in tree_rows(cache_dir), "a folder just past the racy window is stored"


def test_a_file_that_grows_while_hashed_is_not_stored_whole(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "d")
    real = fingerprint_files.hash_file

    def appending_first(path: str | bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fsdecode(path).endswith("labels.csv"):
            with open(path, "ab") as handle:  # a writer gets there first
                handle.write(b"emu\n")
            os.utime(path, (OLD, OLD))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fingerprint_files, "hash_file", appending_first)
    fingerprint(root)
    assert tree_rows(cache_dir) == {}
    monkeypatch.setattr(fingerprint_files, "hash_file", real)
    assert fingerprint(root) == fingerprint(root, use_cache=False)
    assert set(tree_rows(cache_dir)) == {str(root)}


def test_errors_are_raised_with_a_warm_folder_row(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d")
    fingerprint(root)
    fifo = root / "shard-0" / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file") as info:
        fingerprint(root)
    assert info.value.errno == errno.EINVAL and str(fifo) in str(info.value)
    fifo.unlink()
    dangling = root / "shard-1" / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(OSError, match="broken symbolic link") as info:
        fingerprint(root)
    assert str(dangling) in str(info.value)
    dangling.unlink()
    loop = root / "shard-1" / "back"
    loop.symlink_to(root, target_is_directory=True)
    with pytest.raises(OSError) as info:
        fingerprint(root)
    assert info.value.errno == errno.ELOOP and str(loop) in str(info.value)


def test_progress_is_complete_for_a_folder_row_hit(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d")
    fingerprint(root)
    seen: list[tuple[int, int]] = []
    result = fingerprint_details(root, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(result.size_bytes, result.size_bytes)]


def test_a_corrupt_cache_still_gives_the_right_fingerprint_with_one_warning(
    tmp_path: Path, cache_dir: Path
) -> None:
    root = make_tree(tmp_path / "d")
    expected = fingerprint(root, use_cache=False)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / CACHE_FILE).write_bytes(b"\x00not sqlite" * 500)
    with pytest.warns(RuntimeWarning, match="unusable") as caught:
        assert fingerprint(root) == expected
        assert fingerprint(root) == expected
    assert len([w for w in caught if "fingerprint cache" in str(w.message)]) == 1


def test_a_folder_table_of_another_shape_disables_the_cache_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-cache"
    other.mkdir()
    with sqlite3.connect(other / CACHE_FILE) as conn:
        conn.execute("CREATE TABLE tree_digests (root BLOB PRIMARY KEY, something_else BLOB)")
    monkeypatch.setenv("MLREPRO_CACHE_DIR", str(other))
    root = make_tree(tmp_path / "d")
    expected = fingerprint(root, use_cache=False)
    with pytest.warns(RuntimeWarning, match="unusable") as caught:
        assert fingerprint(root) == expected
        assert fingerprint(root) == expected
    assert len([w for w in caught if "fingerprint cache" in str(w.message)]) == 1


def test_a_read_only_cache_answers_from_folder_rows(
    tmp_path: Path, read_only_fingerprints: Callable[..., list[dict[str, Any]]]
) -> None:
    """A cache its user may not write still answers an unchanged folder from its folder row;
    a changed folder is walked and hashed right, with one warning for the failed write."""
    root = make_tree(tmp_path / "d")
    first = fingerprint(root)

    unchanged, grown, again = read_only_fingerprints(root, f"+{root / 'extra.bin'}", root, root)

    assert unchanged == {"fingerprint": first, "hashed": [], "per_file_lookups": 0, "warnings": []}
    assert grown["fingerprint"] == again["fingerprint"] == fingerprint(root, use_cache=False)
    assert grown["fingerprint"] != first
    assert grown["hashed"] == again["hashed"] == ["extra.bin"]
    assert len(grown["warnings"]) == 1 and "cannot write fingerprint cache" in grown["warnings"][0]
    assert again["warnings"] == []
