"""Rebuild a run from its record alone, run it again, and say whether the numbers came back.

The steps are separate functions so the CLI can show progress between them:
`materialise` (clone at the recorded commit, apply the stored diff, write
requirements.txt, Dockerfile and reproduce.sh), optionally `create_venv`,
`check_inputs` (the data must match before a run is worth its time),
`run_script`, `find_reproduction` and `compare`.

The reproduction lives in its own folder: `code/` is the checkout (so the new
run's code record is the same commit and the same diff), and next to it the
record (`manifest.json`, `code.diff`, `requirements.txt`), the `Dockerfile` and
`reproduce.sh`. Nothing is written outside that folder.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from repro_common.manifest import Manifest
from repro_common.outcomes import TIMING_METRICS, is_timing
from repro_common.runs import RunRecord

CODE_DIR = "code"
SCRIPT = "reproduce.sh"
LOG = "reproduce.log"
VENV_DIR = ".venv"
# Metrics that measure the machine or the clock, never the model (see repro_common.outcomes).
DEFAULT_IGNORED_METRICS = TIMING_METRICS
# `reproduce` exit code when the run was rebuilt and rerun but no outcome could be compared.
EXIT_NOT_VERIFIED = 3
REPRODUCED, NOT_REPRODUCED, NOT_VERIFIED = "REPRODUCED", "NOT REPRODUCED", "REBUILT, NOT VERIFIED"
WHAT_TO_LOG = (
    "log an outcome to compare: a final metric (mlflow.log_metric / run.log), "
    "or the model or predictions as an artifact with --compare artifacts"
)
# Device selection belongs to the machine, not to the run's numerics.
HOST_SPECIFIC_VARIABLES = frozenset({"CUDA_VISIBLE_DEVICES"})
PATH_KINDS = frozenset({"file", "directory", "dir", "path", "files"})
Step = Callable[[str], None]
RECORD_RETRIES = 5  # seconds to wait for a new run's manifest to appear


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
    warnings: list[str] = field(default_factory=list)
    python: str = sys.executable
    integrity: str = ""  # the gate's manifest rule, as checked before anything was done
    trusted_by_flag: bool = False  # --trust-record: used although the check failed

    @property
    def run_cwd(self) -> Path:
        return self.code_dir / (self.manifest.code.get("cwd") or "")


@dataclass
class Check:
    """One line of the verdict table."""

    section: str  # input | metric | artifact | run | code | environment | seeds
    name: str
    original: str
    reproduced: str
    ok: bool | None  # None: informational, not part of the verdict
    note: str = ""


@dataclass
class Verdict:
    reproduced: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    new_run: RunRecord | None = None
    verified: bool = True  # False: rebuilt and rerun, but no outcome could be compared

    @property
    def differences(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    @property
    def word(self) -> str:
        if not self.verified:
            return NOT_VERIFIED
        return REPRODUCED if self.reproduced else NOT_REPRODUCED

    @property
    def exit_code(self) -> int:
        """0 reproduced, 1 not reproduced, 3 rebuilt but nothing compared."""
        if not self.verified:
            return EXIT_NOT_VERIFIED
        return 0 if self.reproduced else 1

    @property
    def not_compared(self) -> list[Check]:
        """Outcomes shown but left out of the verdict (timing metrics, volatile files)."""
        return [c for c in self.checks if c.ok is None and c.section in ("metric", "artifact")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.word,
            "reproduced": self.reproduced,
            "verified": self.verified,
            "reason": self.reason,
            "new_run": None
            if self.new_run is None
            else {
                "kind": self.new_run.kind,
                "run_id": self.new_run.run_id,
                "location": self.new_run.location,
            },
            "checks": [c.__dict__ for c in self.checks],
        }


# ---------------------------------------------------------------- materialise


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


def verify_record(record: RunRecord, trust_record: bool = False) -> tuple[str, bool]:
    """(the integrity verdict, whether the flag overrode it); UntrustedRecord when it fails.

    The gate's own integrity rule, before anything is cloned, installed or run: the
    digest against the content and against the run's creation tag, and every
    listed file's bytes. A record that fails it is refused unless the user says
    `--trust-record`, which the verdict then repeats.
    """
    from repro_common.gate import announced_missing, manifest_rule, stored_artifacts
    from repro_common.runs import record_incomplete

    if record.kind != "manifest":  # an upload that never landed: nothing to verify or use
        missing = announced_missing(record, stored_artifacts(record))
        if missing:
            raise ReproduceError(record_incomplete(missing))
    rule = manifest_rule(record)
    if rule.passed:
        return rule.reason, False
    if not trust_record:
        raise UntrustedRecord(
            f"refusing to reproduce {record.ref}: {rule.reason}; nothing was cloned or run "
            "(pass --trust-record to use it as it is)"
        )
    return rule.reason, True


def materialise(
    record: RunRecord,
    target: Path,
    tracking_uri: str | None = None,
    step: Step | None = None,
    trust_record: bool = False,
) -> Workspace:
    """Rebuild the run's code and recipe in `target` (which must not hold anything yet).

    The record's integrity is checked first (see `verify_record`).
    """
    say = step or (lambda _msg: None)
    manifest = record.manifest
    if manifest is None:
        raise ReproduceError(f"{record.ref}: {record.manifest_error or 'no manifest in the run'}")
    integrity, overridden = verify_record(record, trust_record)
    code = manifest.code or {}
    commit = code.get("commit")
    if not commit:
        reason = code.get("reason") or "no git commit in the record"
        raise ReproduceError(f"the run recorded no commit ({reason}): its code cannot be rebuilt")
    if code.get("diff_truncated"):
        raise ReproduceError(
            "the run's diff was truncated when it was recorded: the exact code cannot be rebuilt"
        )
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReproduceError(f"{target} already exists and is not empty: choose another --dir")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    code_dir = target / CODE_DIR
    try:
        cloned_from = _clone(code, commit, code_dir, say)
        diff = record.read_artifact("repro/code.diff")
        if code.get("dirty") and not diff:
            from repro_common.artifacts import CODE_DIFF, parse_announcement
            from repro_common.runs import ANNOUNCED_TAG, record_incomplete

            if CODE_DIFF in (parse_announcement((record.tags or {}).get(ANNOUNCED_TAG)) or []):
                raise ReproduceError(record_incomplete([f"repro/{CODE_DIFF}"]))
            raise ReproduceError(
                "the run was made from a dirty tree but its diff (repro/code.diff) "
                "is not in the record"
            )
    except ReproduceError:
        if created:  # leave nothing half-made behind: the same --dir works on the next try
            shutil.rmtree(target, ignore_errors=True)
        raise
    if diff:
        say("applying the recorded diff")
        _apply_diff(code_dir, target / "code.diff", diff, commit)
    warnings = _verify_unversioned(code, code_dir)

    ws = Workspace(
        root=target,
        record=record,
        manifest=manifest,
        code_dir=code_dir,
        script=target / SCRIPT,
        cloned_from=cloned_from,
        reproduces=reproduces_id(record),
        warnings=warnings,
        integrity=integrity,
        trusted_by_flag=overridden,
    )
    from repro_common.emit import EmitError

    try:
        requirements = _requirements(record)
        dockerfile = _dockerfile(record, manifest)
        ws.tracker_env, ws.secret_env = _tracker_env(record, tracking_uri, target)
        script = render_script(ws)
    except EmitError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise ReproduceError(str(exc)) from exc
    (target / "manifest.json").write_text(manifest.to_json() + "\n")
    (target / "requirements.txt").write_bytes(requirements)
    (target / "Dockerfile").write_text(dockerfile)
    (target / ".dockerignore").write_text(f"{VENV_DIR}/\n{LOG}\nwandb/\n")
    ws.script.write_text(script)
    ws.script.chmod(0o755)
    ws.warnings += _argv_warnings(code)
    from repro_common.hf_trainer import record_warnings

    ws.warnings += record_warnings(manifest.seeds)
    return ws


def short(commit: str) -> str:
    return str(commit)[:10]


# Transports a recorded remote may use: no `ext::` (it runs a command), no unknown helpers.
GIT_PROTOCOLS = "file:git:http:https:ssh"


def _git(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """git with no prompts and safe transports; callers put `--` before every record value."""
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS,
    }
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=20")
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
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


def _clone(code: dict[str, Any], commit: str, code_dir: Path, say: Step) -> str:
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


def _apply_diff(code_dir: Path, patch_file: Path, diff: bytes, commit: str) -> None:
    patch_file.write_bytes(diff)
    proc = _git("apply", "--whitespace=nowarn", "--", str(patch_file), cwd=code_dir, timeout=120)
    if proc.returncode != 0:
        raise ReproduceError(
            f"the recorded diff no longer applies to commit {short(commit)}: {_git_error(proc)} "
            f"(checkout and diff left in {code_dir.parent} for a manual merge)"
        )


def _verify_unversioned(code: dict[str, Any], code_dir: Path) -> list[str]:
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


def _requirements(record: RunRecord) -> bytes:
    """Written from the record's packages, validated (never a stored file pasted as it is)."""
    from repro_common.environment import requirements_txt

    assert record.manifest is not None
    return requirements_txt(record.manifest.environment.get("packages") or []).encode()


def _dockerfile(record: RunRecord, manifest: Manifest) -> str:
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
        "# (add -e MLFLOW_TRACKING_URI=<server> to log the new run where the original is)\n"
        + git
        + "WORKDIR /reproduction\n"
        "COPY . /reproduction\n"
        'ENV PYTHON="python"\n'
        'CMD ["bash", "reproduce.sh"]\n'
    )


def _absolute_uri(uri: str) -> str:
    """Make a relative SQLite or file store absolute: the reproduction runs in another folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///") :]
        if rel and not rel.startswith(":memory:"):
            return "sqlite:///" + str(Path(rel).resolve())
    if "://" not in uri and uri and not uri.startswith("databricks"):
        return str(Path(uri).resolve())
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return Path(uri[len("file:") :].lstrip("/")).resolve().as_uri()
    return uri


def _strip_userinfo(uri: str) -> str:
    from repro_common.redact import strip_userinfo

    return strip_userinfo(uri)


def mlflow_tracking_uri(tracking_uri: str | None) -> str:
    """The store the original MLflow run was read from (MLflow's default when none was given)."""
    if tracking_uri:
        return _absolute_uri(tracking_uri)
    import mlflow  # only reached for MLflow runs, so MLflow is installed

    return _absolute_uri(mlflow.get_tracking_uri())


def _tracker_env(
    record: RunRecord, tracking_uri: str | None, target: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """(variables written into reproduce.sh as defaults, the same with credentials for the run)."""
    written: dict[str, str] = {"WANDB_DIR": str(target)}
    if record.kind == "wandb":
        written["WANDB_MODE"] = "offline"
    if record.kind == "mlflow" or (record.kind == "manifest" and tracking_uri):
        uri = mlflow_tracking_uri(tracking_uri)
        written["MLFLOW_TRACKING_URI"] = _strip_userinfo(uri)
        if record.kind == "mlflow" and record.run_id:
            experiment = _mlflow_experiment(uri, record.run_id)
            if experiment is not None:
                written["MLFLOW_EXPERIMENT_ID"] = experiment
        secret = dict(written)
        secret["MLFLOW_TRACKING_URI"] = uri
        return written, secret
    return written, dict(written)


def _mlflow_experiment(uri: str, run_id: str) -> str | None:
    try:
        from mlflow.tracking import MlflowClient

        return str(MlflowClient(uri).get_run(run_id).info.experiment_id)
    except Exception:  # the run was readable moments ago; an experiment is only a nicety
        return None


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


def _argv_warnings(code: dict[str, Any]) -> list[str]:
    warnings = []
    if any(str(a) == "***" or str(a).endswith("=***") for a in code.get("argv") or []):
        warnings.append(
            "an argument was recorded as *** (it looked like a secret): edit reproduce.sh"
        )
    entry = code.get("entry_point")
    if entry and Path(str(entry)).is_absolute():
        warnings.append(f"the entry point {entry} was outside the repository: it is run from there")
    return warnings


# Run by hand, a relative store inherited from the caller's shell is made absolute against
# the caller's folder before the script changes into code/ (else a new store appears there).
_ABSOLUTE_STORE = """\
case "${MLFLOW_TRACKING_URI:-}" in
  sqlite:////* | sqlite:///:memory:*) ;;
  sqlite:///*) MLFLOW_TRACKING_URI="sqlite:///$CALLER_DIR/${MLFLOW_TRACKING_URI#sqlite:///}" ;;
  file:///* | file://*/*) ;;
  file:*) MLFLOW_TRACKING_URI="file://$CALLER_DIR/${MLFLOW_TRACKING_URI#file:}" ;;
  "" | /* | *://* | databricks*) ;;
  *) MLFLOW_TRACKING_URI="$CALLER_DIR/$MLFLOW_TRACKING_URI" ;;
esac"""


def render_script(ws: Workspace) -> str:
    """reproduce.sh: readable on its own, runnable without mlrepro, from any folder.

    Built like a compiler emits code: every value from the record is one quoted
    shell word or refused (repro_common.emit); comments are our own text only.
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
    lines += [
        _ABSOLUTE_STORE,
        'if [ -n "${MLFLOW_TRACKING_URI:-}" ]; then export MLFLOW_TRACKING_URI; fi',
    ]
    lines += ["unset MLFLOW_RUN_ID MLREPRO_DISABLE", ""]
    cwd = relative_dir(code.get("cwd") or "")
    lines.append(f'cd "$HERE/{CODE_DIR}"' + (f"/{shell_word(cwd)}" if cwd else ""))
    if command is None:
        lines += ["echo 'the record names no script file to run' >&2", "exit 2"]
    else:
        lines.append('exec "$PYTHON" ' + " ".join(shell_word(a) for a in command) + ' "$@"')
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ environment / venv


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
    return re.sub(r"[-_.]+", "-", name).lower()


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


# ------------------------------------------------------------------------ inputs


def _in_checkout(path: Path, manifest: Manifest, code_dir: Path) -> Path | None:
    root = manifest.code.get("root")
    if not root:
        return None
    try:
        rel = path.resolve().relative_to(Path(str(root)).resolve())
    except (ValueError, OSError):
        return None
    return code_dir / rel


def check_inputs(ws: Workspace, step: Step | None = None) -> list[Check]:
    """Fingerprint the recorded file and folder inputs before running.

    Inputs that live inside the repository but are not in git (a gitignored
    data/ folder) are linked into the checkout from where they were, or restored
    from the run's data snapshot, so the script finds them where it did.
    """
    say = step or (lambda _msg: None)
    from repro_common.fingerprints import fingerprint
    from repro_common.table_inputs import VERSIONED_KINDS
    from repro_common.tracks import input_path

    checks = []
    for item in ws.manifest.data or []:
        name, recorded = str(item.get("name")), str(item.get("fingerprint") or "")
        if item.get("kind") in VERSIONED_KINDS:
            say(f"checking versioned input {name}")
            checks.append(table_input_check(item))
            continue
        if str(item.get("kind") or "") not in PATH_KINDS:
            continue
        original = input_path(item, ws.manifest)
        if original is None:
            continue
        mapped = _in_checkout(original, ws.manifest, ws.code_dir)
        where = mapped if mapped is not None else original
        if mapped is not None and not mapped.exists():
            refused = None if within(ws.root, mapped) else f"{mapped} leads outside {ws.root}"
            if refused is None and original.exists():
                mapped.parent.mkdir(parents=True, exist_ok=True)
                mapped.symlink_to(original, target_is_directory=original.is_dir())
            elif refused is None:
                refused = _restore_snapshot(ws, item, mapped, say)
            if refused is not None:
                checks.append(
                    Check(
                        "input",
                        name,
                        short_fp(recorded),
                        "refused",
                        False,
                        f"not restored: {refused}",
                    )
                )
                continue
        if not where.exists():
            checks.append(
                Check("input", name, short_fp(recorded), "missing", False, f"{original} is gone")
            )
            continue
        say(f"fingerprinting input {name}")
        try:
            now = fingerprint(where)
        except Exception as exc:  # unreadable data is a mismatch, said in one line
            checks.append(Check("input", name, short_fp(recorded), "unreadable", False, str(exc)))
            continue
        checks.append(
            Check(
                "input",
                name,
                short_fp(recorded),
                short_fp(now),
                now == recorded,
                "" if now == recorded else f"{original} changed since the run",
            )
        )
    return checks


def table_input_check(item: dict[str, Any]) -> Check:
    """A versioned input (Delta, Iceberg, S3, lakeFS): its recorded version must still give
    the recorded fingerprint."""
    from repro_common.table_inputs import TableInputError, label, reopen_table

    name, recorded = str(item.get("name")), str(item.get("fingerprint") or "")
    try:
        now = reopen_table(item)["fingerprint"]
    except TableInputError as exc:
        return Check("input", name, short_fp(recorded), "gone", False, str(exc))
    same = now == recorded
    note = "" if same else f"{label(item)} no longer gives the recorded fingerprint"
    return Check("input", name, short_fp(recorded), short_fp(now), same, note)


def table_version_variables(manifest: Manifest) -> dict[str, str]:
    """`MLREPRO_DATA_<NAME>_VERSION` per table input: the rerun reads the recorded version
    (`repro_common.data_version(name)`)."""
    from repro_common.table_inputs import recorded_version, version_variable

    found = {}
    for item in manifest.data or []:
        version = recorded_version(item)
        if version is not None:
            found[version_variable(str(item.get("name")))] = version
    return found


def within(root: Path, path: Path) -> bool:
    """True when `path`, every symlink on its way followed, stays inside `root`."""
    base = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return resolved == base or base in resolved.parents


def _restore_snapshot(ws: Workspace, item: dict[str, Any], mapped: Path, say: Step) -> str | None:
    """Write the run's stored copy of `item` at `mapped`; why not, when a file would leave --dir.

    A rule-2 record restores exactly the files it lists (their bytes were checked
    before anything was done); every destination is resolved, so a symlink the
    recorded diff created cannot carry a write outside the reproduction folder.
    """
    from repro_common.tracks import snapshot_prefix

    prefix = f"repro/{snapshot_prefix(str(item.get('name')))}/"
    if ws.manifest.legacy_digest:
        names = [n for n in ws.record.list_artifacts(prefix.rstrip("/")) if n.startswith(prefix)]
    else:
        names = sorted(n for n in ws.manifest.artifacts if n.startswith(prefix))
    if not names:
        return None
    say(f"restoring input {item.get('name')} from the run's snapshot")
    layout = (item.get("snapshot") or {}).get("layout")
    for artifact in names:
        rel = artifact[len(prefix) :]
        if layout == "file":
            dest = mapped
        else:
            rel = rel.split("/", 1)[1] if "/" in rel else rel  # drop the folder's own name
            dest = mapped / rel
        if ".." in Path(rel).parts or not within(ws.root, dest):
            return f"{artifact} would be written to {dest}, outside {ws.root}"
        raw = ws.record.read_artifact(artifact)
        if raw is None:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not within(ws.root, dest):  # a folder made just now cannot be a link, but be sure
            return f"{artifact} would be written outside {ws.root}"
        dest.write_bytes(raw)
    return None


def short_fp(value: str | None) -> str:
    if not value:
        return "-"
    algo, _, hexdigest = str(value).partition(":")
    return f"{algo}:{hexdigest[:8]}" if hexdigest else str(value)[:20]


# -------------------------------------------------------------------------- run


@dataclass
class RunResult:
    returncode: int
    started_at: float
    seconds: float
    log: Path
    tail: list[str]


def run_script(
    ws: Workspace, timeout: float | None = None, on_line: Step | None = None
) -> RunResult:
    """Run reproduce.sh, output to reproduce.log and, line by line, to `on_line`."""
    emit = on_line or (lambda _line: None)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLREPRO_DISABLE")}
    env.update(ws.secret_env)
    env["PYTHON"] = ws.python
    log_path = ws.root / LOG
    started = time.time()
    tail: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", str(ws.script)],
            cwd=ws.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                log.write(line)
                stripped = line.rstrip()
                if stripped:
                    tail.append(stripped)
                    del tail[:-20]
                    emit(stripped)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            tail.append(f"mlrepro: stopped after the {timeout:.0f}s timeout")
            code = 124
        reader.join(timeout=10)
    return RunResult(code, started, time.time() - started, log_path, list(tail))


def find_reproduction(
    ws: Workspace, started_at: float, tracking_uri: str | None = None
) -> RunRecord | None:
    """The run the script just logged: tagged repro.reproduces=<original> in MLflow, or a new W&B dir."""
    from repro_common.runs import load_run

    candidates: list[RunRecord] = []
    uri = ws.secret_env.get("MLFLOW_TRACKING_URI")
    if uri:
        run_id = _find_mlflow_run(uri, ws.reproduces, started_at, ws.record.params)
        if run_id:
            candidates.append(load_run(run_id, uri))
    if ws.record.kind != "mlflow" or not candidates:
        for run_dir in _new_wandb_dirs(ws, started_at):
            try:
                candidates.append(load_run(str(run_dir)))
            except Exception:
                continue
    tagged = [c for c in candidates if c.tags.get("repro.reproduces") == ws.reproduces]
    same_kind = [c for c in (tagged or candidates) if c.kind == ws.record.kind]
    preferred = same_kind or tagged or candidates
    if not preferred:
        return None
    found = preferred[0]
    for _ in range(RECORD_RETRIES):  # an adapter may still be finishing its upload
        if found.manifest is not None:
            break
        time.sleep(1.0)
        ref = found.run_id if found.kind == "mlflow" and found.run_id else str(found.location)
        found = load_run(ref, uri)
    return found


def _find_mlflow_run(
    uri: str, original: str, started_at: float, params: dict[str, str]
) -> str | None:
    """Runs of this store tagged as reproducing `original`, started since; the one whose params match."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    quoted = original.replace("'", "\\'")
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`repro.reproduces` = '{quoted}' "
        f"AND attributes.start_time >= {int(started_at * 1000) - 1000}",
        run_view_type=ViewType.ALL,
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    for run in runs:
        if params and dict(run.data.params) == dict(params):
            return str(run.info.run_id)
    return str(runs[0].info.run_id) if runs else None


def _new_wandb_dirs(ws: Workspace, started_at: float) -> list[Path]:
    """W&B run folders written since the run started, newest first."""
    roots = {ws.root / "wandb", ws.run_cwd / "wandb"}
    if os.environ.get("WANDB_DIR"):
        roots.add(Path(os.environ["WANDB_DIR"]) / "wandb")
    original = (
        Path(ws.record.location) if ws.record.kind == "wandb" and ws.record.location else None
    )
    if original is not None:
        roots.add(original.parent)
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for child in root.iterdir():
            if (
                child.is_dir()
                and not child.is_symlink()
                and (original is None or child.resolve() != original.resolve())
                and re.match(r"^(offline-)?run-", child.name)
                and child.stat().st_mtime >= started_at - 1
            ):
                found.append(child)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


# ---------------------------------------------------------------------- compare


def compare_inputs(original: Manifest, new: Manifest | None) -> list[Check]:
    """Every recorded input must come back with the same fingerprint."""
    checks = []
    new_items = {str(i.get("name")): i for i in (new.data if new else [])}
    for item in original.data or []:
        name, recorded = str(item.get("name")), str(item.get("fingerprint") or "")
        other = new_items.get(name)
        if other is None:
            checks.append(
                Check(
                    "input",
                    name,
                    short_fp(recorded),
                    "not tracked",
                    False,
                    "not tracked by the new run",
                )
            )
            continue
        now = str(other.get("fingerprint") or "")
        if not recorded and not now:  # read but not fingerprinted in either run
            reason = str(item.get("reason") or item.get("kind") or "no fingerprint")
            checks.append(Check("input", name, "-", "-", None, f"not compared: {reason}"))
            continue
        note = "" if now == recorded else "the new run read different data"
        if other.get("partial") or item.get("partial"):
            note = (note + "; " if note else "") + "partial fingerprint"
        checks.append(
            Check("input", name, short_fp(recorded), short_fp(now), now == recorded, note)
        )
    return checks


def metric_matches(original: float, new: float, tolerance: float) -> bool:
    """Exact (bitwise) at tolerance 0, else within `tolerance`, absolute or relative."""
    if math.isnan(original) or math.isnan(new):
        return math.isnan(original) and math.isnan(new)
    if tolerance <= 0:
        return original == new
    return math.isclose(original, new, rel_tol=tolerance, abs_tol=tolerance)


def compare_metrics(
    original: dict[str, float],
    new: dict[str, float],
    tolerance: float = 0.0,
    ignore: tuple[str, ...] = (),
    compare_anyway: tuple[str, ...] = (),
) -> list[Check]:
    """One check per final metric; clock metrics and `ignore` globs are listed, not judged (ok=None)."""
    checks = []
    for name in sorted(original):
        value = _as_float(original[name])
        if value is None:
            continue
        shown = repr(_as_float(new.get(name))) if _as_float(new.get(name)) is not None else "-"
        if any(fnmatch(name, pattern) for pattern in ignore):
            checks.append(
                Check("metric", name, repr(value), shown, None, "ignored (--ignore-metric)")
            )
            continue
        if is_timing(name, compare_anyway):
            checks.append(Check("metric", name, repr(value), shown, None, "not compared (timing)"))
            continue
        if name not in new or _as_float(new[name]) is None:
            checks.append(
                Check("metric", name, repr(value), "missing", False, "not logged by the new run")
            )
            continue
        other = _as_float(new[name])
        assert other is not None
        ok = metric_matches(value, other, tolerance)
        note = "" if ok or math.isnan(value - other) else f"delta {other - value:+.6g}"
        checks.append(Check("metric", name, repr(value), repr(other), ok, note))
    return checks


def compare_artifacts(original: RunRecord, new: RunRecord) -> list[Check]:
    """Content digests of the run's logged files (model weights, predictions), our repro/ excluded.

    Files that change on every run whatever the model (an MLflow model's MLmodel, with
    its run id, creation time and uuid) are listed as not compared, with the reason.
    """
    from repro_common.outcomes import artifact_digests

    before, skipped = artifact_digests(original)
    after, _ = artifact_digests(new)
    checks = [
        Check("artifact", path, "-", "-", None, f"not compared: {why}")
        for path, why in sorted(skipped.items())
    ]
    for path, digest in sorted(before.items()):
        now = after.get(path)
        if now is None:
            checks.append(
                Check("artifact", path, short_fp(digest), "missing", False, "not logged again")
            )
            continue
        note = "" if now == digest else "content differs"
        checks.append(Check("artifact", path, short_fp(digest), short_fp(now), now == digest, note))
    return checks


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def compare(
    ws: Workspace,
    result: RunResult,
    new: RunRecord | None,
    tolerance: float = 0.0,
    ignore: tuple[str, ...] = (),
    compare_anyway: tuple[str, ...] = (),
    artifacts: bool = False,
) -> Verdict:
    """Inputs first (a different input explains any difference), then the outcomes.

    REPRODUCED needs at least one outcome (a metric, or with `artifacts` a logged
    file's content) compared, and all compared agreeing; with nothing to compare the
    verdict is REBUILT, NOT VERIFIED. An unseeded original is said first: its
    randomness was never recorded, so a match is luck and a mismatch expected.
    """
    from repro_common.diff import seeds_known

    original = ws.manifest
    unseeded = not seeds_known(original.seeds or {})
    lead = (
        "the original run was not seeded (no seed recorded), so its randomness cannot be replayed; "
        if unseeded
        else ""
    )
    checks: list[Check] = []
    if result.returncode != 0:
        last = result.tail[-1] if result.tail else ""
        checks.append(
            Check("run", "exit status", "0", str(result.returncode), False, f"see {result.log}")
        )
        return Verdict(False, f"the script exited with {result.returncode}: {last}", checks, new)
    if new is not None and new.manifest is None:
        reason = f"the new run {new.run_id} has no mlrepro record: {new.manifest_error}"
        return Verdict(False, reason, checks, new)
    if new is None:
        where = ws.secret_env.get("MLFLOW_TRACKING_URI") or str(ws.root / "wandb")
        reason = (
            f"the script finished but no run tagged repro.reproduces={ws.reproduces} "
            f"appeared in {_strip_userinfo(where)} (is the plugin installed where it ran?)"
        )
        return Verdict(False, reason, checks, None)
    checks += _informational(original, new)
    inputs = compare_inputs(original, new.manifest)
    checks += inputs
    bad_inputs = [c for c in inputs if c.ok is False]
    if bad_inputs:
        names = ", ".join(c.name for c in bad_inputs)
        return Verdict(False, f"{lead}inputs differ: {names} (outcomes not compared)", checks, new)
    metrics = compare_metrics(
        ws.record.metrics or {}, new.metrics, tolerance, ignore, compare_anyway
    )
    files = compare_artifacts(ws.record, new) if artifacts else []
    checks += metrics + files
    judged = [c for c in metrics + files if c.ok is not None]
    timing = [c.name for c in metrics if c.note == "not compared (timing)"]
    bad = [c for c in judged if c.ok is False]
    if bad:
        first = "; ".join(f"{c.name} {c.original} -> {c.reproduced}" for c in bad[:3])
        return Verdict(False, f"{lead}{len(bad)} outcome(s) differ: {first}", checks, new)
    if not judged:
        held = []
        if not ws.record.metrics:
            held.append("no metrics")
        elif timing:
            held.append(f"only timing metrics ({', '.join(timing[:4])})")
        else:
            held.append("no comparable metrics")
        if artifacts and files:
            held.append(f"no artifact that can be compared ({len(files)} listed, see the checks)")
        elif artifacts:
            held.append("no artifacts outside repro/")
        reason = (
            f"{lead}inputs match but nothing was compared: the original run logged "
            f"{' and '.join(held)}; {WHAT_TO_LOG}"
        )
        return Verdict(False, reason, checks, new, verified=False)
    how = "exactly" if tolerance <= 0 else f"within {tolerance:g}"
    parts = []
    if any(c.section == "metric" for c in judged):
        parts.append(f"{sum(c.section == 'metric' for c in judged)} metric(s)")
    if any(c.section == "artifact" for c in judged):
        parts.append(f"{sum(c.section == 'artifact' for c in judged)} artifact(s)")
    reason = f"{lead}inputs match and {' and '.join(parts)} agree {how}"
    if timing:
        reason += f"; not compared (timing): {', '.join(timing)}"
    return Verdict(True, reason, checks, new)


def _informational(original: Manifest, new: RunRecord) -> list[Check]:
    """Commit, environment and seed of the new run, shown but not judged."""
    other = new.manifest
    if other is None:
        return [Check("run", "record", "manifest", "missing", None, new.manifest_error or "")]
    rows = [
        ("code", "commit", original.code.get("commit"), other.code.get("commit")),
        ("code", "diff", original.code.get("diff_digest"), other.code.get("diff_digest")),
        (
            "environment",
            "digest",
            original.environment.get("digest"),
            other.environment.get("digest"),
        ),
        (
            "seeds",
            "global",
            (original.seeds or {}).get("global"),
            (other.seeds or {}).get("global"),
        ),
    ]
    checks = []
    for section, name, a, b in rows:
        if a is None and b is None:
            continue
        text_a = short_fp(str(a)) if isinstance(a, str) and ":" in a else str(a)
        text_b = short_fp(str(b)) if isinstance(b, str) and ":" in b else str(b)
        if section == "code" and name == "commit":
            text_a, text_b = short(str(a)), short(str(b))
        checks.append(Check(section, name, text_a, text_b, None, "same" if a == b else "differs"))
    return checks
