"""capture(): assemble the record for this process from small, isolated collectors.

Environment and code are cached per process (they do not change while a script
runs, and git/metadata reads cost milliseconds); seeds and registered data are
read fresh on every call because the user sets them as the script goes.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import sys
import threading
import time
from typing import Any

from repro_common import __version__
from repro_common.isolation import guarded
from repro_common.manifest import TRACKS, Manifest
from repro_common.text import json_safe

_static_lock = threading.Lock()
_static: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]] | None = None
_prefetch_thread: threading.Thread | None = None


def disabled() -> bool:
    """MLREPRO_DISABLE=1 (or true/yes/on): adapters record nothing and do no work."""
    return os.environ.get("MLREPRO_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_track(track: str | None, errors: list[dict[str, Any]] | None = None) -> str:
    """Explicit argument, else MLREPRO_TRACK, else exploratory."""
    if track is not None:
        from repro_common.tracks import check_track

        return check_track(track)
    env_track = os.environ.get("MLREPRO_TRACK", "").strip().lower()
    if not env_track:
        return "exploratory"
    if env_track not in TRACKS:
        if errors is not None:
            errors.append(
                {
                    "collector": "track",
                    "error": f"MLREPRO_TRACK={env_track!r} is not one of {', '.join(TRACKS)}; "
                    "used exploratory",
                }
            )
        return "exploratory"
    return env_track


def _collect_static() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    from repro_common import code, environment

    errors: list[dict[str, Any]] = []
    empty: dict[str, Any] = {}
    env = guarded("environment", lambda: environment.collect_environment(errors), empty, errors)
    src = guarded("code", lambda: code.collect_code(errors), dict(empty), errors)
    return env, src, errors


def _static_parts() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    global _static
    with _static_lock:
        if _static is None:
            _static = _collect_static()
        return _static


def _after_fork_in_child() -> None:
    # The prefetch thread does not survive fork(); a lock it held would deadlock the child.
    global _static_lock, _prefetch_thread
    _static_lock = threading.Lock()
    if _static is None:
        _prefetch_thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def prefetch() -> None:
    """Start the cached part of capture in a background thread (idempotent, never raises)."""
    global _prefetch_thread
    from repro_common import seeds

    seeds.announce_rank_seed()
    if _static is not None or _prefetch_thread is not None:
        return
    _prefetch_thread = threading.Thread(target=_static_parts, name="mlrepro-prefetch", daemon=True)
    _prefetch_thread.start()


def reset_cache() -> None:
    """Forget the cached environment and code (tests, or after `pip install` in a notebook)."""
    global _static, _prefetch_thread
    running = _prefetch_thread
    if running is not None:
        running.join(timeout=30)  # else it would refill the cache after the reset
    with _static_lock:
        _static = None
        _prefetch_thread = None


def capture(track: str | None = None, inputs: list[dict[str, Any]] | None = None) -> Manifest:
    """The reproducibility record for this process. Never raises for a failing collector.

    `inputs` are one run's own data entries (repro_common.inputs.describe_input): they join
    the registered inputs in this record only, never the process-wide registry.
    """
    from repro_common import code, environment, seeds
    from repro_common import inputs as registered_inputs

    started = time.perf_counter()
    env, src, static_errors = _static_parts()
    errors: list[dict[str, Any]] = list(static_errors)
    chosen_track = resolve_track(track, errors)
    no_seeds: dict[str, Any] = {}
    guarded("seeds.environment", lambda: seeds.seed_from_environment(errors), None, errors)
    no_inputs: list[dict[str, Any]] = []
    seed_record = guarded("seeds", lambda: seeds.collect_seeds(errors), no_seeds, errors)
    if "transformers.trainer" in sys.modules:  # a HF Trainer on the stack: its seeds and datasets
        from repro_common import hf_trainer

        inputs = guarded(
            "trainer", lambda: hf_trainer.annotate(seed_record, inputs, errors), inputs, errors
        )
    inputs = guarded(
        "data", lambda: registered_inputs.collect_data(errors, inputs), no_inputs, errors
    )
    env_section = _copy(env)
    if env_section:
        # seed_everything(deterministic=True) sets some of these at run time: read them now.
        env_section["variables"] = guarded(
            "environment.variables", environment.collect_variables, dict[str, str](), errors
        )
    code_section = _copy(src)
    # Modules imported since the cached code record (e.g. an untracked utils.py).
    guarded("code.sources", lambda: code.refresh_sources(code_section, errors), None, errors)
    info = {
        "tool": "mlrepro",
        "version": __version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "errors": errors,
    }
    # One file name that is not UTF-8 must not cost the record: such names are quoted.
    sections = json_safe(
        {
            "environment": env_section,
            "code": code_section,
            "seeds": seed_record,
            "data": inputs,
            "capture": info,
        }
    )
    manifest = Manifest(**sections, track=chosen_track)
    manifest.capture["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if chosen_track == "production":
        from repro_common.production import warn_unmet_requirements

        # At run start, once per requirement: what the production gate will refuse later.
        warn_unmet_requirements(manifest)
    return manifest


def _copy(section: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(section)
