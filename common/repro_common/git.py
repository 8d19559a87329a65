"""git as every part of mlrepro runs it: never a prompt, a pager, a lock or an unsafe transport.

A record's remote and commit are untrusted input and our collectors run inside the
user's training: git must neither wait for a password, nor run a command through
`ext::`, nor take the index lock the user's own git needs, nor answer in the
user's locale (we parse its messages).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Transports a recorded remote may use: no `ext::` (it runs a command), no unknown helpers.
GIT_PROTOCOLS = "file:git:http:https:ssh"


def git_env() -> dict[str, str]:
    """The environment for every git we start: the user's, hardened."""
    env = dict(os.environ)
    env.update(
        GIT_OPTIONAL_LOCKS="0",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        GIT_ALLOW_PROTOCOL=GIT_PROTOCOLS,
        GIT_PAGER="cat",
        LC_ALL="C",
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=20")
    return env


def run_git(
    *args: str, cwd: Path | str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """git with the hardened environment, its output as text; callers put `--` before every
    record value. Raises OSError when git is missing, TimeoutExpired when it hangs."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
