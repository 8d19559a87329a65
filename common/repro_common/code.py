"""Code collector: the commit, the uncommitted changes, and the local source git does not hold.

A commit alone rarely reproduces a run: the diff on top of it and the untracked
`utils.py` that `train.py` imported are where results get lost. So the record
keeps the commit, a digest of the staged+unstaged diff, and every module that
ran from inside the checkout while git does not track it, and `diff_text` turns
all of that into one patch that `git apply` accepts on the recorded commit.
Git-ignored modules are the exception: ignored files are where people keep
secrets (`local_settings.py`), so only their name and digest are recorded.

All git commands start at once and run concurrently (a few ms in total), with
optional locks off, so capture never blocks or disturbs the user's own git.
`dirty` is true when the tracked files differ from the commit or when an
unversioned module ran: in both cases the commit alone does not rebuild the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from repro_common.environment import kill_group
from repro_common.git import git_env
from repro_common.isolation import error_entry
from repro_common.manifest import digest_bytes
from repro_common.redact import redact_argv, strip_userinfo
from repro_common.sections import CodeSection
from repro_common.text import quote_name

DIFF_MAX_BYTES = 2 * 1024 * 1024  # tracked diff kept for the artifact
SOURCE_MAX_BYTES = 512 * 1024  # one unversioned module's content carried in the patch
SOURCES_MAX_BYTES = 2 * 1024 * 1024  # all unversioned modules together
UNTRACKED_MAX = 200  # untracked names listed
GIT_TIMEOUT_S = 10.0
NOT_A_REPO = "not inside a git repository"

# Patch pieces kept in this process for `diff_text` (the record holds digests, not text).
_tracked_texts: dict[tuple[str, str | None, str | None], str] = {}  # (root, commit, diff digest)
_source_texts: dict[tuple[str, str, str], str] = {}  # (root, path, digest) -> new-file patch
# Module files of a checkout already checked against git: the record of the
# unversioned ones, None for those git tracks.
_module_files: dict[str, dict[str, dict[str, Any] | None]] = {}
# Names in sys.modules already looked at per checkout: each capture (one per run)
# then scans only modules imported since, not the thousands MLflow brings.
_scanned_modules: dict[str, set[str]] = {}


class GitError(RuntimeError):
    """git ran and refused (dubious ownership, corrupt repository, timeout)."""


def find_repo_root(start: str) -> str | None:
    """The nearest folder at or above `start` holding `.git` (a folder, or a file for worktrees)."""
    path = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _start_git(root: str, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["git", "--no-pager", "--literal-pathspecs", *args],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _finish_git(proc: subprocess.Popen[bytes], ok_codes: tuple[int, ...] = (0,)) -> bytes:
    try:
        out, err = proc.communicate(timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise GitError(
            f"git {proc.args[3] if isinstance(proc.args, list) else ''} took over {GIT_TIMEOUT_S:g} s"
        ) from None
    if proc.returncode not in ok_codes:
        message = err.decode(errors="replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git exited with {proc.returncode}")
    return out


def _diff_args() -> tuple[str, ...]:
    # Explicit prefixes and no external/text-conv drivers: the user's diff config must
    # not produce a patch that `git apply` rejects.
    return (
        "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
        "--no-relative", "--src-prefix=a/", "--dst-prefix=b/",
    )  # fmt: skip


def parse_status(raw: bytes) -> dict[str, Any]:
    """`git status --porcelain=v2 --branch -z`: head, branch, tracked changes, untracked names."""
    head: str | None = None
    branch: str | None = None
    changed = False
    untracked: list[str] = []
    records = raw.split(b"\0")
    i = 0
    while i < len(records):
        rec = records[i].decode(errors="surrogateescape")
        i += 1
        if not rec:
            continue
        if rec.startswith("# branch.oid "):
            oid = rec.split(" ", 2)[2]
            head = None if oid == "(initial)" else oid
        elif rec.startswith("# branch.head "):
            name = rec.split(" ", 2)[2]
            branch = None if name == "(detached)" else name
        elif rec[0] in "12u":
            changed = True
            if rec[0] == "2":
                i += 1  # a rename carries its original path in the next record
        elif rec[0] == "?":
            untracked.append(quote_name(rec[2:]))
    return {"head": head, "branch": branch, "changed": changed, "untracked": untracked}


def _git_paths(raw: bytes) -> set[str]:
    """NUL-separated paths from git, decoded losslessly."""
    return {p.decode(errors="surrogateescape") for p in raw.split(b"\0") if p}


def _check_ignore_args(paths: list[str]) -> tuple[str, ...]:
    """git's arguments listing which of `paths` are untracked and git-ignored."""
    return (
        "ls-files",
        "-z",
        "--full-name",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--",
        *paths,
    )


def _pick_remote(raw: bytes) -> str | None:
    remotes: dict[str, str] = {}
    for line in raw.decode(errors="replace").splitlines():
        key, _, url = line.partition(" ")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.setdefault(key[len("remote.") : -len(".url")], url.strip())
    if not remotes:
        return None
    url = remotes.get("origin") or remotes[sorted(remotes)[0]]
    return strip_userinfo(url)


def _excluded_prefixes() -> tuple[str, ...]:
    """Installed code, even when a .venv lives inside the checkout, is not local source."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for entry in sys.path:
        if entry and os.path.basename(entry.rstrip(os.sep)) in ("site-packages", "dist-packages"):
            prefixes.add(entry)
    return tuple(os.path.join(os.path.abspath(p), "") for p in prefixes if p)


def module_files_in(root: str, names: Iterable[str] | None = None) -> list[str]:
    """Repo-relative paths of Python source files that imported modules ran from.

    `names` limits the scan to those entries of sys.modules (default: all of them).
    """
    roots = {os.path.join(root, "")}
    real = os.path.realpath(root)
    roots.add(os.path.join(real, ""))
    excluded = _excluded_prefixes()
    found: set[str] = set()
    modules = sys.modules
    for name in list(modules) if names is None else names:
        path = getattr(modules.get(name), "__file__", None)
        if not isinstance(path, str) or not path.endswith((".py", ".pyw")):
            continue
        path = os.path.abspath(path)
        if path.startswith(excluded):
            continue
        for prefix in roots:
            if path.startswith(prefix):
                rel = path[len(prefix) :].replace(os.sep, "/")
                if not rel.startswith(".git/"):
                    found.add(rel)
                break
    return sorted(found)


def _quoted_path_needed(path: str) -> bool:
    return any(ch in path for ch in '"\\\t\n') or not path.isprintable()


def new_file_patch(path: str, content: bytes, executable: bool = False) -> str:
    """A git patch that creates `path` with `content` (text) when applied."""
    mode = "100755" if executable else "100644"
    head = f"diff --git a/{path} b/{path}\nnew file mode {mode}\n"
    if not content:
        return head
    text = content.decode("utf-8")
    lines = text.split("\n")
    missing_newline = lines[-1] != ""
    if not missing_newline:
        lines.pop()
    body = "".join(f"+{line}\n" for line in lines)
    if missing_newline:
        body += "\\ No newline at end of file\n"
    return f"{head}--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def _read_unversioned(
    root: str, paths: list[str], budget: int, ignored: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Records (path, digest, size); the content of those within the caps goes into the patch.

    `ignored` (git-ignored paths) are recorded by name and digest only, never carried.
    """
    records: list[dict[str, Any]] = []
    for rel in paths:
        full = os.path.join(root, rel)
        try:
            with open(full, "rb") as handle:
                content = handle.read()
            executable = os.access(full, os.X_OK)
        except OSError:
            continue  # module file removed since it was imported
        record: dict[str, Any] = {
            "path": rel,
            "digest": digest_bytes(content),
            "size_bytes": len(content),
            "in_diff": False,
        }
        if rel in ignored:
            record["ignored"] = True
        elif len(content) <= min(SOURCE_MAX_BYTES, budget) and not _quoted_path_needed(rel):
            try:
                _source_texts[(root, rel, record["digest"])] = new_file_patch(
                    rel, content, executable
                )
                record["in_diff"] = True
                budget -= len(content)
            except UnicodeDecodeError:
                pass
        records.append(record)
    return records


def _classify_modules(
    root: str, candidates: list[str], tracked: set[str], ignored: frozenset[str]
) -> None:
    known = _module_files.setdefault(root, {})
    fresh = [p for p in candidates if p not in known and p not in tracked]
    used = sum(r["size_bytes"] for r in known.values() if r and r.get("in_diff"))
    for record in _read_unversioned(root, fresh, SOURCES_MAX_BYTES - used, ignored):
        known[record["path"]] = record
    for path in candidates:
        known.setdefault(path, None)


def _unversioned_records(root: str) -> list[dict[str, Any]]:
    known = _module_files.get(root) or {}
    return [dict(known[p]) for p in sorted(known) if known[p] is not None]  # type: ignore[arg-type]


def refresh_sources(section: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    """Add local modules imported since the cached code record was taken.

    The code record is cached per process and may be taken early (a prefetch at
    `import mlflow`), before `train.py` imports its untracked `utils.py`; call this
    on each capture. Costs one scan of sys.modules when nothing new was imported.
    """
    root = section.get("root")
    if not root or root not in _module_files:
        return  # git was not read: outside a repository, or git failed
    known = _module_files[root]
    seen = _scanned_modules.setdefault(root, set())
    names = sys.modules.keys() - seen
    seen.update(names)
    new = [p for p in module_files_in(root, names) if p not in known]
    if new:
        env = git_env()
        procs = [
            _start_git(root, "ls-files", "-z", "--full-name", "--", *new, env=env),
            _start_git(root, *_check_ignore_args(new), env=env),
        ]
        try:
            listed = _finish_git(procs[0])
            ignored = _finish_git(procs[1], ok_codes=(0, 1))
        except Exception as exc:
            errors.append(error_entry("code.sources", exc))
            return
        finally:
            for proc in procs:
                if proc.returncode is None:
                    kill_group(proc)
        _classify_modules(root, new, _git_paths(listed), frozenset(_git_paths(ignored)))
    sources = _unversioned_records(root)
    if sources != section.get("unversioned_sources"):
        section["unversioned_sources"] = sources
        section["dirty"] = bool(section.get("dirty") or sources)


def _cap_diff(diff: bytes) -> tuple[bytes, bool]:
    """Whole per-file patches up to DIFF_MAX_BYTES, so what is kept still applies."""
    if len(diff) <= DIFF_MAX_BYTES:
        return diff, False
    kept: list[bytes] = []
    size = 0
    for i, chunk in enumerate(diff.split(b"\ndiff --git ")):
        piece = chunk if i == 0 else b"diff --git " + chunk
        piece = piece if piece.endswith(b"\n") else piece + b"\n"
        if size + len(piece) > DIFF_MAX_BYTES:
            break
        kept.append(piece)
        size += len(piece)
    return b"".join(kept), True


def _entry_point() -> tuple[dict[str, Any], str]:
    """Entry script (repo-relative when inside), `-m` module, cwd, redacted argv; and where to look for git."""
    argv = list(sys.argv) if sys.argv else []
    argv0 = argv[0] if argv else ""
    cwd = os.getcwd()
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    info: dict[str, Any] = {"entry_point": None, "argv": redact_argv(argv[1:])}
    if spec is not None and getattr(spec, "name", None) and spec.name != "__main__":
        info["entry_module"] = spec.name.removesuffix(".__main__")
    search_from = cwd
    if argv0 in ("-c", "-m"):
        info["entry_point"] = argv0
    elif argv0:
        script = os.path.abspath(argv0)
        info["entry_point"] = script
        # A script's own checkout holds the code that ran. `python -m pkg` and console
        # scripts of installed tools (`mlrepro`, `pytest`) run from wherever the
        # package lives, so the working directory names the project then.
        by_module = "entry_module" in info
        if os.path.isfile(script) and not by_module and not script.startswith(_excluded_prefixes()):
            search_from = os.path.dirname(script)
    info["cwd"] = cwd
    return info, search_from


def _relative_to(root: str, path: str) -> str:
    rel = os.path.relpath(path, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return path
    return rel.replace(os.sep, "/")


def collect_code(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The code section. Outside git: commit null and `reason`; git trouble: also an error line."""
    info, search_from = _entry_point()
    root = find_repo_root(search_from) or find_repo_root(info["cwd"])
    section: dict[str, Any] = {
        "commit": None,
        "branch": None,
        "remote": None,
        "dirty": None,
        "diff_digest": None,
        "diff_bytes": 0,
        "diff_truncated": False,
        "untracked": [],
        "untracked_truncated": False,
        "unversioned_sources": [],
        "root": root,
        **info,
    }
    if root is None:
        section["reason"] = NOT_A_REPO
        return section
    for key in ("entry_point", "cwd"):
        value = section.get(key)
        if value and os.path.isabs(value):
            section[key] = _relative_to(root, value)
    try:
        _collect_git(root, section)
    except FileNotFoundError:
        section["reason"] = "git executable not found on PATH"
        errors.append({"collector": "code.git", "error": section["reason"]})
    except Exception as exc:
        entry = error_entry("code.git", exc)
        section["reason"] = f"git failed: {entry['error']}"
        errors.append(entry)
    return section


def _collect_git(root: str, section: dict[str, Any]) -> None:
    env = git_env()
    names = set(sys.modules)
    candidates = module_files_in(root, names)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _start_git(
                root,
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=normal",
                "-z",
                env=env,
            )
        )
        procs.append(_start_git(root, *_diff_args(), env=env))
        procs.append(_start_git(root, "config", "--get-regexp", r"^remote\..*\.url$", env=env))
        if candidates:
            procs.append(
                _start_git(root, "ls-files", "-z", "--full-name", "--", *candidates, env=env)
            )
            procs.append(_start_git(root, *_check_ignore_args(candidates), env=env))
        state = parse_status(_finish_git(procs[0]))
        # `git diff HEAD` fails before the first commit; nothing to diff against then.
        diff_raw = _finish_git(procs[1], ok_codes=(0, 128) if state["head"] is None else (0,))
        remote_raw = _finish_git(procs[2], ok_codes=(0, 1))
        listed = _finish_git(procs[3]) if candidates else b""
        ignored = _finish_git(procs[4], ok_codes=(0, 1)) if candidates else b""
    finally:
        for proc in procs:
            if proc.returncode is None:
                kill_group(proc)
    tracked = _git_paths(listed)

    section["commit"] = state["head"]
    section["branch"] = state["branch"]
    section["remote"] = _pick_remote(remote_raw)
    if state["head"] is None:
        section["reason"] = "repository has no commits yet"
        diff_raw = b""
    untracked = sorted(state["untracked"])
    section["untracked"] = untracked[:UNTRACKED_MAX]
    section["untracked_truncated"] = len(untracked) > UNTRACKED_MAX

    _module_files.pop(root, None)  # a fresh collection reads every module again
    _scanned_modules[root] = names
    _classify_modules(root, candidates, tracked, frozenset(_git_paths(ignored)))
    sources = _unversioned_records(root)
    section["unversioned_sources"] = sources
    kept, truncated = _cap_diff(diff_raw)
    section["diff_digest"] = digest_bytes(diff_raw) if diff_raw else None
    section["diff_bytes"] = len(diff_raw)
    section["diff_truncated"] = truncated
    section["dirty"] = bool(state["changed"] or diff_raw or sources)
    if diff_raw:
        key = (root, section["commit"], section["diff_digest"])
        _tracked_texts[key] = kept.decode("utf-8", errors="replace")


def diff_text(code_section: CodeSection) -> str | None:
    """One patch for `git apply` on the recorded commit: tracked changes plus unversioned sources.

    Available in the process that captured, or rebuilt from the checkout while it
    still matches the record digest for digest; None when there is nothing to apply.
    """
    root = (code_section or {}).get("root")
    if not root or not code_section.get("dirty"):
        return None
    text = _assemble(code_section)
    if text is None:
        try:
            _reread(code_section)
        except Exception:
            return None
        text = _assemble(code_section)
    return text or None


def _assemble(section: CodeSection) -> str | None:
    root = str(section["root"])
    pieces = []
    if section.get("diff_digest"):
        tracked = _tracked_texts.get((root, section.get("commit"), section["diff_digest"]))
        if tracked is None:
            return None
        pieces.append(tracked)
    for source in section.get("unversioned_sources") or []:
        if source.get("in_diff"):
            patch = _source_texts.get((root, source.get("path"), source.get("digest")))
            if patch is None:
                return None
            pieces.append(patch)
    return "".join(pieces)


def _reread(section: CodeSection) -> None:
    """Fill the patch pieces from the checkout, each only if it matches its recorded digest."""
    root = str(section["root"])
    env = git_env()
    if section.get("diff_digest"):
        head = _finish_git(_start_git(root, "rev-parse", "HEAD", env=env)).decode().strip()
        diff_raw = _finish_git(_start_git(root, *_diff_args(), env=env))
        if head == section.get("commit") and digest_bytes(diff_raw) == section["diff_digest"]:
            kept, _ = _cap_diff(diff_raw)
            _tracked_texts[(root, head, section["diff_digest"])] = kept.decode(
                "utf-8", errors="replace"
            )
    wanted = [s for s in section.get("unversioned_sources") or [] if s.get("in_diff")]
    for record in _read_unversioned(root, [str(s.get("path")) for s in wanted], SOURCES_MAX_BYTES):
        if not any(s.get("digest") == record["digest"] for s in wanted):
            _source_texts.pop((root, record["path"], record["digest"]), None)
