"""Delta Lake tables as run inputs: real tables written with deltalake.write_deltalake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deltalake")
import pyarrow as pa  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402

import repro_common  # noqa: E402
from repro_common import inputs  # noqa: E402
from repro_common.diff import diff_manifests  # noqa: E402
from repro_common.gate import data_rule  # noqa: E402
from repro_common.manifest import Manifest  # noqa: E402
from repro_common.reproduce import table_input_check, table_version_variables  # noqa: E402
from repro_common.snapshots import plan_snapshot  # noqa: E402
from repro_common.table_inputs import check_table, label  # noqa: E402
from support.procs import clean_env, run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """A partitioned table at v0 (3 rows in 2 files) and v1 (one appended row)."""
    path = tmp_path / "events"
    write_deltalake(str(path), pa.table({"a": [1, 2, 3], "p": ["x", "y", "x"]}), partition_by=["p"])
    write_deltalake(str(path), pa.table({"a": [4], "p": ["x"]}), mode="append")
    return path


def _manifest(*items: dict) -> Manifest:
    return Manifest(track="production", data=list(items))


def test_version_0_is_recorded_as_the_integer_0(events: Path) -> None:
    item = repro_common.track_data(f"{events}@v0", "events")
    assert item["kind"] == "delta" and item["version"] == 0 and item["files"] == 2
    assert item["table_id"] == DeltaTable(str(events)).metadata().id
    assert item["basis"] == "delta-files/1"
    assert item["fingerprint"].startswith("blake3:")
    assert label(item) == f"delta {events} @ v0"
    # version= pins the same way, and a DeltaTable object loaded at 0 agrees.
    assert (
        repro_common.track_data(str(events), "e", version=0)["fingerprint"] == item["fingerprint"]
    )
    at_zero = DeltaTable(str(events), version=0)
    assert repro_common.track_data(at_zero, "e")["fingerprint"] == item["fingerprint"]


def test_unpinned_resolves_the_newest_version_and_an_append_changes_the_fingerprint(
    events: Path,
) -> None:
    v0 = repro_common.track_data(f"{events}@v0", "events")
    v1 = repro_common.track_data(str(events), "events")
    assert v1["version"] == 1 and v1["files"] == 3
    assert v1["fingerprint"] != v0["fingerprint"]
    assert v1["table_id"] == v0["table_id"]


def test_a_file_rewritten_in_place_changes_the_fingerprint(events: Path) -> None:
    """Content, not the log's list: a data file edited under the same name is caught."""
    before = repro_common.track_data(str(events), "events")
    victim = DeltaTable(str(events)).file_uris()[0]
    Path(victim).write_bytes(Path(victim).read_bytes() + b"\0")
    after = repro_common.track_data(str(events), "events")
    assert after["fingerprint"] != before["fingerprint"]
    assert check_table(before) is not None


def _age(folder: Path) -> None:
    """Files older than the cache's racy window (a file written this second may change again)."""
    for path in folder.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))


def test_warm_refingerprint_reads_no_file(events: Path, hashed: list[str]) -> None:
    _age(events)
    repro_common.track_data(str(events), "events")
    assert len(hashed) == 3
    hashed.clear()
    repro_common.track_data(str(events), "events")
    assert hashed == []


def test_importing_repro_common_does_not_import_deltalake_or_pyiceberg() -> None:
    code = "import sys, repro_common; print('deltalake' in sys.modules, 'pyiceberg' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'common'}:{ROOT}"},
    )
    assert out.stdout.split() == ["False", "False"]


def test_a_version_that_does_not_exist_is_one_line_and_a_capture_error(events: Path) -> None:
    with pytest.warns(RuntimeWarning, match="version 9 of Delta table .* does not exist"):
        item = repro_common.track_data(f"{events}@v9", "events")
    assert item["fingerprint"] is None and "newest is v1" in item["reason"]
    errors: list[dict] = []
    inputs.collect_data(errors)
    assert errors == [{"collector": "data.events", "error": item["reason"]}]


def test_a_reader_that_crashes_is_a_capture_error_not_a_crash_of_the_users_call(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected fault: delta-rs (or our reader) raising something unexpected, with a
    credential in its message, must not stop the user's training."""
    from repro_common.fingerprints import delta

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("log replay exploded at https://u:canary-9f3e@store.invalid/t")

    monkeypatch.setattr(delta, "describe_delta", crash)
    with pytest.warns(RuntimeWarning, match="RuntimeError: log replay exploded"):
        item = repro_common.track_data(str(events), "events")
    assert item["fingerprint"] is None and "canary-9f3e" not in json.dumps(item)
    errors: list[dict] = []
    inputs.collect_data(errors)
    assert errors and errors[0]["collector"] == "data.events"


def test_a_folder_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="is not a Delta table"):
        item = repro_common.track_data(f"{tmp_path}@v0", "events")
    assert item["fingerprint"] is None


def test_vacuumed_version_fails_the_gate_naming_it_while_the_newest_passes(tmp_path: Path) -> None:
    path = str(tmp_path / "events")
    write_deltalake(path, pa.table({"a": [1]}))
    write_deltalake(path, pa.table({"a": [2]}), mode="overwrite")
    old = repro_common.track_data(f"{path}@v0", "old")
    new = repro_common.track_data(path, "new")
    assert data_rule(_manifest(old, new), set()).passed
    assert plan_snapshot(old).status == "table"  # promote: no copy needed
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    rule = data_rule(_manifest(old, new), set())
    assert not rule.passed
    assert len(rule.details) == 1 and "version 0" in rule.details[0]
    assert "is gone (vacuumed?)" in rule.details[0]
    assert plan_snapshot(old).status == "table_gone"
    assert table_input_check(old).ok is False and table_input_check(new).ok is True


def test_drop_and_recreate_at_the_same_path_is_another_table(tmp_path: Path) -> None:
    import shutil

    path = str(tmp_path / "events")
    write_deltalake(path, pa.table({"a": [1]}))
    first = repro_common.track_data(path, "events")
    shutil.rmtree(path)
    write_deltalake(path, pa.table({"a": [1]}))
    again = repro_common.track_data(path, "events")
    assert again["version"] == 0 and again["table_id"] != first["table_id"]
    problem = check_table(first)
    assert problem is not None and "another table now" in problem
    assert not data_rule(_manifest(first), set()).passed
    assert "a different table" in str(diff_manifests(_manifest(first), _manifest(again))["data"])


def test_diff_explains_the_number_of_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "events")
    for i in range(4):
        write_deltalake(path, pa.table({"a": [i]}), mode="append")
    a = repro_common.track_data(f"{path}@v0", "events")
    b = repro_common.track_data(f"{path}@v3", "events")
    changes = diff_manifests(_manifest(a), _manifest(b))["data"]
    moved = [c for c in changes if c.field == "events version"]
    assert [(c.a, c.b) for c in moved] == [("v0", "v3 (3 commits)")]


def test_manifest_validates_and_the_rerun_gets_the_version(events: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    repro_common.track_data(f"{events}@v0", "events")
    manifest = repro_common.capture(track="production")
    doc = manifest.to_dict()
    schema = json.loads((ROOT / "common/repro_common/schema/manifest.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert table_version_variables(manifest) == {"MLREPRO_DATA_EVENTS_VERSION": "0"}


def test_data_version_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert repro_common.data_version("train-events") is None
    monkeypatch.setenv("MLREPRO_DATA_TRAIN_EVENTS_VERSION", "12")
    assert repro_common.data_version("train-events") == "12"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=clean_env(MLREPRO_CACHE_DIR=os.environ["MLREPRO_CACHE_DIR"]))


def test_cli_fingerprint_accepts_a_pinned_table_and_exits_2_on_a_missing_version(
    events: Path,
) -> None:
    ok = _cli("fingerprint", f"{events}@v0", "--json")
    assert ok.returncode == 0, ok.stderr
    (record,) = json.loads(ok.stdout)
    assert record["version"] == 0 and record["kind"] == "delta"
    assert record["fingerprint"] == repro_common.track_data(f"{events}@v0", "x")["fingerprint"]
    human = _cli("fingerprint", str(events))
    assert f"delta {events} @ v1" in human.stdout
    bad = _cli("fingerprint", f"{events}@v7")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].endswith("does not exist (newest is v1)")


def test_show_names_the_table_and_version(events: Path) -> None:
    from repro_common.render import card_rows

    item = repro_common.track_data(f"{events}@v0", "events")
    rows = card_rows(_manifest(item))
    (row,) = [r for r in rows if r[0] == "data"]
    assert row[1] == "events" and f"delta {events} @ v0" in row[2]


def test_without_deltalake_the_reason_names_the_extra(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "deltalake", None)  # `import deltalake` now fails
    with pytest.warns(
        RuntimeWarning, match=r"need the deltalake package: pip install 'mlrepro\[delta\]'"
    ):
        item = repro_common.track_data(str(events), "events")
    assert item["fingerprint"] is None and item["kind"] == "delta"


def test_mlrepro_show_prints_the_table_and_version(events: Path, tmp_path: Path) -> None:
    """Through the CLI: the note is data, so rich must not eat `[delta … @ v0]` as markup."""
    repro_common.track_data(f"{events}@v0", "events")
    record = tmp_path / "manifest.json"
    record.write_text(json.dumps(repro_common.capture().to_dict()))
    env = clean_env(MLREPRO_CACHE_DIR=os.environ["MLREPRO_CACHE_DIR"], COLUMNS="400")
    shown = run_cli("show", str(record), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"[delta {events} @ v0]" in shown.stdout


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The versions delta-rs was asked to load (each one a log replay)."""
    from repro_common.fingerprints import delta as delta_tables

    calls: list[int | None] = []
    real = delta_tables.open_delta

    def counting(uri: str, version: int | None) -> object:
        calls.append(version)
        return real(uri, version)

    monkeypatch.setattr(delta_tables, "open_delta", counting)
    return calls


def test_warm_refingerprint_replays_no_log_and_a_new_commit_is_seen(
    events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = repro_common.track_data(str(events), "events")
    opened = _opened(monkeypatch)
    assert repro_common.track_data(str(events), "events") == first
    assert repro_common.track_data(f"{events}@v1", "events") == first
    assert check_table(first) is None
    assert opened == []
    write_deltalake(str(events), pa.table({"a": [5], "p": ["y"]}), mode="append")
    newer = repro_common.track_data(str(events), "events")
    assert newer["version"] == 2 and newer["fingerprint"] != first["fingerprint"]
    assert opened == [None]


def test_a_version_whose_log_was_cleaned_up_is_not_answered_from_the_cache(
    tmp_path: Path,
) -> None:
    """Commits before a version gone (log retention) and no checkpoint: delta-rs cannot
    replay it any more, so neither the gate nor reproduce may pass it on a cached answer."""
    path = tmp_path / "events"
    for i in range(3):
        write_deltalake(str(path), pa.table({"a": [i]}), mode="append")
    item = repro_common.track_data(f"{path}@v1", "events")
    assert check_table(item) is None
    (path / "_delta_log" / f"{0:020d}.json").unlink()
    problem = check_table(item)
    assert problem is not None and "version 1" in problem and "log retention" in problem


# Deletion vectors. delta-rs 1.x reads them but never writes them (its `delete` rewrites
# the file even with delta.enableDeletionVectors=true), so a commit that deletes rows
# through a DV is written here as Spark writes it: a DV file next to the data and an add
# action whose deletionVector descriptor names it (storage type "u": a z85-encoded uuid).
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def _z85(data: bytes) -> str:
    out = []
    for start in range(0, len(data), 4):
        n = int.from_bytes(data[start : start + 4], "big")
        chunk = []
        for _ in range(5):
            n, digit = divmod(n, 85)
            chunk.append(_Z85[digit])
        out += reversed(chunk)
    return "".join(out)


def _dv_bytes(rows: list[int]) -> bytes:
    """A DV file holding one RoaringBitmapArray (one 32-bit roaring array container)."""
    import struct
    import zlib

    bitmap = struct.pack("<IIHHI", 12346, 1, 0, len(rows) - 1, 16)
    bitmap += struct.pack(f"<{len(rows)}H", *sorted(rows))
    data = struct.pack("<iqi", 1681511377, 1, 0) + bitmap
    return b"\x01" + struct.pack(">i", len(data)) + data + struct.pack(">I", zlib.crc32(data))


def _delete_through_a_dv(path: Path, rows: list[int]) -> Path:
    """Commit the next version: the table's one data file with `rows` deleted by a DV."""
    import uuid

    log = path / "_delta_log"
    version = DeltaTable(str(path)).version()
    (add,) = [
        json.loads(line)["add"]
        for commit in sorted(log.glob("*.json"))
        for line in commit.read_text().splitlines()
        if '"add"' in line
    ]
    dv_id = uuid.uuid4()
    dv_file = path / f"deletion_vector_{dv_id}.bin"
    dv_file.write_bytes(_dv_bytes(rows))
    descriptor = {
        "storageType": "u",
        "pathOrInlineDv": _z85(dv_id.bytes),
        "offset": 1,
        "sizeInBytes": dv_file.stat().st_size - 9,
        "cardinality": len(rows),
    }
    remove = {"path": add["path"], "dataChange": True, "deletionTimestamp": 1, "size": add["size"]}
    actions = [
        {"commitInfo": {"timestamp": 1, "operation": "DELETE"}},
        {"remove": remove},
        {"add": {**add, "deletionVector": descriptor}},
    ]
    (log / f"{version + 1:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))
    (vector,) = pa.table(DeltaTable(str(path)).deletion_vectors()).to_pylist()
    assert [i for i, keep in enumerate(vector["selection_vector"]) if not keep] == rows
    return dv_file


@pytest.fixture
def dv_table(tmp_path: Path) -> Path:
    path = tmp_path / "events"
    write_deltalake(
        str(path),
        pa.table({"a": list(range(10))}),
        configuration={"delta.enableDeletionVectors": "true"},
    )
    return path


def test_a_row_deleted_through_a_deletion_vector_changes_the_fingerprint(dv_table: Path) -> None:
    before = repro_common.track_data(str(dv_table), "events")
    _delete_through_a_dv(dv_table, [3])
    after = repro_common.track_data(str(dv_table), "events")
    assert after["version"] == 1 and after["files"] == before["files"] == 1
    assert after["fingerprint"] != before["fingerprint"]
    assert check_table(after) is None and check_table(before) is None
    assert repro_common.track_data(str(dv_table), "events")["fingerprint"] == after["fingerprint"]


def test_the_deleted_rows_count_not_only_the_descriptor(dv_table: Path) -> None:
    """The DV file replaced by one deleting another row (same size, same descriptor)."""
    dv_file = _delete_through_a_dv(dv_table, [3])
    item = repro_common.track_data(str(dv_table), "events")
    dv_file.write_bytes(_dv_bytes([4]))
    problem = check_table(item)
    assert problem is not None and "not the recorded" in problem


def test_a_deletion_vector_file_gone_fails_the_check_naming_the_version(dv_table: Path) -> None:
    dv_file = _delete_through_a_dv(dv_table, [3])
    item = repro_common.track_data(str(dv_table), "events")
    assert check_table(item) is None
    dv_file.unlink()
    problem = check_table(item)
    assert problem is not None and "version 1" in problem and "deletion vectors" in problem


def test_typed_partition_values_give_the_same_fingerprint_warm_and_cold(tmp_path: Path) -> None:
    """Date and float partitions: the remembered file list must frame them as the log did."""
    import datetime

    path = str(tmp_path / "events")
    days = [datetime.date(2020, 1, 1), datetime.date(2020, 1, 2)]
    write_deltalake(
        path, pa.table({"a": [1, 2], "d": days, "x": [1.5, 2.5]}), partition_by=["d", "x"]
    )
    cold = repro_common.track_data(path, "events")
    assert cold["fingerprint"] is not None and cold["files"] == 2
    assert repro_common.track_data(path, "events") == cold
    assert check_table(cold) is None
