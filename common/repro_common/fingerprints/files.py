"""Files and folders: the folder walk, file hashing, and the per-file listing of a folder.

- a file: plain blake3 of its content (``b3sum FILE`` prints the same hex).
- a folder: a Merkle digest over its regular files (symlinks followed, empty
  folders ignored) sorted by relative POSIX path: path, size, per-file digest.

Fast on large trees: files are memory-mapped in windows (memory stays flat), hashed
on a thread pool in batches, and an unchanged file or folder is answered from the
stat cache (repro_common.fingerprints.cache), so a warm run costs stat calls.
"""

from __future__ import annotations

import errno
import mmap
import operator
import os
import stat
import struct
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import blake3

from repro_common.fingerprints.cache import (
    STAT_KEY_SIZE,
    open_cache,
    stat_key,
    stat_keys,
    unpack_stat_keys,
)
from repro_common.fingerprints.framing import (
    PREFIX,
    Context,
    Node,
    ProgressFn,
    kind_tag,
    new_hasher,
    u64,
)

# Below this a file is read in one call; above it, memory-mapped in windows of
# MMAP_WINDOW so that peak memory stays flat whatever the file size.
MMAP_MIN = 1 << 20
MMAP_WINDOW = 32 << 20
# Small files are handed to the pool in batches to amortise scheduling.
_BATCH_BYTES = 8 << 20
_BATCH_FILES = 64


class FileEntry(NamedTuple):
    """One file of a fingerprinted path: the per-file listing behind a folder's digest."""

    path: str
    size_bytes: int
    digest: str


# ---------------------------------------------------------------------------
# files and directories


def path_node(path: str, ctx: Context) -> tuple[str, Node]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise path_error(exc, path) from None
    absolute = os.path.abspath(path)
    if stat.S_ISREG(st.st_mode):
        files = [_FileStat(os.fsencode(absolute), st.st_size, stat_key(st))]
        digest, size = _file_digests(files, b"", ctx, tree=False)[0]
        ctx.files = 1
        ctx.packed_entries = _pack_entry(os.fsencode(os.path.basename(absolute)), size, digest)
        return "file", Node(digest, size=size)
    if stat.S_ISDIR(st.st_mode):
        return "directory", _directory_node(os.fsencode(absolute), st, ctx)
    raise OSError(errno.EINVAL, "not a regular file or directory (cannot fingerprint it)", path)


def path_error(exc: OSError, path: str | bytes, *, exact: bool = False) -> OSError:
    """Keep the errno but always name the path the user gave or the file we stopped at.

    With `exact`, `path` wins over the exception's filename (a bare name when the
    call was relative to a folder's fd).
    """
    where = os.fsdecode(path if exact or exc.filename is None else exc.filename)
    if exc.errno == errno.ELOOP:
        return OSError(errno.ELOOP, "symlink loop (too many levels of symbolic links)", where)
    return type(exc)(exc.errno, exc.strerror or str(exc), where)


class _FileStat(NamedTuple):
    """A file found by the walk: path (relative to the folder, or absolute), size, stat key."""

    path: bytes
    size: int
    key: bytes


class _Walk(NamedTuple):
    """The regular files under a folder, one group per sub-folder in walk order, and its signature.

    A group is (relative prefix, NUL-joined names, stat keys back to back): no
    per-file objects outlive their folder's scan.
    """

    groups: list[tuple[bytes, bytes, bytes]]
    signature: bytes
    files: int
    size: int


# Each folder is opened once and its entries stat'ed relative to that fd
# (fstatat): cheaper than resolving every file's full path again.
_STAT_AT = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_WALK_TAG = b"mlrepro.walk/2"  # /2: stat keys hold the ctime
_ENTRY_STAT = os.DirEntry.stat
_MODE = operator.attrgetter("st_mode")
_SIZE = operator.attrgetter("st_size")
_NAME = operator.attrgetter("name")


def _walk(root: bytes, root_st: os.stat_result) -> _Walk:
    """Every regular file under `root` (symlinks followed, loops refused) and the walk's signature.

    The signature covers each file's relative path and stat key in walk order, so
    an unchanged folder is answered by one cache lookup (a different readdir order
    only misses). Beyond its stat, a file costs only a few C-level passes per
    folder: on a warm run this walk is nearly all the time. Paths stay bytes, so
    names that are not UTF-8 hash exactly.
    """
    groups: list[tuple[bytes, bytes, bytes]] = []
    signature = blake3.blake3(_WALK_TAG)
    files = size = 0
    stack: list[tuple[bytes, bytes, frozenset[tuple[int, int]]]] = [
        (root, b"", frozenset({(root_st.st_dev, root_st.st_ino)}))
    ]
    while stack:
        directory, prefix, ancestors = stack.pop()
        entries, stats = _read_folder(directory)
        if not all(map(stat.S_ISREG, map(_MODE, stats))):
            entries, stats, folders = _split_folder(directory, prefix, ancestors, entries, stats)
            stack.extend(folders)
        if not stats:
            continue
        names = os.fsencode("\0".join(map(_NAME, entries)))
        keys = stat_keys(stats)
        signature.update(u64(len(prefix)) + prefix + u64(len(stats)) + u64(len(names)))
        signature.update(names)
        signature.update(keys)
        groups.append((prefix, names, keys))
        files += len(stats)
        size += sum(map(_SIZE, stats))
    return _Walk(groups, signature.digest(), files, size)


def _read_folder(directory: bytes) -> tuple[list[os.DirEntry[str]], list[os.stat_result]]:
    """The entries of one folder with their stats (symlinks followed)."""
    if not _STAT_AT:
        return _stat_entries(directory, _list_folder(os.fsdecode(directory), directory))
    try:
        fd = os.open(directory, _FOLDER_FLAGS)
    except OSError as exc:
        raise path_error(exc, directory) from None
    try:
        return _stat_entries(directory, _list_folder(fd, directory))
    finally:
        os.close(fd)


def _list_folder(target: int | str, directory: bytes) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(target) as listing:
            return list(listing)
    except OSError as exc:
        raise path_error(exc, directory, exact=True) from None


def _stat_entries(
    directory: bytes, entries: list[os.DirEntry[str]]
) -> tuple[list[os.DirEntry[str]], list[os.stat_result]]:
    try:
        return entries, list(map(_ENTRY_STAT, entries))
    except OSError:
        pass  # stat them one by one to name the entry that failed
    for entry in entries:
        try:
            entry.stat()
        except OSError as exc:
            path = os.path.join(directory, os.fsencode(entry.name))
            if isinstance(exc, FileNotFoundError) and entry.is_symlink():
                raise OSError(errno.ENOENT, "broken symbolic link", os.fsdecode(path)) from None
            raise path_error(exc, path, exact=True) from None
    return entries, [entry.stat() for entry in entries]


def _split_folder(
    directory: bytes,
    prefix: bytes,
    ancestors: frozenset[tuple[int, int]],
    entries: list[os.DirEntry[str]],
    stats: list[os.stat_result],
) -> tuple[
    list[os.DirEntry[str]],
    list[os.stat_result],
    list[tuple[bytes, bytes, frozenset[tuple[int, int]]]],
]:
    """A folder that holds more than regular files: its files, its sub-folders to walk, or an error."""
    files: list[os.DirEntry[str]] = []
    file_stats: list[os.stat_result] = []
    folders: list[tuple[bytes, bytes, frozenset[tuple[int, int]]]] = []
    for entry, st in zip(entries, stats, strict=True):
        if stat.S_ISREG(st.st_mode):
            files.append(entry)
            file_stats.append(st)
            continue
        name = os.fsencode(entry.name)
        path = os.path.join(directory, name)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(
                errno.EINVAL,
                "not a regular file or directory (cannot fingerprint it)",
                os.fsdecode(path),
            )
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            raise OSError(
                errno.ELOOP,
                "symlink loop (a folder links back to its ancestor)",
                os.fsdecode(path),
            )
        folders.append((path, prefix + name + b"/", ancestors | {key}))
    return files, file_stats, folders


_LEN_SIZE = struct.Struct("<QQ")
_DIGEST_SIZE = 32


def _pack_entry(relative: bytes, size: int, digest: bytes) -> bytes:
    """One file as a folder digest covers it: lengths, relative path, blake3 digest."""
    return _LEN_SIZE.pack(len(relative), size) + relative + digest


def unpack_entries(packed: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(relative path, size, digest) per file from a packed listing, in order."""
    offset = 0
    while offset < len(packed):
        length, size = _LEN_SIZE.unpack_from(packed, offset)
        start = offset + _LEN_SIZE.size
        offset = start + length + _DIGEST_SIZE
        yield packed[start : start + length], size, packed[start + length : offset]


def folder_fingerprint(entries: Sequence[tuple[bytes, int, bytes]]) -> str:
    """A folder's fingerprint from (relative POSIX path, size, blake3 digest) per file, for
    sources that list their own files (an S3 prefix): the same as fingerprinting a copy on disk."""
    ordered = sorted(entries, key=operator.itemgetter(0))
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.dir/1"))
    hasher.update(u64(len(ordered)))
    for relative, size, digest in ordered:
        hasher.update(_pack_entry(relative, size, digest))
    return PREFIX + hasher.hexdigest()


def _directory_node(root: bytes, root_st: os.stat_result, ctx: Context) -> Node:
    """A folder's digest: from its cached listing when the walk matches, else file by file."""
    walked_at = time.time_ns()  # before the first stat: the racy window counts from here
    walk = _walk(root, root_st)
    cache = ctx.cache
    packed = cache.lookup_listing(root, walk.signature) if cache is not None else None
    if packed is not None:
        size = walk.size
        if ctx.progress is not None:
            ctx.progress(size, size)
    else:
        packed, size = _hash_folder(root, walk, ctx, walked_at)
    hasher = new_hasher()
    hasher.update(kind_tag("mlrepro.dir/1"))
    hasher.update(u64(walk.files))
    hasher.update(packed)
    ctx.packed_entries = packed
    ctx.files = walk.files
    return Node(hasher.digest(), size=size)


def _hash_folder(root: bytes, walk: _Walk, ctx: Context, walked_at: int) -> tuple[bytes, int]:
    """The packed listing from per-file digests (cached or hashed) and its size.

    It becomes the folder's row only if every file read back the size its stat
    said (otherwise it changed under us) and none is within the racy window.
    """
    files: list[_FileStat] = []
    newest = -1 << 63
    for prefix, names, keys in walk.groups:
        split = names.split(b"\0")
        for i, (_, _, size, mtime, _) in enumerate(unpack_stat_keys(keys)):
            key = keys[i * STAT_KEY_SIZE : (i + 1) * STAT_KEY_SIZE]
            files.append(_FileStat(prefix + split[i], size, key))
            newest = max(newest, mtime)
    files.sort(key=operator.itemgetter(0))
    digests = _file_digests(files, os.path.join(root, b""), ctx, tree=True)
    packed = b"".join(
        _pack_entry(relative, length, digest)
        for (relative, _, _), (digest, length) in zip(files, digests, strict=True)
    )
    total = sum(length for _, length in digests)
    complete = all(f.size == length for f, (_, length) in zip(files, digests, strict=True))
    if ctx.cache is not None and complete:
        ctx.cache.store_listing(root, walk.signature, packed, newest, walked_at)
    return packed, total


def _file_digests(
    files: list[_FileStat], base: bytes, ctx: Context, tree: bool
) -> list[tuple[bytes, int]]:
    """(digest, size) per file, in order: from the cache when the stat key matches, else hashed.

    File paths are `base + path`; with `tree`, `base` is a folder whose cached
    entries are read in one range scan.
    """
    cache = ctx.cache
    results: list[tuple[bytes, int] | None] = [None] * len(files)
    if cache is not None:
        if tree:
            known = cache.lookup_tree(base)
            for i, (path, size, key) in enumerate(files):
                hit = known.get(base + path)
                if hit is not None and hit[0] == key:
                    results[i] = (hit[1], size)
        else:
            for i, (path, size, key) in enumerate(files):
                one = cache.lookup(base + path)
                if one is not None and one[0] == key:
                    results[i] = (one[1], size)
    total = sum(f.size for f in files)
    progress = ctx.progress
    if progress is not None:
        progress(sum(r[1] for r in results if r is not None), total)
    missing = [i for i, r in enumerate(results) if r is None]
    paths = [base + files[i].path for i in missing]
    sizes = [files[i].size for i in missing]
    for n, result in _hash_files(paths, sizes, progress, total):
        results[missing[n]] = result
    if cache is not None and missing:
        cache.store(
            (paths[n], files[i].key, results[i][0])  # type: ignore[index]
            for n, i in enumerate(missing)
            if results[i][1] == files[i].size  # type: ignore[index]
        )
    return results  # type: ignore[return-value]


def _hash_files(
    paths: list[bytes], sizes: list[int], progress: ProgressFn | None, total: int
) -> Iterator[tuple[int, tuple[bytes, int]]]:
    """(position, (digest, size)) for each path: small files in batches on a thread pool."""
    if not paths:
        return
    batches: list[list[int]] = [[]]
    batch_bytes = 0
    for n, size in enumerate(sizes):
        if batches[-1] and (batch_bytes >= _BATCH_BYTES or len(batches[-1]) >= _BATCH_FILES):
            batches.append([])
            batch_bytes = 0
        batches[-1].append(n)
        batch_bytes += size

    def run(batch: list[int]) -> list[tuple[int, tuple[bytes, int]]]:
        return [(n, hash_file(paths[n], progress, total)) for n in batch]

    if len(batches) == 1:
        yield from run(batches[0])
        return
    workers = min(len(batches), max(2, 2 * (os.cpu_count() or 2)), 16)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlrepro-hash")
    try:
        for finished in pool.map(run, batches):
            yield from finished
    finally:
        # On an error, do not read the rest of a large folder before reporting it.
        pool.shutdown(wait=True, cancel_futures=True)


def hash_file(
    path: str | bytes, progress: ProgressFn | None = None, total: int = 0
) -> tuple[bytes, int]:
    """(blake3 digest, bytes read) of one file; memory stays flat whatever its size."""
    try:
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < MMAP_MIN:
                data = handle.read()
                hasher = blake3.blake3(data)
                if progress is not None:
                    progress(len(data), total)
                return hasher.digest(), len(data)
            hasher = new_hasher()
            offset = 0
            while offset < size:
                # Re-check before each window: touching pages past a truncated end
                # would raise SIGBUS, so a file that shrinks mid-way is an error.
                if os.fstat(handle.fileno()).st_size < offset + min(MMAP_WINDOW, size - offset):
                    raise OSError(
                        errno.EIO, "file shrank while it was being fingerprinted", os.fsdecode(path)
                    )
                length = min(MMAP_WINDOW, size - offset)
                window = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ, offset=offset)
                try:
                    view = memoryview(window)
                    try:
                        hasher.update(view)
                    finally:
                        view.release()
                finally:
                    window.close()
                offset += length
                if progress is not None:
                    progress(length, total)
            return hasher.digest(), size
    except OSError as exc:
        raise path_error(exc, path) from None


def hash_local_files(
    paths: Sequence[str], *, use_cache: bool = True, progress: ProgressFn | None = None
) -> list[tuple[bytes, int]]:
    """(blake3 digest, size) of each file, through the stat cache (a re-run costs stat calls).

    For sources that list their own files (a Delta version, an Iceberg snapshot).
    """
    ctx = Context(max_items=None, cache=open_cache(use_cache), progress=progress)
    files = []
    for path in paths:
        absolute = os.path.abspath(path)
        try:
            st = os.stat(absolute)
        except OSError as exc:
            raise path_error(exc, absolute) from None
        files.append(_FileStat(os.fsencode(absolute), st.st_size, stat_key(st)))
    return _file_digests(files, b"", ctx, tree=False)
