"""W&B as a run source: read a run directory (offline or synced) as a RunRecord without a W&B
server, and set up and find a reproduction's new run folder (`SOURCE`, registered under
`mlrepro.run_sources`).

The W&B adapter copies the `repro/` files into `<run-dir>/files/repro/`. Config and
summary come from `files/config.yaml` / `files/wandb-summary.json` when W&B wrote
them (online runs), else from the run's transaction log `run-<id>.wandb` (offline
runs write only that). wandb itself is imported only to parse that log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repro_common.runs import (
    ArtifactLayout,
    NewRunSearch,
    RerunSetup,
    RunNotFound,
    RunRecord,
    parse_manifest,
)
from wandb_repro_plugin.run_config import config_tags

RUN_DIR = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[A-Za-z0-9]+)$")
PROMOTION_TAGS = "repro/tags.json"
_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32768


def find_run_dir(ref: str) -> Path | None:
    """The run directory `ref` names: the run dir itself, its `latest-run` link, or `wandb/`."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        return None
    if (path / "latest-run").is_dir():
        path = path / "latest-run"
    elif (path / "wandb" / "latest-run").is_dir():
        path = path / "wandb" / "latest-run"
    resolved = path.resolve()
    if RUN_DIR.match(resolved.name) or any(resolved.glob("run-*.wandb")):
        return resolved
    return None


class WandbDirBackend:
    """The run's files dir: artifacts are files under it, tags live in files/repro/tags.json."""

    promotion_note = (
        "W&B run: promoted in the local run directory only (files/repro/); "
        "the copy on the W&B server is unchanged"
    )

    def __init__(self, run_dir: Path) -> None:
        self.files = run_dir / "files"

    def _local(self, path: str) -> Path:
        target = (self.files / path).resolve()
        if self.files.resolve() not in target.parents and target != self.files.resolve():
            raise ValueError(f"{path!r} is outside the run's files")
        return target

    def read_artifact(self, path: str) -> bytes | None:
        target = self._local(path)
        return target.read_bytes() if target.is_file() else None

    def list_artifacts(self, prefix: str = "") -> list[str]:
        root = self._local(prefix) if prefix else self.files
        if not root.is_dir():
            return []
        return sorted(p.relative_to(self.files).as_posix() for p in root.rglob("*") if p.is_file())

    def set_tags(self, tags: dict[str, str]) -> None:
        target = self._local(PROMOTION_TAGS)
        current = json.loads(target.read_text()) if target.is_file() else {}
        current.update(tags)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(current, indent=2, sort_keys=True))

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        folder = self._local(artifact_path or "")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, folder / Path(local_path).name)


def _chunks(raw: bytes) -> Iterator[bytes]:
    """Records of a W&B transaction log (LevelDB log format, 32 KiB blocks, CRC-checked)."""
    ident, magic, _ = _HEADER.unpack_from(raw, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError("not a W&B transaction log")
    pos, pending = _HEADER.size, b""
    while pos + _CHUNK.size <= len(raw):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:
            pos += left
            continue
        checksum, length, kind = _CHUNK.unpack_from(raw, pos)
        payload = raw[pos + _CHUNK.size : pos + _CHUNK.size + length]
        pos += _CHUNK.size + length
        if len(payload) != length or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != checksum:
            return  # a log cut short by a crash: keep what was complete
        if kind == 1:
            yield payload
        elif kind == 2:
            pending = payload
        elif kind == 3:
            pending += payload
        elif kind == 4:
            yield pending + payload
            pending = b""


def _set(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    try:
        value = json.loads(item.value_json)
    except ValueError:
        value = item.value_json
    node = target
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _remove(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    node: Any = target
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(keys[-1], None)


def read_transaction_log(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, summary) as the run last set them."""
    from wandb.proto import wandb_internal_pb2 as pb

    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for payload in _chunks(path.read_bytes()):
        record = pb.Record()  # type: ignore[attr-defined]
        try:
            record.ParseFromString(payload)
        except Exception:
            continue
        kind = record.WhichOneof("record_type")
        if kind == "run":
            for item in record.run.config.update:
                _set(config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(config, item)
            for item in record.config.remove:
                _remove(config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set(summary, item)
            for item in record.summary.remove:
                _remove(summary, item)
    return config, summary


def _read_files(files: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    config = summary = None
    if (files / "config.yaml").is_file():
        import yaml

        raw = yaml.safe_load((files / "config.yaml").read_text()) or {}
        config = {
            k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
            for k, v in raw.items()
        }
    if (files / "wandb-summary.json").is_file():
        summary = json.loads((files / "wandb-summary.json").read_text() or "{}")
    return config, summary


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_flat(child, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def load_run(ref: str, tracking_uri: str | None = None) -> RunRecord | None:
    """A W&B run directory as a RunRecord; None when `ref` is not one."""
    run_dir = find_run_dir(ref)
    if run_dir is None:
        return None
    backend = WandbDirBackend(run_dir)
    match = RUN_DIR.match(run_dir.name)
    run_id = match.group("id") if match else run_dir.name
    try:
        config, summary = _read_files(backend.files)
        if config is None or summary is None:
            logs = sorted(run_dir.glob("run-*.wandb"))
            logged_config, logged_summary = read_transaction_log(logs[0]) if logs else ({}, {})
            config = logged_config if config is None else config
            summary = logged_summary if summary is None else summary
    except (OSError, ValueError) as exc:
        raise RunNotFound(f"cannot read the W&B run in {run_dir}: {exc}") from exc
    raw = backend.read_artifact("repro/manifest.json")
    manifest, error = parse_manifest(raw)
    if raw is None:
        error = (
            f"no files/repro/manifest.json in {run_dir.name}: "
            "was the run made with wandb_repro_plugin (attach/ReproCallback)?"
        )
    repro = config.get("repro")
    tags = config_tags(repro if isinstance(repro, dict) else {})
    promoted = backend.read_artifact(PROMOTION_TAGS)
    if promoted:
        tags.update({k: str(v) for k, v in json.loads(promoted).items()})
    params = {
        k: str(v)
        for k, v in _flat(
            {k: v for k, v in config.items() if k not in ("repro", "_wandb", "wandb_version")}
        ).items()
    }
    metrics = {
        k: float(v)
        for k, v in summary.items()
        if not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return RunRecord(
        ref=ref,
        kind="wandb",
        manifest=manifest,
        manifest_error=error,
        run_id=run_id,
        location=str(run_dir),
        tags=tags,
        params=params,
        metrics=metrics,
        backend=backend,
    )


# ------------------------------------------------------------------ reproduction

RUN_FOLDERS = "wandb"  # W&B writes its run folders under <WANDB_DIR>/wandb/
NEW_RUN_DIR = re.compile(r"^(offline-)?run-")


def new_run_dirs(search: NewRunSearch) -> list[Path]:
    """W&B run folders written since the rerun started, newest first (never the original's)."""
    roots = {search.folder / RUN_FOLDERS, search.run_cwd / RUN_FOLDERS}
    if os.environ.get("WANDB_DIR"):
        roots.add(Path(os.environ["WANDB_DIR"]) / RUN_FOLDERS)
    record = search.original
    original = Path(record.location) if record.kind == SOURCE.name and record.location else None
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
                and NEW_RUN_DIR.match(child.name)
                and child.stat().st_mtime >= search.started_at - 1
            ):
                found.append(child)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class WandbSource:
    """W&B run folders: a rerun writes its run folder into the reproduction folder."""

    name = "wandb"
    priority = 10  # a folder is read as a run folder before anyone matches its name as an id
    rerun_priority = 20
    script_lines: tuple[str, ...] = ()
    dropped_variables: tuple[str, ...] = ()
    build_ignores = (f"{RUN_FOLDERS}/",)
    dockerfile_hints: tuple[str, ...] = ()
    artifacts = ArtifactLayout(
        volatile={
            "wandb-metadata.json": "W&B's host and start-time record",
            "wandb-summary.json": "W&B's summary (the metrics, with wall-clock times)",
            "config.yaml": "W&B's config copy (with its own timestamps)",
        },
        not_outcomes=("code/",),  # W&B's copy of the code
        input_copies=("requirements.txt", "conda-environment.yaml", "diff.patch"),
    )

    def load_run(self, ref: str, tracking_uri: str | None = None) -> RunRecord | None:
        return load_run(ref, tracking_uri)

    def rerun_setup(
        self, original: RunRecord, tracking_uri: str | None, folder: Path
    ) -> RerunSetup:
        """W&B writes into the reproduction folder; a W&B original is rerun offline."""
        written = {"WANDB_DIR": str(folder)}
        if original.kind == self.name:
            written["WANDB_MODE"] = "offline"
        return RerunSetup(written, dict(written), where=str(folder / RUN_FOLDERS))

    def find_new_runs(self, search: NewRunSearch) -> list[RunRecord]:
        found = []
        for run_dir in new_run_dirs(search):
            try:
                record = load_run(str(run_dir))
            except Exception:
                continue
            if record is not None:
                found.append(record)
        return found

    def reload(self, run: RunRecord, env: dict[str, str]) -> RunRecord:
        """The run folder read again (the adapter may still be copying the record)."""
        again = load_run(str(run.location))
        return again if again is not None else run


SOURCE = WandbSource()
