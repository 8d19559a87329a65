"""What the reproduction folder says: reproduce.sh, the Dockerfile and requirements.txt.

Built like a compiler emits code: every value from the record is one quoted
shell word or refused (repro_common.emit); comments are our own text only. What
a tracker needs in them (where the new run is logged) comes from its run source.
"""

from __future__ import annotations

import os
from pathlib import Path

from repro_common.manifest import Manifest
from repro_common.reproduce import tracking
from repro_common.reproduce.input_checks import table_version_variables
from repro_common.reproduce.workspace import CODE_DIR, VENV_DIR, Workspace
from repro_common.runs import RunRecord
from repro_common.sections import CodeSection
from repro_common.spec import HOST_SPECIFIC_VARIABLES  # device choice: the machine's, not the run's


def requirements(record: RunRecord) -> bytes:
    """Written from the record's packages, validated (never a stored file pasted as it is)."""
    from repro_common.environment import requirements_txt

    assert record.manifest is not None
    return requirements_txt(record.manifest.environment.get("packages") or []).encode()


def dockerfile(manifest: Manifest) -> str:
    """The environment spec rebuilt from the record (validated), then the steps that rerun it."""
    from repro_common.spec import render_dockerfile

    try:
        base = render_dockerfile(manifest)
    except ValueError:  # no usable Python version recorded: the generic image, said so
        base = (
            "# The record holds no usable Python version: a generic Python image.\n"
            "FROM python:3-slim\n\nWORKDIR /workspace\n"
            "COPY requirements.txt /tmp/mlrepro-requirements.txt\n"
            "RUN python -m pip install --no-cache-dir -r /tmp/mlrepro-requirements.txt\n"
        )
    git = (
        ""
        if "install -y --no-install-recommends git" in base
        else (
            "# git: the new run records the commit of code/.\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends git \\\n"
            "    && rm -rf /var/lib/apt/lists/*\n"
        )
    )
    return base.rstrip("\n") + (
        "\n\n# The reproduction: the code at the recorded commit with its diff, run as recorded.\n"
        "# Build and run from this folder:  docker build -t repro . && docker run --rm repro\n"
        + "".join(f"{hint}\n" for hint in tracking.dockerfile_hints())
        + git
        + "WORKDIR /reproduction\n"
        "COPY . /reproduction\n"
        'ENV PYTHON="python"\n'
        'CMD ["bash", "reproduce.sh"]\n'
    )


def recorded_variables(manifest: Manifest) -> tuple[dict[str, str], list[str]]:
    """(variables to export, comments) from the record's allow-listed variables and seeds.

    Comments are our own words only; names and values are validated and quoted
    where they are written (repro_common.emit).
    """
    env_vars = {
        str(k): str(v)
        for k, v in (manifest.environment.get("variables") or {}).items()
        if not str(k).startswith("MLREPRO_")
    }
    # Only what the process started with: switches such as CUBLAS_WORKSPACE_CONFIG that
    # seed_everything(deterministic=True) sets at run time are set again by the rerun.
    seeds = manifest.seeds or {}
    comments: list[str] = []
    hashing = seeds.get("hash_randomization") or {}
    env_vars.pop("PYTHONHASHSEED", None)
    if hashing:
        at_start = hashing.get("pythonhashseed_at_start")
        if at_start not in (None, ""):
            env_vars["PYTHONHASHSEED"] = str(at_start)
        elif hashing.get("enabled") is False:
            env_vars["PYTHONHASHSEED"] = "0"
        else:
            comments.append(
                "the original ran with hash randomisation on: set and dict-of-str orders may differ"
            )
    elif (manifest.environment.get("variables") or {}).get("PYTHONHASHSEED") is not None:
        env_vars["PYTHONHASHSEED"] = str(manifest.environment["variables"]["PYTHONHASHSEED"])
    host_specific = {k: env_vars.pop(k) for k in list(env_vars) if k in HOST_SPECIFIC_VARIABLES}
    for name in sorted(host_specific):  # our own constant names; the value stays in the record
        comments.append(f"the original set {name} (machine-specific, not set here)")
    if seeds.get("global") is not None:
        env_vars["MLREPRO_SEED"] = str(seeds["global"])
    if manifest.track:
        env_vars["MLREPRO_TRACK"] = str(manifest.track)
    return env_vars, comments


def _entry_command(manifest: Manifest) -> list[str] | None:
    """argv to run from the recorded cwd, or None when the entry point is not a script file."""
    from repro_common.emit import module_name

    code = manifest.code
    argv = [str(a) for a in code.get("argv") or []]
    if code.get("entry_module"):  # `python -m package.module`: relative imports need -m again
        return ["-m", module_name(code["entry_module"]), *argv]
    entry = code.get("entry_point")
    if not entry or str(entry).startswith("-") or str(entry) in {"<stdin>", "<string>"}:
        return None
    entry_path = Path(str(entry))
    if not entry_path.is_absolute():
        cwd = Path(code.get("cwd") or ".")
        entry_str = os.path.relpath(entry_path, cwd)
    else:
        entry_str = str(entry_path)
    return [entry_str, *argv]


def argv_warnings(code: CodeSection) -> list[str]:
    warnings = []
    if any(str(a) == "***" or str(a).endswith("=***") for a in code.get("argv") or []):
        warnings.append(
            "an argument was recorded as *** (it looked like a secret): edit reproduce.sh"
        )
    entry = code.get("entry_point")
    if entry and Path(str(entry)).is_absolute():
        warnings.append(f"the entry point {entry} was outside the repository: it is run from there")
    return warnings


def render_script(ws: Workspace) -> str:
    """reproduce.sh: readable on its own, runnable without mlrepro, from any folder.

    Every value from the record is one quoted shell word or refused; the lines
    that say where the new run is logged are the run sources' own.
    """
    from repro_common.emit import default_line, export_line, relative_dir, shell_name, shell_word

    manifest = ws.manifest
    code = manifest.code
    variables, comments = recorded_variables(manifest)
    variables["MLREPRO_REPRODUCES"] = ws.reproduces
    variables.update(table_version_variables(manifest))
    command = _entry_command(manifest)
    lines = [
        "#!/usr/bin/env bash",
        "# Reproduces a recorded run: its code at the recorded commit"
        + (" with its recorded diff applied" if code.get("dirty") else "")
        + ", its seed and numerics settings.",
        "# Generated by `mlrepro reproduce` (manifest.json next to it is the record); "
        "PYTHON=... picks the interpreter.",
        "set -euo pipefail",
        'CALLER_DIR="$(pwd)"',
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'if [ -z "${PYTHON:-}" ]; then',
        f'  if [ -x "$HERE/{VENV_DIR}/bin/python" ]; then PYTHON="$HERE/{VENV_DIR}/bin/python"; '
        "else PYTHON=python3; fi",
        "fi",
        "",
        "# Recorded settings that change numerics, the seed and the track.",
    ]
    lines += [f"# note: {c}" for c in comments]
    lines += [export_line(k, v) for k, v in sorted(variables.items())]
    if "PYTHONHASHSEED" not in variables:
        lines.append("unset PYTHONHASHSEED")
    lines += ["", "# Where the new run is logged (override by setting these before running)."]
    for key, value in sorted(ws.tracker_env.items()):
        if value == str(ws.root):  # this folder, wherever it is moved to
            name = shell_name(key)
            lines.append(f'[ -n "${{{name}:-}}" ] || {name}="$HERE"; export {name}')
        else:
            lines.append(default_line(key, value))
    lines += tracking.script_lines()
    lines += [f"unset {' '.join(tracking.dropped_variables())}", ""]
    cwd = relative_dir(code.get("cwd") or "")
    lines.append(f'cd "$HERE/{CODE_DIR}"' + (f"/{shell_word(cwd)}" if cwd else ""))
    if command is None:
        lines += ["echo 'the record names no script file to run' >&2", "exit 2"]
    else:
        lines.append('exec "$PYTHON" ' + " ".join(shell_word(a) for a in command) + ' "$@"')
    return "\n".join(lines) + "\n"
