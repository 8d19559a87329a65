"""`mlrepro fingerprint PATH...`: the full-content fingerprint of files and folders."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from repro_common.cli import InputError, json_option

# Below this many bytes to hash a progress bar would only flicker.
PROGRESS_MIN_BYTES = 256 << 20


def _describe(exc: OSError, path: str) -> str:
    where = exc.filename if exc.filename is not None else path
    if exc.errno == errno.ENOENT and os.fspath(where) == path:
        reason = "no such file or directory"
    elif exc.errno == errno.ELOOP:
        reason = exc.strerror or "symlink loop"
    else:
        reason = (exc.strerror or str(exc)).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
    return f"{os.fsdecode(where)}: {reason}"


class _Bar:
    """A rich progress bar on stderr, shown only once the total turns out to be large."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None
        self._quiet = False

    def callback(self, label: str) -> Any:
        def advance(done: int, total: int) -> None:
            with self._lock:
                if self._quiet:
                    return
                if self._task is None:
                    # The first call reports what the cache already answered.
                    if total - done < PROGRESS_MIN_BYTES:
                        self._quiet = True
                        return
                    self._start(label, total)
                self._progress.update(self._task, advance=done)

        return advance

    def _start(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def next_path(self) -> None:
        with self._lock:
            self._quiet = False
            if self._task is not None:
                self._progress.remove_task(self._task)
                self._task = None

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextlib.contextmanager
def _progress_bar() -> Iterator[_Bar]:
    bar = _Bar()
    try:
        yield bar
    finally:
        bar.stop()


def _record(path: str, result: Any, dvc: Any, list_files: bool) -> dict[str, Any]:
    record = {
        "path": path,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "size_bytes": result.size_bytes,
        "files": result.files,
        "dvc": dvc,
    }
    if list_files:
        record["entries"] = result.listing()
    return record


def _human(record: dict[str, Any], list_files: bool) -> str:
    size = record["size_bytes"] or 0
    detail = f"{record['files']} files, " if record["kind"] == "directory" else ""
    lines = [f"{record['fingerprint']}  {record['path']}  ({detail}{_bytes(size)})"]
    if record["dvc"]:
        dvc = record["dvc"]
        lines.append(f"  dvc md5 {dvc['md5']} ({dvc['dvc_file']}: {dvc['path']})")
    if list_files:
        for entry in record.get("entries", []):
            lines.append(f"  {entry['digest']}  {entry['path']}")
    return "\n".join(lines)


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@click.command("fingerprint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True))
@json_option
@click.option(
    "--no-cache", is_flag=True, help="Hash every file; neither read nor write the digest cache."
)
@click.option(
    "--files", "list_files", is_flag=True, help="Also list every file with its own digest."
)
def fingerprint_command(
    paths: tuple[str, ...], as_json: bool, no_cache: bool, list_files: bool
) -> None:
    """Print the full-content blake3 fingerprint of each PATH (file or folder).

    A folder's fingerprint covers every file's relative path, size and content;
    unchanged files come from a stat-keyed cache ($MLREPRO_CACHE_DIR). DVC-tracked
    paths also show their DVC md5.

    S3 objects and prefixes (`s3://bucket/key`, `s3://bucket/prefix/`) are read with
    the AWS variables (`AWS_ENDPOINT_URL` for other stores) and shown with their
    VersionId; `lakefs://repo/ref/path` is pinned to its commit.

    \b
    Examples:
      mlrepro fingerprint data/train.csv
      mlrepro fingerprint s3://bucket/datasets/train/
      mlrepro fingerprint data/ --json
      mlrepro fingerprint images/ --no-cache --files
    """
    from repro_common.dvc import dvc_record
    from repro_common.fingerprints import fingerprint_details
    from repro_common.table_inputs import table_kind

    if any(table_kind(path) for path in paths):
        _tables(paths, as_json, no_cache)
        return
    for path in paths:
        if not os.path.lexists(path):
            raise InputError(f"{path}: no such file or directory")
    records = []
    with _progress_bar() as bar:
        for path in paths:
            try:
                result = fingerprint_details(
                    path, use_cache=not no_cache, progress=bar.callback(path)
                )
            except OSError as exc:
                raise InputError(_describe(exc, path)) from None
            finally:
                bar.next_path()
            records.append(_record(path, result, dvc_record(path), list_files))
    if as_json:
        click.echo(json.dumps(records, indent=2))
    else:
        for record in records:
            click.echo(_human(record, list_files))
    sys.stdout.flush()


def _tables(paths: tuple[str, ...], as_json: bool, no_cache: bool) -> None:
    """Versioned inputs among PATHS: Delta and Iceberg tables (`path@v12`,
    `iceberg:cat.ns.table`), S3 objects and prefixes (`s3://...`), lakeFS paths."""
    from repro_common.fingerprints import fingerprint_details
    from repro_common.table_inputs import (
        VERSIONED_KINDS,
        TableInputError,
        describe_table,
        label,
        table_kind,
    )

    records = []
    for path in paths:
        if table_kind(path) is None:
            if not os.path.lexists(path):
                raise InputError(f"{path}: no such file or directory")
            try:
                result = fingerprint_details(path, use_cache=not no_cache)
            except OSError as exc:
                raise InputError(_describe(exc, path)) from None
            records.append(_record(path, result, None, False))
            continue
        try:
            item = describe_table(path, os.path.basename(path.rstrip("/")), use_cache=not no_cache)
        except TableInputError as exc:
            raise InputError(str(exc)) from None
        records.append({"path": path, **{k: v for k, v in item.items() if k != "name"}})
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for record in records:
        if record["kind"] in VERSIONED_KINDS:
            extent = ""  # a lakeFS reference is recorded without reading its content
            if "size_bytes" in record:
                extent = f"  ({record['files']} files, {_bytes(record['size_bytes'] or 0)})"
            click.echo(f"{record['fingerprint']}  {label(record)}{extent}")
            click.echo(f"  basis {record['basis']}: {record['basis_detail']}")
        else:
            click.echo(_human(record, False))


COMMANDS = [fingerprint_command]
