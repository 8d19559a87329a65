"""Link a fingerprinted path to its DVC version, by reading DVC's own files.

When DVC tracks a path (a `<path>.dvc` file next to it, or an `outs` entry of a
stage in a `dvc.lock` up the tree), the run records DVC's md5 and the file it came
from, so `dvc checkout` at that commit brings the same data back. Only YAML is
read: the dvc package is never imported or required.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import yaml

log = logging.getLogger("mlrepro")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_parsed: dict[str, tuple[int, int, Any]] = {}
_parsed_lock = threading.Lock()


def dvc_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """{md5, dvc_file, path} of the closest DVC output that is `path` or contains it, else None.

    `dvc_file` and `path` are relative to the DVC repository root (the folder
    holding `.dvc/`, else the git root), or absolute when there is neither. The
    recorded `path` is DVC's output, which may be a folder above `path`.
    """
    target = _normal(os.fspath(path))
    root = _repo_root(target)
    candidate = target
    while True:
        found = _from_dvc_file(candidate) or _from_lock(candidate, os.path.dirname(candidate))
        if found is not None:
            md5, dvc_file = found
            return {
                "md5": md5,
                "dvc_file": _relative(dvc_file, root),
                "path": _relative(candidate, root),
            }
        parent = os.path.dirname(candidate)
        if parent == candidate or (root is not None and candidate == root):
            return None
        candidate = parent


def _normal(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _repo_root(path: str) -> str | None:
    """The closest folder holding `.dvc/`, else holding `.git`, else None."""
    git_root = None
    current = path if os.path.isdir(path) else os.path.dirname(path)
    while True:
        if os.path.isdir(os.path.join(current, ".dvc")):
            return current
        if git_root is None and os.path.exists(os.path.join(current, ".git")):
            git_root = current
        parent = os.path.dirname(current)
        if parent == current:
            return git_root
        current = parent


def _relative(path: str, root: str | None) -> str:
    if root is None:
        return path
    return os.path.relpath(path, root).replace(os.sep, "/")


def _load(path: str) -> Any:
    """Parsed YAML, cached by (mtime, size); None when missing or unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    with _parsed_lock:
        hit = _parsed.get(path)
        if hit is not None and hit[:2] == (st.st_mtime_ns, st.st_size):
            return hit[2]
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.load(handle, Loader=_Loader)  # noqa: S506 - a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        log.warning("mlrepro: cannot read DVC file %s: %s", path, exc)
        doc = None
    with _parsed_lock:
        _parsed[path] = (st.st_mtime_ns, st.st_size, doc)
    return doc


def _out_hash(out: Any) -> str | None:
    if not isinstance(out, dict):
        return None
    for key in ("md5", "etag", "checksum"):
        value = out.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _matching_out(outs: Any, base: str, target: str) -> str | None:
    if not isinstance(outs, list):
        return None
    for out in outs:
        if (
            isinstance(out, dict)
            and isinstance(out.get("path"), str)
            and _normal(os.path.join(base, out["path"])) == target
        ):
            return _out_hash(out)
    return None


def _from_dvc_file(candidate: str) -> tuple[str, str] | None:
    """`data.dvc` next to `data` (or any `.dvc` file there naming it in its outs)."""
    dvc_file = candidate + ".dvc"
    doc = _load(dvc_file) if os.path.isfile(dvc_file) else None
    if not isinstance(doc, dict):
        return None
    md5 = _matching_out(
        doc.get("outs"), os.path.join(os.path.dirname(dvc_file), doc.get("wdir") or "."), candidate
    )
    return (md5, dvc_file) if md5 else None


def _from_lock(candidate: str, start: str) -> tuple[str, str] | None:
    """An `outs` entry naming `candidate` in a dvc.lock at or above `start`."""
    directory = start
    while True:
        lock = os.path.join(directory, "dvc.lock")
        if os.path.isfile(lock):
            found = _search_lock(lock, candidate)
            if found:
                return found, lock
        if os.path.isdir(os.path.join(directory, ".dvc")):
            return None
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _search_lock(lock: str, candidate: str) -> str | None:
    doc = _load(lock)
    if not isinstance(doc, dict):
        return None
    folder = os.path.dirname(lock)
    # Schema 2 keeps stages under `stages`; the first lock format had them at the top.
    stages = doc.get("stages") if "schema" in doc or isinstance(doc.get("stages"), dict) else doc
    if not isinstance(stages, dict):
        return None
    wdirs = _stage_wdirs(os.path.join(folder, "dvc.yaml"))
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            continue
        wdir = wdirs.get(str(name).split("@", 1)[0], ".")
        md5 = _matching_out(stage.get("outs"), os.path.join(folder, wdir), candidate)
        if md5:
            return md5
    return None


def _stage_wdirs(dvc_yaml: str) -> dict[str, str]:
    """Lock paths are relative to each stage's `wdir` (declared in dvc.yaml, default `.`)."""
    doc = _load(dvc_yaml) if os.path.isfile(dvc_yaml) else None
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return {}
    found: dict[str, str] = {}
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            continue
        body = stage.get("do")
        wdir = body.get("wdir") if isinstance(body, dict) else stage.get("wdir")
        if isinstance(wdir, str) and wdir:
            found[str(name)] = wdir
    return found
