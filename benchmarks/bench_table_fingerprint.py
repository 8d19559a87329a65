"""Fingerprinting a Delta / Iceberg table version against reading it.

    .venv/bin/python benchmarks/bench_table_fingerprint.py [--size-mb 1024] [--files 100]

The issue's shape is a table of about 1 GB in ~100 files (`--size-mb 1024`, the
default); pass a smaller `--size-mb` on a shared machine. The data is random int64
(incompressible, parquet without compression) so the bytes on disk are the size
asked for. Both sides read from the page cache (the table is read once first): the
comparison is of work done, not of disk speed.

Per format, in one run:
  read          DeltaTable(path, version=v).to_pyarrow_table() / table.scan(snapshot).to_arrow()
  cold          the table input's fingerprint with an empty file cache (every file hashed)
  warm          the same version again (the cache answers: stat calls, log/manifest reads)
Targets: cold <= 1.0x read; warm <= 5% of cold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "common"), str(ROOT)]

MB = 1 << 20


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _batches(size_mb: int, files: int) -> list[Any]:
    import numpy as np
    import pyarrow as pa

    rows = max(1, size_mb * MB // files // 8)
    rng = np.random.default_rng(7)
    return [pa.table({"v": rng.integers(0, 2**62, rows, dtype=np.int64)}) for _ in range(files)]


def _age(folder: Path) -> None:
    """Out of the file cache's racy window (files written this second are never cached)."""
    old = time.time() - 3600
    for path in folder.rglob("*"):
        os.utime(path, (old, old))


def _report(label: str, read: float, cold: float, warm: float, item: dict[str, Any]) -> None:
    size = item["size_bytes"] / MB
    print(f"{label}: {item['files']} files, {size:.0f} MB, basis {item['basis']}")
    print(f"   read      {read * 1000:9.1f} ms")
    verdict = "MET" if cold <= read else "MISSED"
    print(
        f"   cold fp   {cold * 1000:9.1f} ms   {cold / read:5.2f}x read (target <= 1.0x: {verdict})"
    )
    verdict = "MET" if warm <= 0.05 * cold else "MISSED"
    print(
        f"   warm fp   {warm * 1000:9.1f} ms   {warm / cold:6.1%} of cold (target <= 5%: {verdict})"
    )


def bench_delta(tmp: Path, batches: list[Any]) -> None:
    from deltalake import DeltaTable, write_deltalake

    from repro_common.fingerprints.delta import describe_delta

    path = str(tmp / "delta")
    options = {"compression": "UNCOMPRESSED"}
    for batch in batches:
        try:
            from deltalake import WriterProperties

            write_deltalake(
                path, batch, mode="append", writer_properties=WriterProperties(**options)
            )
        except ImportError:
            write_deltalake(path, batch, mode="append")
    _age(Path(path))
    version = DeltaTable(path).version()
    DeltaTable(path, version=version).to_pyarrow_table()  # page cache
    read = _timed(lambda: DeltaTable(path, version=version).to_pyarrow_table())
    items: list[dict[str, Any]] = []
    cold = _timed(lambda: items.append(describe_delta(path, "bench", version=version)))
    warm = _timed(lambda: items.append(describe_delta(path, "bench", version=version)))
    assert items[0]["fingerprint"] == items[1]["fingerprint"]
    _report(f"Delta v{version}", read, cold, warm, items[0])


def bench_iceberg(tmp: Path, batches: list[Any]) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    from repro_common.fingerprints.iceberg import describe_iceberg

    (tmp / "warehouse").mkdir()
    catalog = SqlCatalog(
        "bench", uri=f"sqlite:///{tmp}/catalog.db", warehouse=f"file://{tmp}/warehouse"
    )
    catalog.create_namespace("db")
    table = catalog.create_table(
        "db.bench",
        schema=batches[0].schema,
        properties={"write.parquet.compression-codec": "uncompressed"},
    )
    for batch in batches:
        table.append(batch)
    _age(tmp / "warehouse")
    snapshot = table.current_snapshot().snapshot_id
    table.scan(snapshot_id=snapshot).to_arrow()
    read = _timed(lambda: table.scan(snapshot_id=snapshot).to_arrow())
    items: list[dict[str, Any]] = []
    cold = _timed(lambda: items.append(describe_iceberg(table, "bench", version=snapshot)))
    warm = _timed(lambda: items.append(describe_iceberg(table, "bench", version=snapshot)))
    assert items[0]["fingerprint"] == items[1]["fingerprint"]
    _report(f"Iceberg snapshot {snapshot}", read, cold, warm, items[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="table size (default 1024)")
    parser.add_argument("--files", type=int, default=100, help="data files (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        os.environ["MLREPRO_CACHE_DIR"] = str(Path(tmp) / "cache")
        batches = _batches(args.size_mb, args.files)
        print(f"{args.size_mb} MB in {args.files} files, page cache warm, cache {tmp}/cache")
        bench_delta(Path(tmp), batches)
        os.environ["MLREPRO_CACHE_DIR"] = str(Path(tmp) / "cache-iceberg")
        bench_iceberg(Path(tmp), batches)


if __name__ == "__main__":
    main()
