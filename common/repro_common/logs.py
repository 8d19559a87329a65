"""The `mlrepro` logger: our warnings reach the user whatever the host does to logging.

MLflow's `mlflow.pytorch.autolog()` calls `logging.basicConfig(level=logging.ERROR)`,
and a logger with no level of its own inherits that, which silenced the production
track's warnings. So the logger gets its own level (WARNING, unless the user set
one) and a stderr handler of its own. That handler stays quiet when a handler up
the chain already prints the record to the terminal, so nothing shows twice and
the host's own handlers (log files, pytest's caplog) still receive every record.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from repro_common.text import one_line

NAME = "mlrepro"


class _OwnStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current sys.stderr, unless an ancestor's handler prints the record already."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if _printed_upstream(record):
            return
        self.setStream(sys.stderr)  # follow redirection (pytest's capsys, notebooks)
        super().emit(record)


def _terminal(stream: object) -> bool:
    return stream is not None and stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


def _printed_upstream(record: logging.LogRecord) -> bool:
    logger: logging.Logger | None = logging.getLogger(NAME)
    while logger is not None and logger.propagate:
        logger = logger.parent
        for handler in logger.handlers if logger is not None else []:
            if (
                isinstance(handler, logging.StreamHandler)
                and _terminal(getattr(handler, "stream", None))
                and record.levelno >= handler.level
                and handler.filter(record)
            ):
                return True
    return False


def install() -> logging.Logger:
    """Give the `mlrepro` logger its level and handler once; a level the user set is kept."""
    logger = logging.getLogger(NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    if not any(isinstance(h, _OwnStderrHandler) for h in logger.handlers):
        logger.addHandler(_OwnStderrHandler())
    return logger


class Once:
    """Keys already acted on, thread-safe: the one way we say a thing once per process."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time `key` is seen (and remembers it), False ever after."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def clear(self) -> None:
        """Say everything again (tests, long-lived notebooks)."""
        with self._lock:
            self._seen.clear()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._seen


def warn_once(seen: Once, kind: str, message: str, *args: Any) -> None:
    """One `mlrepro` warning line per failure kind: a broken store must not flood the user's log."""
    if not seen.first(kind):
        return
    try:
        logging.getLogger(NAME).warning("%s", one_line(message % args if args else message))
    except Exception:  # pragma: no cover - logging itself must not break the host
        pass
