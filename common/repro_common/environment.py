"""Environment collector: interpreter, OS, hardware, packages and where they came from.

Fast by construction, because it runs inside `start_run`: distributions are read
from their `*.dist-info` folder names (name and version are in the name; parsing
every METADATA file is ~70x slower), PEP 610 `direct_url.json` is opened only to
learn the source, and torch is consulted only when the user already imported it.

Environment variables read here (values recorded only for ENV_ALLOWLIST):
- `MLREPRO_IMAGE`: the container image the run uses, e.g.
  `ghcr.io/org/train:1.4@sha256:<hex>` (set it in the Dockerfile or the job spec;
  a container cannot see its own image name otherwise). The part after `@` is
  recorded as `image_digest`.
- `CONDA_PREFIX`: when set, the conda package list is read from its `conda-meta/`.
- `CUDA_VISIBLE_DEVICES`: limits the GPUs listed from `nvidia-smi` to those the
  process can use.
- `container`, `KUBERNETES_SERVICE_HOST`: evidence of running in a container.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any

from repro_common.isolation import error_entry, guarded
from repro_common.redact import strip_userinfo

# Variables that change numerics, threading or determinism. Never credentials:
# nothing outside this list is ever recorded.
ENV_ALLOWLIST: tuple[str, ...] = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "TORCH_CUDNN_V8_API_ENABLED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "KERAS_BACKEND",
    "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "XLA_FLAGS",
)  # PL_GLOBAL_SEED and friends are seeds: the seeds section records them.

IMAGE_VARIABLE = "MLREPRO_IMAGE"
NVIDIA_SMI_TIMEOUT_S = 2.0
_META_SUFFIXES = (".dist-info", ".egg-info")
_NAME_RUN = re.compile(r"[-_.]+")
_CGROUP_MARKERS = ("docker", "kubepods", "containerd", "libpod", "lxc", "/ecs/", "garden")


def canonical_name(name: str) -> str:
    """PEP 503 form, so `PyYAML`, `pyyaml` and `py_yaml` name one distribution."""
    return _NAME_RUN.sub("-", name).lower()


def _read_text(path: str, limit: int = 1 << 20) -> str:
    """Read a small system file (/proc, /sys, /etc); tests patch this to simulate denial."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


# ---------------------------------------------------------------- packages


def _metadata_headers(path: str) -> tuple[str | None, str | None]:
    """Name and Version from a METADATA/PKG-INFO header block (stops at the body)."""
    name = version = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key == "Version":
                version = value.strip()
            if name and version:
                break
    return name, version


def _name_version(folder: str, entry: str) -> tuple[str, str | None]:
    """From `torch-2.13.0.dist-info` or `PyYAML-5.1-py3.8.egg-info`; METADATA only if unclear."""
    stem = entry.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    version = rest.split("-", 1)[0] if entry.endswith(".egg-info") else rest
    if name and version and version[0].isdigit():
        return name, version
    path = os.path.join(folder, entry)
    meta = path if os.path.isfile(path) else None
    if meta is None:
        for candidate in ("METADATA", "PKG-INFO"):
            if os.path.isfile(os.path.join(path, candidate)):
                meta = os.path.join(path, candidate)
                break
    if meta is None:
        raise ValueError(f"{entry}: no version in the folder name and no METADATA")
    meta_name, meta_version = _metadata_headers(meta)
    if not (meta_name or name):
        raise ValueError(f"{entry}: no Name in METADATA")
    return meta_name or name, meta_version


def classify_direct_url(info: dict[str, Any]) -> dict[str, Any]:
    """PEP 610 `direct_url.json` content -> source fields of a package record."""
    url = strip_userinfo(str(info.get("url") or ""))
    record: dict[str, Any] = {"url": url}
    if info.get("subdirectory"):
        record["subdirectory"] = str(info["subdirectory"])
    local = url.startswith("file:")
    if isinstance(info.get("vcs_info"), dict):
        vcs = info["vcs_info"]
        record.update(source="vcs", vcs=vcs.get("vcs", "git"), commit=vcs.get("commit_id"))
        if vcs.get("requested_revision"):
            record["requested_revision"] = vcs["requested_revision"]
        if not record["commit"]:
            record.update(reinstallable=False, reason="VCS install without a recorded commit")
        elif local:
            record.update(
                reinstallable=False,
                reason="VCS install from a repository on this machine; push the commit and install from its remote",
            )
        else:
            record["reinstallable"] = True
    elif isinstance(info.get("archive_info"), dict):
        archive = info["archive_info"]
        hashes = archive.get("hashes") if isinstance(archive.get("hashes"), dict) else {}
        if hashes:
            algo = "sha256" if "sha256" in hashes else sorted(hashes)[0]
            record["hash"] = f"{algo}={hashes[algo]}"
        elif archive.get("hash"):
            record["hash"] = str(archive["hash"])
        record["source"] = "archive"
        if local:
            record.update(
                reinstallable=False,
                reason="installed from an archive file on this machine; publish it to an index or URL",
            )
        else:
            record["reinstallable"] = True
    elif isinstance(info.get("dir_info"), dict):
        editable = bool(info["dir_info"].get("editable"))
        record["editable"] = editable
        record["source"] = "editable" if editable else "local"
        record.update(
            reinstallable=False,
            reason=(
                "editable install of a local directory; commit it and install from git"
                if editable
                else "installed from a local directory; build and publish it, or install from git"
            ),
        )
    else:
        record.update(
            source="unknown", reinstallable=False, reason="direct_url.json names no source"
        )
    return record


def _package_record(folder: str, entry: str, site_dir: bool) -> dict[str, Any]:
    name, version = _name_version(folder, entry)
    record: dict[str, Any] = {"name": canonical_name(name), "version": version}
    if entry.endswith(".dist-info"):
        try:
            with open(os.path.join(folder, entry, "direct_url.json"), encoding="utf-8") as handle:
                direct = handle.read()
        except FileNotFoundError:
            direct = None
        if direct is not None:
            try:
                info = json.loads(direct)
                if not isinstance(info, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                record.update(
                    source="unknown",
                    reinstallable=False,
                    reason=f"unreadable direct_url.json ({exc})",
                )
                return record
            record.update(classify_direct_url(info))
            return record
    elif not site_dir:
        # `setup.py develop` leaves the egg-info in the source tree, not in site-packages.
        record.update(
            source="editable",
            editable=True,
            url="file://" + folder.replace(os.sep, "/"),
            reinstallable=False,
            reason="legacy develop install (egg-info in a source tree); commit it and install from git",
        )
        return record
    record["source"] = "index"
    record["reinstallable"] = version is not None
    if version is None:
        record["reason"] = "no version recorded"
    return record


def _path_entries() -> list[str]:
    seen: set[str] = set()
    entries: list[str] = []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        if folder not in seen:
            seen.add(folder)
            entries.append(folder)
    return entries


def collect_packages(errors: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every importable distribution, first on sys.path wins (as for `import`).

    A dist-info record beats an egg-info one for the same name: a modern editable
    install leaves both, and the dist-info holds the PEP 610 source.
    """
    found: dict[str, dict[str, Any]] = {}
    weak: dict[str, dict[str, Any]] = {}
    for folder in _path_entries():
        try:
            names = os.listdir(folder)
        except OSError:
            continue  # zip files, missing entries
        base = os.path.basename(folder)
        site_dir = base in ("site-packages", "dist-packages")
        for entry in sorted(names):
            if not entry.endswith(_META_SUFFIXES):
                continue
            try:
                record = _package_record(folder, entry, site_dir)
            except Exception as exc:  # one broken distribution must not hide the others
                if errors is not None:
                    errors.append(error_entry("environment.packages", exc))
                continue
            key = record["name"]
            if key in found:
                continue
            if entry.endswith(".egg-info"):
                weak.setdefault(key, record)
            else:
                found[key] = record
    for key, record in weak.items():
        found.setdefault(key, record)
    return sorted(found.values(), key=lambda p: p["name"])


def collect_conda() -> list[dict[str, Any]] | None:
    """Conda packages of the active env from `conda-meta/*.json` names, without running conda."""
    prefix = os.environ.get("CONDA_PREFIX")
    if not prefix:
        return None
    meta = os.path.join(prefix, "conda-meta")
    if not os.path.isdir(meta):
        return None
    packages = []
    for entry in sorted(os.listdir(meta)):
        if not entry.endswith(".json"):
            continue
        parts = entry[: -len(".json")].rsplit("-", 2)
        if len(parts) == 3:
            packages.append({"name": parts[0], "version": parts[1], "build": parts[2]})
    return packages


def requirements_txt(packages: list[dict[str, Any]]) -> str:
    """A pinned, reinstallable `pip install -r` list (validated: see repro_common.emit)."""
    from repro_common.emit import requirements_txt as build

    return build(packages)


def requirement_line(pkg: dict[str, Any]) -> str | None:
    """The pip requirement that reinstalls exactly this distribution, or None; EmitError if unsafe."""
    from repro_common.emit import requirement_line as build

    return build(pkg)


# ---------------------------------------------------------------- system


def collect_python() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "virtualenv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
    }


def _libc() -> str | None:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
        if value:
            return value
    except (AttributeError, ValueError, OSError):
        pass
    if platform.system() == "Darwin":
        return None
    lib, version = platform.libc_ver()
    return f"{lib} {version}".strip() or None


def collect_os() -> dict[str, Any]:
    uname = os.uname() if hasattr(os, "uname") else None
    return {
        "system": platform.system(),
        "release": uname.release if uname else platform.release(),
        "version": uname.version if uname else platform.version(),
        "machine": uname.machine if uname else platform.machine(),
        "libc": _libc(),
    }


def _cpu_model() -> str | None:
    system = platform.system()
    if system == "Linux":
        text = _read_text("/proc/cpuinfo", limit=64 * 1024)
        for key in ("model name", "Hardware", "cpu model", "Processor", "uarch"):
            for line in text.splitlines():
                if line.startswith(key) and ":" in line:
                    return line.split(":", 1)[1].strip() or None
        return None
    if system == "Darwin":
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=2
        )
        return out.stdout.strip() or None
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _start_nvidia_smi() -> subprocess.Popen[str] | None:
    """Launch `nvidia-smi` early so it runs while the packages are read."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    return subprocess.Popen(
        [exe, "--query-gpu=index,uuid,name,driver_version", "--format=csv,noheader,nounits"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # a timeout kills its whole group, helpers included
    )


def parse_nvidia_smi(output: str, visible: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """GPUs this process can see (CUDA_VISIBLE_DEVICES honoured, in its order) and the driver."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 4:
            rows.append(
                {
                    "index": cells[0],
                    "uuid": cells[1],
                    "name": ",".join(cells[2:-1]),
                    "driver": cells[-1],
                }
            )
    driver = rows[0]["driver"] if rows else None
    if visible is not None:
        chosen = []
        for token in (t.strip() for t in visible.split(",")):
            match = [
                r for r in rows if token and (r["index"] == token or r["uuid"].startswith(token))
            ]
            if not match:
                break  # CUDA stops at the first invalid entry
            chosen.append(match[0])
        rows = chosen
    return [{"name": r["name"]} for r in rows], driver


def _finish_nvidia_smi(proc: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], str | None]:
    try:
        out, _ = proc.communicate(timeout=NVIDIA_SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise TimeoutError(f"nvidia-smi gave no answer within {NVIDIA_SMI_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"nvidia-smi exited with {proc.returncode}")
    return parse_nvidia_smi(out, os.environ.get("CUDA_VISIBLE_DEVICES"))


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a child started with start_new_session and everything it spawned; reap it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    proc.wait()


def _proc_driver() -> str | None:
    try:
        text = _read_text("/proc/driver/nvidia/version", limit=4096)
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?([0-9][\w.]*)", text)
    return match.group(1) if match else None


def _torch_accelerators() -> dict[str, Any] | None:
    """CUDA/cuDNN from torch, only if the user already imported it (never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    info: dict[str, Any] = {"cuda": getattr(getattr(torch, "version", None), "cuda", None)}
    hip = getattr(getattr(torch, "version", None), "hip", None)
    if hip:
        info["hip"] = hip
    cudnn = sys.modules.get("torch.backends.cudnn")
    if cudnn is not None and cudnn.is_available():
        version = cudnn.version()
        info["cudnn"] = str(version) if version is not None else None
    cuda = getattr(torch, "cuda", None)
    # Only read devices when CUDA is already initialized: initializing it here would
    # cost a context and break fork-based workers.
    if cuda is not None and cuda.is_initialized():
        info["gpus"] = [{"name": cuda.get_device_name(i)} for i in range(cuda.device_count())]
    return info


def collect_hardware(
    errors: list[dict[str, Any]], smi: subprocess.Popen[str] | None = None
) -> dict[str, Any]:
    hardware: dict[str, Any] = {
        "cpu": guarded("environment.hardware.cpu", _cpu_model, None, errors),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "gpus": [],
        "driver": None,
        "cuda": None,
        "cudnn": None,
    }
    from_torch = guarded("environment.hardware.torch", _torch_accelerators, None, errors) or {}
    hardware.update({k: v for k, v in from_torch.items() if k != "gpus"})
    if smi is not None:
        nothing: tuple[list[dict[str, Any]], str | None] = ([], None)
        gpus, driver = guarded(
            "environment.hardware.gpus", lambda: _finish_nvidia_smi(smi), nothing, errors
        )
        hardware["gpus"], hardware["driver"] = gpus, driver
    elif from_torch.get("gpus"):
        hardware["gpus"] = from_torch["gpus"]
    if hardware["driver"] is None and (hardware["gpus"] or from_torch.get("cuda")):
        hardware["driver"] = _proc_driver()
    return hardware


def collect_container() -> dict[str, Any]:
    """Whether we run in a container, and its image when the environment names it."""
    evidence = os.path.exists("/.dockerenv") or bool(os.environ.get("container"))  # noqa: SIM112 (systemd's name)
    evidence = evidence or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    image = image_digest = source = None
    if os.path.exists("/run/.containerenv"):  # podman writes the image it started from
        evidence = True
        try:
            fields = dict(
                line.split("=", 1)
                for line in _read_text("/run/.containerenv").splitlines()
                if "=" in line
            )
        except OSError:
            fields = {}
        if fields.get("image"):
            # `imageid` there is a local image ID, not a registry digest: not recorded.
            image, source = fields["image"].strip('"'), "/run/.containerenv"
    if not evidence:
        try:
            cgroup = _read_text("/proc/1/cgroup", limit=64 * 1024)
            evidence = any(marker in cgroup for marker in _CGROUP_MARKERS)
        except OSError:
            pass
    named = os.environ.get(IMAGE_VARIABLE, "").strip()
    if named:
        image, source = named, IMAGE_VARIABLE
        image_digest = None
        if "@" in named:
            image_digest = named.rsplit("@", 1)[1]
    return {
        "in_container": evidence,
        "image": image,
        "image_digest": image_digest,
        "source": source,
    }


def collect_variables() -> dict[str, str]:
    return {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}


def collect_environment(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The environment section; each part can fail alone and is then left empty."""
    smi = guarded("environment.hardware.gpus", _start_nvidia_smi, None, errors)
    environment: dict[str, Any] = {
        "python": guarded("environment.python", collect_python, dict[str, Any](), errors),
        "os": guarded("environment.os", collect_os, dict[str, Any](), errors),
        "packages": guarded(
            "environment.packages", lambda: collect_packages(errors), list[dict[str, Any]](), errors
        ),
        "conda": guarded("environment.conda", collect_conda, None, errors),
        "container": guarded("environment.container", collect_container, None, errors),
        "variables": guarded("environment.variables", collect_variables, dict[str, str](), errors),
    }
    environment["hardware"] = guarded(
        "environment.hardware", lambda: collect_hardware(errors, smi), dict[str, Any](), errors
    )
    return environment  # `digest` is added by Manifest, over this section's relevant fields
