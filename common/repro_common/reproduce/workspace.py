"""The reproduction folder: where everything is, and what the rerun will be told.

`code/` is the checkout (so the new run's code record is the same commit and the
same diff), and next to it the record (`manifest.json`, `code.diff`,
`requirements.txt`), the `Dockerfile` and `reproduce.sh`. Nothing is written
outside that folder.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repro_common.manifest import Manifest
from repro_common.runs import RunRecord

if TYPE_CHECKING:
    from repro_common.reproduce.venv import VenvResult

CODE_DIR = "code"
SCRIPT = "reproduce.sh"
LOG = "reproduce.log"
VENV_DIR = ".venv"
Step = Callable[[str], None]


class ReproduceError(Exception):
    """The record cannot be rebuilt (no commit, clone failed, diff no longer applies): exit 2."""


class UntrustedRecord(ReproduceError):
    """The record fails its integrity check and --trust-record was not given: exit 1."""


@dataclass
class Workspace:
    """A materialised run: where everything is and what the reproduction will set."""

    root: Path
    record: RunRecord
    manifest: Manifest
    code_dir: Path
    script: Path
    cloned_from: str
    reproduces: str
    tracker_env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)  # passed at run time, never written
    log_to: str = ""  # where the new run will appear, for messages (may hold credentials)
    warnings: list[str] = field(default_factory=list)
    python: str = sys.executable
    integrity: str = ""  # the gate's manifest rule, as checked before anything was done
    trusted_by_flag: bool = False  # --trust-record: used although the check failed

    @property
    def run_cwd(self) -> Path:
        return self.code_dir / (self.manifest.code.get("cwd") or "")


@dataclass
class Rebuild:
    """What `reproduce` rebuilt before running: the folder, and what the user should know."""

    workspace: Workspace
    warnings: list[str] = field(default_factory=list)
    venv: VenvResult | None = None  # set when the pinned requirements were installed


def default_dir(record: RunRecord) -> Path:
    """`<user cache>/mlrepro/reproduce/<run id>`: outside the user's repository, where a
    rebuild would show as untracked files (the manifest digest names a bare manifest file)."""
    import platformdirs

    ident = record.run_id or (record.manifest.digest.split(":")[-1] if record.manifest else "run")
    cache = Path(platformdirs.user_cache_dir("mlrepro", appauthor=False))
    base = cache / "reproduce" / re.sub(r"[^A-Za-z0-9_-]", "", ident)[:32]
    candidate, attempt = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        attempt += 1  # an earlier rebuild of the same run stays as it was
        candidate = base.with_name(f"{base.name}-{attempt}")
    return candidate


def reproduces_id(record: RunRecord) -> str:
    """The value the new run is tagged `repro.reproduces` with."""
    if record.run_id:
        return record.run_id
    return record.manifest.digest if record.manifest else record.ref


def short(commit: str) -> str:
    return str(commit)[:10]
