"""Forget what earlier tests tracked: each test starts with an empty input registry."""

from __future__ import annotations

from repro_common import inputs


def clear_registry(listeners: bool = False) -> None:
    """Forget tracked inputs; the adapters' listeners too when asked."""
    with inputs._lock:
        inputs._registry.clear()
        inputs._details.clear()
        if listeners:
            inputs._listeners.clear()
            inputs._run_listeners.clear()
