"""Rebuild a run's code and recipe in a new folder, after checking that its record is intact.

The record is untrusted input: the gate's integrity rule runs before anything is
cloned, installed or run, and a record that fails it is refused unless the user
says `--trust-record`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from repro_common.reproduce import script, tracking
from repro_common.reproduce.checkout import apply_diff, clone, unversioned_warnings
from repro_common.reproduce.workspace import (
    CODE_DIR,
    LOG,
    SCRIPT,
    VENV_DIR,
    ReproduceError,
    Step,
    UntrustedRecord,
    Workspace,
    reproduces_id,
)
from repro_common.runs import RunRecord


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
        cloned_from = clone(code, commit, code_dir, say)
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
        apply_diff(code_dir, target / "code.diff", diff, commit)
    warnings = unversioned_warnings(code, code_dir)

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
        requirements_text = script.requirements(record)
        dockerfile_text = script.dockerfile(manifest)
        setup = tracking.rerun_setup(record, tracking_uri, target)
        ws.tracker_env, ws.secret_env, ws.log_to = setup.written, setup.secret, setup.where or ""
        script_text = script.render_script(ws)
    except EmitError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise ReproduceError(str(exc)) from exc
    (target / "manifest.json").write_text(manifest.to_json() + "\n")
    (target / "requirements.txt").write_bytes(requirements_text)
    (target / "Dockerfile").write_text(dockerfile_text)
    ignored = [f"{VENV_DIR}/", LOG, *tracking.build_ignores()]
    (target / ".dockerignore").write_text("".join(f"{name}\n" for name in ignored))
    ws.script.write_text(script_text)
    ws.script.chmod(0o755)
    ws.warnings += script.argv_warnings(code)
    from repro_common.hf_trainer import record_warnings

    ws.warnings += record_warnings(manifest.seeds)
    return ws
