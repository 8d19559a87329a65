"""How the MLflow adapter meets a failing store: retry until the deadline, then one warning.

A permanent error (permission denied, a bad request, a run that was never created)
is not retried: no retry would fix it, and the user's process waits for us at exit.
One bad request is not permanent: a row that another process inserted between the
store's lookup and its insert (a sweep's runs logging the same dataset at once). The
retry finds that row.
Each kind of failure is said once per process, however many runs meet it.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow_repro_plugin.run_site import RunNeverCreated, RunNotVisible
from repro_common import logs
from repro_common.settings import env_float

log = logging.getLogger("mlrepro")
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
MAX_RACES = 3
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOSPC,
    errno.EEXIST,
}
_PERMANENT_MLFLOW_CODES = {
    "INVALID_PARAMETER_VALUE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "ENDPOINT_NOT_FOUND",
    "FEATURE_DISABLED",
}

# How SQL stores word a unique key inserted by a concurrent writer (PostgreSQL, SQLite, MySQL).
_RACED_INSERT = ("duplicate key value", "UNIQUE constraint failed", "Duplicate entry")

_warned = logs.Once()


def warn_once(kind: str, message: str, *args: Any) -> None:
    """One warning per failure kind and process: a broken store must not flood the user's log."""
    logs.warn_once(_warned, kind, message, *args)


def upload_timeout() -> float:
    """MLREPRO_UPLOAD_TIMEOUT in seconds (default 30): how long a job retries, how long exit waits."""
    return max(0.0, env_float("MLREPRO_UPLOAD_TIMEOUT", DEFAULT_TIMEOUT))


def _is_permanent(exc: BaseException) -> bool:
    """Errors that no retry will fix: do not keep the user waiting for them."""
    if isinstance(exc, RunNotVisible):
        return False
    if isinstance(exc, RunNeverCreated):
        return True
    if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
        return True
    return getattr(exc, "error_code", None) in _PERMANENT_MLFLOW_CODES


def _raced_insert(exc: BaseException) -> bool:
    """The store refused a row that a concurrent writer had just inserted."""
    return any(words in str(exc) for words in _RACED_INSERT)


# Jitter from our own generator: a draw from the global `random` in this thread
# would shift the user's stream whenever a slow server makes us retry.
_jitter = random.Random()


def retry(fn: Callable[[], T], deadline: float) -> T:
    """fn() until it succeeds, a permanent error, or the deadline; at least one attempt."""
    delay = FIRST_BACKOFF
    races = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            # A raced insert is retried a few times only: should the duplicate be ours and
            # stay, the user's process must not wait the whole deadline at exit.
            raced = _raced_insert(exc)
            races += raced
            permanent = races > MAX_RACES if raced else _is_permanent(exc)
            if permanent or time.monotonic() + delay > deadline:
                raise
            log.debug("mlrepro upload retry in %.2fs after %r", delay, exc)
            time.sleep(delay * (0.75 + _jitter.random() / 2))
            delay = min(delay * 2, MAX_BACKOFF)
