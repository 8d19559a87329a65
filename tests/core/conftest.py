"""Fixtures shared by the fingerprint-cache tests."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from repro_common.fingerprints import files as fingerprint_files
from repro_common.fingerprints.cache import CACHE_FILE, open_cache


@pytest.fixture
def cache_dir() -> Path:
    """The cache folder the autouse fixture in tests/conftest.py gave this test."""
    return Path(os.environ["MLREPRO_CACHE_DIR"])


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files actually read and hashed (not answered from a cache)."""
    calls: list[str] = []
    real = fingerprint_files.hash_file

    def counting(path: str | bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(os.path.basename(os.fsdecode(path)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fingerprint_files, "hash_file", counting)
    return calls


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The wall clock stopped at the real "now" (returned, in seconds) for this test.

    The racy-window rule compares file times with the clock; with the clock stopped, a
    file set to `now - 1 s` stays inside the 2 s window however slowly the test runs.
    """
    import time

    now_ns = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: now_ns)
    monkeypatch.setattr(time, "time", lambda: now_ns / 1e9)
    return now_ns / 1e9


# Fingerprints, in a fresh process, each folder given on the command line (a `+name`
# argument first writes that file, dated an hour back) and prints, per folder: the
# fingerprint, the files hashed, whether the per-file rows were read, and new warnings.
FINGERPRINT_STEPS = """
import json, os, sys, time, warnings
from repro_common.fingerprints import fingerprint
from repro_common.fingerprints import files
from repro_common.fingerprints.cache import FingerprintCache

try:  # the permission override must really be gone, or this proves nothing
    open(sys.argv[1], "ab").close()
    print(json.dumps("writable"))
    sys.exit(0)
except PermissionError:
    pass
hashed, per_file = [], []
real_hash, real_lookup = files.hash_file, FingerprintCache.lookup_tree
def counting_hash(path, *args, **kwargs):
    hashed.append(os.path.basename(os.fsdecode(path)))
    return real_hash(path, *args, **kwargs)
def counting_lookup(self, root):
    per_file.append(os.fsdecode(root))
    return real_lookup(self, root)
files.hash_file, FingerprintCache.lookup_tree = counting_hash, counting_lookup
steps = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for arg in sys.argv[2:]:
        if arg.startswith("+"):
            with open(arg[1:], "wb") as handle:
                handle.write(b"written by the read-only user")
            os.utime(arg[1:], (time.time() - 3600, time.time() - 3600))
            continue
        hashed.clear(); per_file.clear(); del caught[:]
        digest = fingerprint(arg)
        steps.append({"fingerprint": digest, "hashed": sorted(hashed),
                      "per_file_lookups": len(per_file),
                      "warnings": [str(w.message) for w in caught]})
print(json.dumps(steps))
"""


def _without_write_override() -> list[str]:
    """The command prefix that runs a process unable to write what its mode bits forbid.

    The suite runs as root, whom file modes do not stop: drop root's DAC override
    capabilities for the child (it keeps uid 0, so it can still read the interpreter
    under /root). A non-root user needs nothing.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only to the test")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
def read_only_fingerprints(cache_dir: Path) -> Callable[..., list[dict[str, Any]]]:
    """Make the cache file read-only (mode 0444) and fingerprint `steps` in a process that
    cannot write it: the real SQLite error and the cache's real handling of it."""

    def run(*steps: str | Path) -> list[dict[str, Any]]:
        open_cache().close()  # type: ignore[union-attr]  # checkpoints the WAL
        database = cache_dir / CACHE_FILE
        assert database.exists() and not list(cache_dir.glob("*-wal"))
        database.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        env = {**os.environ, "MLREPRO_CACHE_DIR": str(cache_dir)}
        proc = subprocess.run(
            [*_without_write_override(), sys.executable, "-c", FINGERPRINT_STEPS, str(database)]
            + [str(step) for step in steps],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0 and "setpriv" in proc.stderr:
            pytest.skip(f"cannot drop root's permission override here: {proc.stderr.strip()}")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        if result == "writable":
            pytest.skip("the cache file stays writable to this user: cannot test a read-only cache")
        return list(result)

    return run
