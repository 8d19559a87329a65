"""Run one collector so that its failure costs only its own part of the record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("mlrepro")


def error_entry(collector: str, exc: BaseException) -> dict[str, str]:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"collector": collector, "error": f"{type(exc).__name__}: {message}".rstrip(": ")}


def guarded(collector: str, fn: Callable[[], T], default: T, errors: list[dict[str, Any]]) -> T:
    """Return fn(), or `default` with an entry appended to `errors` when fn raises."""
    try:
        return fn()
    except Exception as exc:  # a collector must never take the host down
        errors.append(error_entry(collector, exc))
        log.debug("mlrepro collector %s failed", collector, exc_info=True)
        return default
