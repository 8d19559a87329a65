"""Environment collector (minimal first cut; deepened by the foundation issue)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from repro_common.isolation import guarded

ENV_ALLOWLIST = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_DETERMINISTIC_OPS",
    "KERAS_BACKEND",
    "PL_GLOBAL_SEED",
)


def collect_packages() -> list[dict[str, Any]]:
    from importlib.metadata import distributions

    seen: dict[str, dict[str, Any]] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = {"name": name, "version": dist.version, "source": "index"}
    return sorted(seen.values(), key=lambda p: p["name"].lower())


def collect_environment(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {"system": platform.system(), "machine": platform.machine(), "release": platform.release()},
        "packages": guarded("environment.packages", collect_packages, [], errors),
        "variables": {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ},
    }


def requirements_txt(packages: list[dict[str, Any]]) -> str:
    return "".join(f"{p['name']}=={p['version']}\n" for p in packages if p.get("version"))
