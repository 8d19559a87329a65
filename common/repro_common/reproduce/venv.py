"""The interpreter the rerun uses: this one (its package mismatches said), or a new venv in the
reproduction folder with the record's pinned requirements installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro_common.manifest import Manifest
from repro_common.reproduce.workspace import VENV_DIR, ReproduceError, Step, Workspace


def package_mismatches(manifest: Manifest) -> list[str]:
    """Recorded packages this interpreter lacks or has at another version, one line each."""
    from importlib.metadata import distributions

    installed: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(_norm(name), dist.version)
    lines = []
    for pkg in manifest.environment.get("packages") or []:
        name, version = str(pkg.get("name")), str(pkg.get("version"))
        have = installed.get(_norm(name))
        if have is None:
            lines.append(f"{name}=={version} is not installed here")
        elif have != version:
            lines.append(f"{name} is {have} here, {version} in the record")
    mismatch = python_mismatch(manifest)
    return [mismatch, *lines] if mismatch else lines


def python_mismatch(manifest: Manifest) -> str | None:
    """A line when this interpreter's version is not the recorded one (a venv inherits it)."""
    py = (manifest.environment.get("python") or {}).get("version")
    here = ".".join(str(x) for x in sys.version_info[:3])
    if py and py != here:
        return f"Python is {here} here, {py} in the record (the Dockerfile pins the recorded one)"
    return None


def _norm(name: str) -> str:
    from repro_common.environment import canonical_name

    return canonical_name(name)


def unpinned_packages(manifest: Manifest) -> list[tuple[str, str]]:
    """(name==version, why) for every recorded package that cannot be installed from its pin."""
    found = []
    for pkg in manifest.environment.get("packages") or []:
        if pkg.get("reinstallable") is False:
            reason = pkg.get("reason") or f"installed from a {pkg.get('source', 'local')} source"
            found.append((f"{pkg.get('name')}=={pkg.get('version')}", str(reason)))
    return found


@dataclass
class VenvResult:
    python: str
    installed_from_checkout: list[str]
    not_pinned: list[tuple[str, str]]


def create_venv(
    ws: Workspace, system_site_packages: bool = False, on_line: Step | None = None
) -> VenvResult:
    """A venv in the reproduction folder with the pinned requirements installed.

    With `system_site_packages` the venv also sees the packages of the interpreter
    running mlrepro (even when that is itself a venv), so pip installs only the
    pins that are missing or at another version there.
    """
    emit = on_line or (lambda _line: None)
    venv = ws.root / VENV_DIR
    args = [sys.executable, "-m", "venv", "--without-pip"]
    if system_site_packages:
        args.append("--system-site-packages")
    _stream([*args, str(venv)], ws.root, emit, "creating the venv")
    python = venv / "bin" / "python"
    if system_site_packages and sys.prefix != sys.base_prefix:
        import site
        import sysconfig

        purelib = Path(
            sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
        )
        parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (purelib / "_mlrepro_parent_env.pth").write_text("\n".join(parents) + "\n")

    manifest = ws.manifest
    not_pinned = unpinned_packages(manifest)
    from_checkout = []
    skip = {"mlrepro"}
    for pkg in manifest.environment.get("packages") or []:
        if pkg.get("source") == "editable" and _inside_root(pkg, manifest):
            from_checkout.append(str(pkg.get("name")))
    skip |= {_norm(n) for n in from_checkout}
    not_pinned = [(spec, why) for spec, why in not_pinned if _norm(spec.split("==")[0]) not in skip]
    lines = (ws.root / "requirements.txt").read_text().splitlines()
    kept = [
        ln
        for ln in lines
        if not (ln.strip() and not ln.lstrip().startswith("#") and _req_name(ln) in skip)
    ]
    (ws.root / "requirements.venv.txt").write_text("\n".join(kept) + "\n")
    pip = _pip(python)
    _stream(
        [
            *pip,
            "install",
            "--disable-pip-version-check",
            "-r",
            str(ws.root / "requirements.venv.txt"),
        ],
        ws.root,
        emit,
        "installing the pinned requirements",
    )
    for name in from_checkout:
        pkg_dir = _editable_dir_in_checkout(name, manifest, ws.code_dir)
        if pkg_dir is not None:
            _stream(
                [*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(pkg_dir)],
                ws.root,
                emit,
                f"installing {name} from the checkout",
            )
    if _norm("mlrepro") not in {_norm(n) for n in from_checkout}:
        _stream(
            [*pip, "install", "--no-deps", *_mlrepro_spec()], ws.root, emit, "installing mlrepro"
        )
    ws.python = str(python)
    return VenvResult(str(python), from_checkout, not_pinned)


def _pip(python: Path) -> list[str]:
    """This interpreter's pip driving the venv (no ensurepip: seconds saved), else the venv's own."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([str(python), "-m", "ensurepip", "--upgrade"], check=True, capture_output=True)
    return [str(python), "-m", "pip"]


def _req_name(line: str) -> str:
    match = re.match(r"\s*(-e\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return _norm(match.group(2)) if match else ""


def _editable_path(pkg: dict[str, Any]) -> Path | None:
    url = str(pkg.get("url") or "")
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(url).path))
    return None


def _inside_root(pkg: dict[str, Any], manifest: Manifest) -> bool:
    path, root = _editable_path(pkg), manifest.code.get("root")
    if path is None or not root:
        return False
    try:
        path.resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def _editable_dir_in_checkout(name: str, manifest: Manifest, code_dir: Path) -> Path | None:
    for pkg in manifest.environment.get("packages") or []:
        if pkg.get("name") == name and (path := _editable_path(pkg)) is not None:
            rel = path.resolve().relative_to(Path(str(manifest.code["root"])).resolve())
            return code_dir / rel
    return None


def _mlrepro_spec() -> list[str]:
    """How to install the mlrepro running now: from its source checkout when it runs from one.

    Judged by where `repro_common` was imported from, not by package metadata: a
    checkout's leftover `mlrepro.egg-info` on sys.path would otherwise pass for it.
    """
    import repro_common

    package = Path(repro_common.__file__).resolve().parent
    root = package.parents[1]
    if package.parent.name == "common" and (root / "setup.cfg").is_file():
        return ["--no-build-isolation", "-e", str(root)]
    return [f"mlrepro=={repro_common.__version__}"]


def _stream(args: list[str], cwd: Path, emit: Step, what: str) -> None:
    emit(what)
    proc = subprocess.Popen(
        args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = (tail + [line])[-15:]
            emit(line)
    if proc.wait() != 0:
        errors = [ln for ln in tail if "error" in ln.lower()] or tail[-3:]
        raise ReproduceError(f"{what} failed: {' | '.join(errors[-3:])}")
