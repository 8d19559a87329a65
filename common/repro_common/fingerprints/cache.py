"""Per-file digest cache, so re-fingerprinting an unchanged folder costs only `stat` calls.

Keyed like git's index: a digest is reused only while the file's
(path, device, inode, size, mtime_ns, ctime_ns) are all unchanged. The ctime
matters: bytes rewritten in place with size and mtime restored (`os.utime`)
leave every other field as it was, but the kernel always moves the ctime. A second table keeps,
per folder, the signature of its last walk (every file's path and stat key) and
the listing its digest covers, so an unchanged folder costs one lookup, not one
per file. SQLite in WAL mode lets several processes (DataLoader workers,
parallel jobs) read and write at once.
A cache is an optimisation, never a dependency: a corrupt or unwritable one is
ignored with one warning and everything is hashed afresh.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repro_common.logs import Once

CACHE_FILE = "fingerprints-v1.sqlite3"
# A file modified this recently may change again within the same mtime tick
# (1-2 s on some filesystems) without its key changing: hash it, do not cache it
# (the "racy git" rule).
RACY_WINDOW_NS = 2_000_000_000
_BUSY_TIMEOUT_S = 15.0

# `stat` packs (device, inode, size, mtime_ns, ctime_ns) as five little-endian
# 64-bit integers: one bytes comparison per file keeps a warm re-fingerprint close
# to the cost of stat. Rows written by older versions hold four-field keys, which
# never compare equal to these: such a file is hashed once more and its row replaced.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_digests (
    path BLOB PRIMARY KEY,
    stat BLOB NOT NULL,
    digest BLOB NOT NULL
) WITHOUT ROWID
"""
# One row per fingerprinted folder: `signature` is a blake3 digest of its walk (see
# fingerprints.files._walk), `listing` the exact bytes its folder digest is computed over.
_TREE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tree_digests (
    root BLOB PRIMARY KEY,
    signature BLOB NOT NULL,
    listing BLOB NOT NULL
) WITHOUT ROWID
"""
_STAT = struct.Struct("<3Qqq")
_U64 = (1 << 64) - 1
STAT_KEY_SIZE = _STAT.size


def stat_key(st: os.stat_result) -> bytes:
    """What must be unchanged for a cached digest to be trusted: device, inode, size, mtime, ctime."""
    return _STAT.pack(
        st.st_dev & _U64, st.st_ino & _U64, st.st_size, st.st_mtime_ns, st.st_ctime_ns
    )


def stat_keys(stats: list[os.stat_result]) -> bytes:
    """`stat_key` of each, back to back, with no Python call per file (warm walks live on this)."""
    pack = _STAT.pack
    try:
        return b"".join(
            [pack(s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in stats]
        )
    except struct.error:  # a negative device or inode number (not on Linux): mask them
        return b"".join(map(stat_key, stats))


def unpack_stat_keys(keys: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(device, inode, size, mtime_ns, ctime_ns) of each key in a `stat_keys` blob."""
    return _STAT.iter_unpack(keys)


def key_mtime_ns(key: bytes) -> int:
    """The mtime the racy window is measured from (as git does: a copy with its
    mtime preserved is cached at once, though its ctime is new)."""
    return int(_STAT.unpack(key)[3])


def default_cache_dir() -> Path:
    configured = os.environ.get("MLREPRO_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlrepro", appauthor=False))


_warned = Once()


def _warn_once(key: str, message: str) -> None:
    if _warned.first(key):
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class FingerprintCache:
    """One SQLite file of per-file digests; every failure disables it instead of raising."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CACHE_FILE
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._disabled = False
        self._readonly = False
        self._trees = False

    # -- connection -------------------------------------------------------
    def _connection(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        if self._conn is not None:
            return self._conn
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path),
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
                conn.execute("PRAGMA synchronous=NORMAL")
                self._retry_locked(lambda: conn.execute(_SCHEMA))
                conn.execute("SELECT 1 FROM file_digests LIMIT 1").fetchall()
            except Exception:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return None
        self._conn = conn
        self._trees = self._tree_table(conn)
        return conn

    def _tree_table(self, conn: sqlite3.Connection) -> bool:
        """Add the folder table; a read-only cache from an older version keeps its per-file rows."""
        try:
            self._retry_locked(lambda: conn.execute(_TREE_SCHEMA))
        except sqlite3.OperationalError as exc:
            self._fail_write(exc)
            return False
        return True

    @staticmethod
    def _retry_locked(fn):  # type: ignore[no-untyped-def]
        """Switching to WAL or creating the table races with other processes at first use."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _fail(self, exc: BaseException) -> None:
        self._disabled = True
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        _warn_once(
            str(self.path),
            f"mlrepro: fingerprint cache {self.path} is unusable ({type(exc).__name__}: {exc}); "
            "continuing without it (delete the file to rebuild it, or set MLREPRO_CACHE_DIR)",
        )

    def _fail_write(self, exc: BaseException) -> None:
        self._readonly = True
        _warn_once(
            str(self.path) + ":write",
            f"mlrepro: cannot write fingerprint cache {self.path} ({type(exc).__name__}: {exc}); "
            "digests are computed but not cached",
        )

    def _write_failed(self, exc: sqlite3.DatabaseError) -> None:
        """A locked or read-only file stops the writes only; anything else, the whole cache."""
        if isinstance(exc, sqlite3.OperationalError):
            self._fail_write(exc)
        else:
            self._fail(exc)

    # -- reads ------------------------------------------------------------
    def _rows(self, query: str, params: tuple[bytes, ...], trees: bool = False) -> list[Any]:
        """The rows of one query; none when the cache (or, with `trees`, its folder table) is off."""
        with self._lock:
            conn = self._connection()
            if conn is None or (trees and not self._trees):
                return []
            try:
                return conn.execute(query, params).fetchall()
            except sqlite3.Error as exc:
                self._fail(exc)
                return []

    def lookup(self, path: bytes) -> tuple[bytes, bytes] | None:
        """(stat key, digest) cached for one file (path as bytes, see os.fsencode)."""
        rows = self._rows("SELECT stat, digest FROM file_digests WHERE path = ?", (path,))
        return (rows[0][0], rows[0][1]) if rows else None

    def lookup_tree(self, root: bytes) -> dict[bytes, tuple[bytes, bytes]]:
        """path -> (stat key, digest) of every cached file under the folder `root`: one range scan."""
        prefix = os.path.join(root, b"")
        upper = prefix[:-1] + bytes([prefix[-1] + 1])
        rows = self._rows(
            "SELECT path, stat, digest FROM file_digests WHERE path >= ? AND path < ?",
            (prefix, upper),
        )
        return {path: (key, digest) for path, key, digest in rows}

    def lookup_listing(self, root: bytes, signature: bytes) -> bytes | None:
        """The listing stored for the folder `root` if its last walk had exactly this signature."""
        rows = self._rows(
            "SELECT listing FROM tree_digests WHERE root = ? AND signature = ?",
            (root, signature),
            trees=True,
        )
        return rows[0][0] if rows else None

    # -- writes -----------------------------------------------------------
    def store(self, entries: Iterable[tuple[bytes, bytes, bytes]]) -> int:
        """Remember (path, stat key, digest) of files not modified within the racy window."""
        horizon = time.time_ns() - RACY_WINDOW_NS
        rows = [entry for entry in entries if key_mtime_ns(entry[1]) < horizon]
        if not rows or self._readonly:
            return 0
        with self._lock:
            conn = self._connection()
            if conn is None:
                return 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO file_digests (path, stat, digest) VALUES (?, ?, ?)",
                        rows,
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                self._write_failed(exc)
                return 0
        return len(rows)

    def store_listing(
        self, root: bytes, signature: bytes, listing: bytes, newest_mtime_ns: int, walked_at_ns: int
    ) -> bool:
        """Remember a folder's listing under its walk signature, unless a file is racy.

        One file modified within RACY_WINDOW_NS of the walk (`walked_at_ns`, taken
        before the first stat) may change again without its stat key changing, so
        the whole row would be wrong: `newest_mtime_ns` must be older than that.
        """
        if newest_mtime_ns >= walked_at_ns - RACY_WINDOW_NS or self._readonly:
            return False
        with self._lock:
            conn = self._connection()
            if conn is None or not self._trees:
                return False
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO tree_digests (root, signature, listing) VALUES (?, ?, ?)",
                    (root, signature, listing),
                )
            except sqlite3.DatabaseError as exc:
                self._write_failed(exc)
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
                self._conn = None


_caches: dict[tuple[int, str], FingerprintCache] = {}
_caches_lock = threading.Lock()


def open_cache(use_cache: bool = True) -> FingerprintCache | None:
    """The cache for the current MLREPRO_CACHE_DIR (one per process and folder), or None."""
    if not use_cache:
        return None
    directory = default_cache_dir()
    key = (os.getpid(), str(directory))
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = FingerprintCache(directory)
    return cache
