"""The inputs of this process: `track_data`, the registry behind it, and its listeners.

`track_data(obj, name)` fingerprints an input (repro_common.fingerprints; a Delta or
Iceberg table through repro_common.table_inputs) and registers it under `name`; the
manifest's `data` list is the registry plus one training's own inputs. Adapters
listen: the MLflow adapter logs each tracked input as a dataset, and both adapters
record the inputs a training finds for itself (`publish_run_inputs`).
An input that cannot be fingerprinted is recorded with why, never hidden.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from repro_common.fingerprints import AugmentedDataError, FingerprintResult, fingerprint_details

_registry: dict[str, dict[str, Any]] = {}
_details: dict[str, FingerprintResult] = {}
_listeners: list[Callable[[dict[str, Any]], None]] = []
_run_listeners: list[Callable[[list[dict[str, Any]], Sequence[Any]], None]] = []
_lock = threading.Lock()

SKIPPED = "skipped"
AUGMENTED = "augmented"


def unfingerprinted_input(
    name: str, kind: str, reason: str, source: str | None = None
) -> dict[str, Any]:
    """An input the run read but we could not fingerprint: in the record, with why, never hidden."""
    return {"name": name, "kind": kind, "fingerprint": None, "reason": reason, "source": source}


def describe_input(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    max_items: int | None = None,
    use_cache: bool = True,
    version: int | str | None = None,
) -> tuple[dict[str, Any], FingerprintResult | None]:
    """The manifest entry for one input, without registering it (a run's own inputs).

    A dataset whose items change between reads is described as `augmented`, with the
    reason and no fingerprint; an unsupported kind raises TypeError.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("track_data needs a non-empty name")
    from repro_common import table_inputs

    table = table_inputs.table_kind(obj)
    if table is not None or version is not None:
        # A Delta or Iceberg table: a named, immutable version (repro_common.table_inputs).
        # One that cannot be read is recorded with why (and a capture error), never raised.
        try:
            item = table_inputs.describe_table(
                obj, name, source, version=version, use_cache=use_cache
            )
        except Exception as exc:  # a reader's own bug must not stop the user's training either
            from repro_common.redact import redact_text

            reason = str(exc)
            if not isinstance(exc, table_inputs.TableInputError):
                reason = f"could not be read: {type(exc).__name__}: {exc}"
            shown = source or (os.fspath(obj) if isinstance(obj, (str, os.PathLike)) else None)
            item = table_inputs.unreadable_table(name, table or "table", redact_text(reason), shown)
        return item, None
    if isinstance(obj, (str, os.PathLike)) and source is None:
        source = os.path.abspath(os.fspath(obj))
    if isinstance(source, str):
        from repro_common.redact import redact_url

        source = redact_url(source, keep_user=True)  # a presigned URL carries its signature
    try:
        result = fingerprint_details(obj, max_items=max_items, use_cache=use_cache)
    except AugmentedDataError as exc:
        reason = (
            f"{exc}; fingerprint the data underneath instead (its files or arrays, with "
            f"track_data(<path or array>, {name!r}))"
        )
        return unfingerprinted_input(name, AUGMENTED, reason, source), None
    dvc = None
    if isinstance(obj, (str, os.PathLike)):
        from repro_common.dvc import dvc_record

        try:
            dvc = dvc_record(os.fspath(obj))
        except Exception as exc:  # the link is a bonus; the fingerprint stands without it
            warnings.warn(
                f"mlrepro: cannot read DVC files for {name!r}: {exc}", RuntimeWarning, stacklevel=3
            )
    item = {
        "name": name,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "size_bytes": result.size_bytes,
        "files": result.files,
        "source": source,
        "partial": result.partial,
        "dvc": dvc,
    }
    if result.kind.startswith("hf_dataset"):  # rows, Hub repo and commit, basis
        from repro_common.fingerprints import hf_datasets

        item.update(hf_datasets.describe(obj))
    return item, result


def track_data(
    obj: Any,
    name: str,
    source: str | None = None,
    *,
    max_items: int | None = None,
    use_cache: bool = True,
    version: int | str | None = None,
) -> dict[str, Any]:
    """Fingerprint `obj` and register it as an input of this process under `name`.

    Both adapters log registered inputs; the manifest's `data` list holds them. A
    second call with the same name replaces the first. Paths also get their DVC
    version when DVC tracks them. A dataset that augments its items is registered
    without a fingerprint (kind `augmented`, with the reason) and a warning.

    A Delta table (a `deltalake.DeltaTable`, a folder or `s3://` prefix with `_delta_log/`,
    `path@v12`) or an Iceberg table (`pyiceberg.table.Table`) is recorded as its resolved
    version (`version=` pins one) with table id and fingerprint; any other `s3://` object or
    prefix by VersionId/ETag and content, a `lakefs://repo/ref/path` by commit. One that
    cannot be read is registered without a fingerprint, with the reason, and a capture error.
    """
    item, result = describe_input(
        obj, name, source, max_items=max_items, use_cache=use_cache, version=version
    )
    if result is None and item.get("fingerprint") is None:
        warnings.warn(
            f"mlrepro: {name!r} is not fingerprinted: {item['reason']}",
            RuntimeWarning,
            stacklevel=2,
        )
    with _lock:
        _registry.pop(name, None)
        _registry[name] = item
        _details.pop(name, None)
        if result is not None:
            _details[name] = result
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(_copy_item(item))
        except Exception as exc:  # a listener must never fail the user's call
            warnings.warn(
                f"mlrepro: data listener {getattr(listener, '__qualname__', listener)!s} failed for "
                f"{name!r}: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return _copy_item(item)


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    """A copy nobody can use to edit the registry (the dvc link is the only nested part)."""
    dvc = item.get("dvc")
    return {**item, "dvc": dict(dvc) if isinstance(dvc, dict) else dvc}


def collect_data(
    errors: list[dict[str, Any]], run_inputs: Iterable[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The manifest's `data`: the registered inputs in registration order, then the run's own
    (`run_inputs`, found or given for one run only; one of them replaces a registered input
    of the same name)."""
    with _lock:
        merged = {name: _copy_item(item) for name, item in _registry.items()}
    for item in run_inputs or ():
        merged[str(item.get("name"))] = _copy_item(item)
    for item in merged.values():
        if item.get("table_error"):  # a table input that could not be read: a real failure
            errors.append({"collector": f"data.{item.get('name')}", "error": str(item["reason"])})
    return list(merged.values())


def tracked_details(name: str) -> FingerprintResult | None:
    """The full result of a tracked input, per-file listing included (for artifacts)."""
    with _lock:
        return _details.get(name)


def add_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call fn(item) after each track_data (the MLflow adapter logs datasets this way)."""
    with _lock:
        if fn not in _listeners:
            _listeners.append(fn)


def remove_listener(fn: Callable[[dict[str, Any]], None]) -> None:
    with _lock:
        if fn in _listeners:
            _listeners.remove(fn)


def add_run_listener(fn: Callable[[list[dict[str, Any]], Sequence[Any]], None]) -> None:
    """Call fn(items, hosts) when one training records inputs of its own (see publish_run_inputs)."""
    with _lock:
        if fn not in _run_listeners:
            _run_listeners.append(fn)


def remove_run_listener(fn: Callable[[list[dict[str, Any]], Sequence[Any]], None]) -> None:
    with _lock:
        if fn in _run_listeners:
            _run_listeners.remove(fn)


def publish_run_inputs(items: list[dict[str, Any]], hosts: Sequence[Any] = ()) -> None:
    """One training's own inputs (found at fit start or given to a callback, not registered):
    every tracker that training logs to records them, so all its records agree.

    `hosts` are the training's loggers (e.g. Lightning's `trainer.loggers`): each adapter
    picks the ones it knows. A listener that fails is one warning; the training goes on.
    """
    if not items:
        return
    with _lock:
        listeners = list(_run_listeners)
    for listener in listeners:
        try:
            listener([_copy_item(item) for item in items], tuple(hosts))
        except Exception as exc:
            warnings.warn(
                f"mlrepro: run-inputs listener {getattr(listener, '__qualname__', listener)!s} "
                f"failed: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
