"""Numbers read from MLREPRO_* variables: a bad value falls back to the default, never raises.

A typo in an environment variable must not stop the user's training, so every
limit and timeout we read goes through here.
"""

from __future__ import annotations

import os


def env_float(name: str, default: float) -> float:
    """The variable as a number; `default` when it is unset, empty or not a number."""
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        return default
