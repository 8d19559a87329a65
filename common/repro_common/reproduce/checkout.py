"""Clone the recorded commit, apply the recorded diff, check the sources that ran unversioned.

Every recorded value reaches git after `--` or is refused; git runs with no
prompts and only safe transports.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from repro_common.git import run_git
from repro_common.reproduce.workspace import ReproduceError, Step, short
from repro_common.sections import CodeSection


def _git(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The core's hardened git (no prompts, safe transports); callers put `--` before every
    record value."""
    try:
        return run_git(*args, cwd=cwd, timeout=timeout)
    except FileNotFoundError as exc:
        raise ReproduceError("git is not installed: it is needed to rebuild the code") from exc
    except subprocess.TimeoutExpired as exc:
        raise ReproduceError(f"git {args[0]} gave no answer within {timeout:.0f}s") from exc


def _git_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.lower().startswith(("fatal", "error"))] or lines
    return picked[0] if picked else f"git exited with {proc.returncode}"


def _has_commit(repo: Path, commit: str) -> bool:
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return False
    return _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo, timeout=30).returncode == 0


def _source(value: Any, what: str) -> str | None:
    """A recorded clone source, refused when git would read it as an option."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.startswith("-") or any(ord(ch) < 32 for ch in text):
        raise ReproduceError(
            f"refusing the recorded {what} {text!r}: git would read it as an option"
        )
    return text


def clone(code: CodeSection, commit: str, code_dir: Path, say: Step) -> str:
    """Clone from the local checkout when it still holds the commit (fast, offline), else the remote."""
    from repro_common.emit import EmitError, commit_id

    try:
        commit = commit_id(commit)
    except EmitError as exc:
        raise ReproduceError(str(exc)) from exc
    root, remote = _source(code.get("root"), "checkout"), _source(code.get("remote"), "remote")
    sources: list[str] = []
    if root and Path(root).is_dir() and _has_commit(Path(root), commit):
        sources.append(str(root))
    if remote:
        sources.append(str(remote))
    if not sources:
        where = f"{root} no longer holds commit {short(commit)}" if root else "no local checkout"
        raise ReproduceError(f"the record names no git remote and {where}: nowhere to clone from")
    failures = []
    for source in sources:
        say(f"cloning {source} at {short(commit)}")
        shutil.rmtree(code_dir, ignore_errors=True)
        proc = _git("clone", "--quiet", "--no-checkout", "--", source, str(code_dir))
        if proc.returncode != 0:
            failures.append(f"cannot clone {source}: {_git_error(proc)}")
            continue
        if not _has_commit(code_dir, commit):
            fetched = _git("fetch", "--quiet", "--", "origin", commit, cwd=code_dir)
            if fetched.returncode != 0:
                failures.append(f"{source} does not hold commit {short(commit)} (pushed?)")
                continue
        proc = _git("checkout", "--quiet", "--detach", commit, "--", cwd=code_dir)
        if proc.returncode != 0:
            failures.append(f"cannot check out {short(commit)} from {source}: {_git_error(proc)}")
            continue
        if (code_dir / ".gitmodules").exists():
            say("updating submodules")
            sub = _git("submodule", "update", "--init", "--recursive", cwd=code_dir)
            if sub.returncode != 0:
                failures.append(f"submodules of {source}: {_git_error(sub)}")
                continue
        if remote and source != remote:
            _git("remote", "set-url", "--", "origin", str(remote), cwd=code_dir, timeout=30)
        return source
    shutil.rmtree(code_dir, ignore_errors=True)
    raise ReproduceError("; ".join(failures))


def apply_diff(code_dir: Path, patch_file: Path, diff: bytes, commit: str) -> None:
    patch_file.write_bytes(diff)
    proc = _git("apply", "--whitespace=nowarn", "--", str(patch_file), cwd=code_dir, timeout=120)
    if proc.returncode != 0:
        raise ReproduceError(
            f"the recorded diff no longer applies to commit {short(commit)}: {_git_error(proc)} "
            f"(checkout and diff left in {code_dir.parent} for a manual merge)"
        )


def unversioned_warnings(code: CodeSection, code_dir: Path) -> list[str]:
    """Sources that ran without being in git must come back byte for byte from the diff."""
    from repro_common.manifest import digest_bytes

    warnings = []
    for item in code.get("unversioned_sources") or []:
        path = code_dir / str(item.get("path", ""))
        recorded = item.get("digest")
        if not path.is_file():
            warnings.append(
                f"unversioned source {item.get('path')} ran but is not in the stored diff"
            )
        elif (
            recorded
            and str(recorded).startswith("blake3:")
            and digest_bytes(path.read_bytes()) != recorded
        ):
            warnings.append(f"unversioned source {item.get('path')} differs from the one that ran")
    return warnings
