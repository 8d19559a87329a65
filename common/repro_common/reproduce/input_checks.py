"""The run's inputs, checked before the rerun: a run is worth its time only on the same data.

Inputs that live inside the repository but are not in git (a gitignored data/
folder) are linked into the checkout from where they were, or restored from the
run's data snapshot, so the script finds them where it did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro_common.manifest import Manifest
from repro_common.reproduce.verdict import Check, short_fp
from repro_common.reproduce.workspace import Step, Workspace


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
    from repro_common.snapshots import PATH_KINDS, input_path
    from repro_common.table_inputs import VERSIONED_KINDS

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
    from repro_common.snapshots import snapshot_prefix

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
