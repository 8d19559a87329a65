"""Code collector (minimal first cut; deepened by the foundation issue)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

_diff_texts: dict[str, str] = {}


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def collect_code(errors: list[dict[str, Any]]) -> dict[str, Any]:
    section: dict[str, Any] = {"entry_point": sys.argv[0] if sys.argv else None, "argv": list(sys.argv[1:])}
    try:
        section["commit"] = _git("rev-parse", "HEAD")
    except Exception:
        section.update(commit=None, dirty=None, reason="not a git repository")
        return section
    diff = _git("diff", "HEAD")
    section["dirty"] = bool(diff)
    if diff:
        from repro_common.manifest import digest_bytes

        section["diff_digest"] = digest_bytes(diff.encode())
        _diff_texts[section["diff_digest"]] = diff + "\n"
    return section


def diff_text(code_section: dict[str, Any]) -> str | None:
    return _diff_texts.get(code_section.get("diff_digest") or "")
