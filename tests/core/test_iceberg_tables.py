"""Apache Iceberg tables as run inputs: a real pyiceberg SQL catalog on SQLite, local warehouse."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyiceberg")
import pyarrow as pa  # noqa: E402

import repro_common  # noqa: E402
from repro_common.diff import diff_manifests  # noqa: E402
from repro_common.gate import data_rule  # noqa: E402
from repro_common.manifest import Manifest  # noqa: E402
from repro_common.reproduce import table_input_check, table_version_variables  # noqa: E402
from repro_common.snapshots import plan_snapshot  # noqa: E402
from repro_common.table_inputs import check_table, label  # noqa: E402
from support.procs import clean_env, run_cli  # noqa: E402

SCHEMA = pa.schema([("a", pa.int64())])


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The catalog `lake`, configured the way pyiceberg users do: PYICEBERG_CATALOG__* variables."""
    from pyiceberg.catalog.sql import SqlCatalog

    uri, warehouse = f"sqlite:///{tmp_path}/catalog.db", f"file://{tmp_path}/warehouse"
    (tmp_path / "warehouse").mkdir()
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__URI", uri)
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__WAREHOUSE", warehouse)
    lake = SqlCatalog("lake", uri=uri, warehouse=warehouse)
    lake.create_namespace("db")
    return lake


@pytest.fixture
def events(catalog: Any) -> Any:
    table = catalog.create_table("db.events", schema=SCHEMA)
    table.append(pa.table({"a": [1, 2]}, schema=SCHEMA))
    table.append(pa.table({"a": [3]}, schema=SCHEMA))
    return table


def _manifest(*items: dict) -> Manifest:
    return Manifest(track="production", data=list(items))


def test_a_table_is_recorded_with_its_snapshot_id_as_a_string(events: Any) -> None:
    item = repro_common.track_data(events, "events")
    snapshot = events.current_snapshot().snapshot_id
    assert item["kind"] == "iceberg" and item["catalog"] == "lake" and item["table"] == "db.events"
    assert item["snapshot_id"] == str(snapshot) and isinstance(item["snapshot_id"], str)
    assert item["uuid"] == str(events.metadata.table_uuid)
    assert item["basis"] == "iceberg-files/1" and item["files"] == 2
    assert label(item) == f"iceberg lake.db.events @ {snapshot}"
    # The same snapshot named as a string agrees.
    named = repro_common.track_data(f"iceberg:lake.db.events@{snapshot}", "events")
    assert named["fingerprint"] == item["fingerprint"]


def test_an_older_snapshot_is_pinned_by_version(events: Any) -> None:
    first = events.history()[0].snapshot_id
    old = repro_common.track_data(events, "events", version=first)
    new = repro_common.track_data(events, "events")
    assert old["snapshot_id"] == str(first) and old["files"] == 1
    assert old["fingerprint"] != new["fingerprint"]
    assert "snapshot" in str(diff_manifests(_manifest(old), _manifest(new))["data"])
    assert table_version_variables(_manifest(old)) == {"MLREPRO_DATA_EVENTS_VERSION": str(first)}


def test_a_rewritten_data_file_changes_the_fingerprint_and_fails_the_check(events: Any) -> None:
    item = repro_common.track_data(events, "events")
    assert check_table(item) is None and data_rule(_manifest(item), set()).passed
    victim = events.inspect.files().to_pylist()[0]["file_path"]
    local = Path(victim.removeprefix("file://"))
    local.write_bytes(local.read_bytes() + b"\0")
    problem = check_table(item)
    assert problem is not None and "not the recorded" in problem


def test_a_deleted_data_file_fails_gate_reproduce_and_promote(events: Any) -> None:
    item = repro_common.track_data(events, "events")
    assert plan_snapshot(item).status == "table"
    victim = events.inspect.files().to_pylist()[0]["file_path"]
    os.remove(victim.removeprefix("file://"))
    rule = data_rule(_manifest(item), set())
    assert (
        not rule.passed and "is gone" in rule.details[0] and item["snapshot_id"] in rule.details[0]
    )
    assert table_input_check(item).ok is False
    assert plan_snapshot(item).status == "table_gone"


def test_drop_and_recreate_under_the_same_name_is_another_table(catalog: Any, events: Any) -> None:
    item = repro_common.track_data(events, "events")
    catalog.drop_table("db.events")
    again = catalog.create_table("db.events", schema=SCHEMA)
    again.append(pa.table({"a": [1, 2]}, schema=SCHEMA))
    problem = check_table(item)
    assert problem is not None and "another table now" in problem


def test_a_snapshot_that_does_not_exist_is_a_capture_error(events: Any) -> None:
    with pytest.warns(
        RuntimeWarning, match="snapshot 42 of Iceberg table db.events does not exist"
    ):
        item = repro_common.track_data(events, "events", version=42)
    assert item["fingerprint"] is None
    manifest = repro_common.capture()
    assert {"collector": "data.events", "error": item["reason"]} in manifest.capture["errors"]


def test_an_empty_table_has_no_snapshot_to_record(catalog: Any) -> None:
    table = catalog.create_table("db.empty", schema=SCHEMA)
    with pytest.warns(RuntimeWarning, match="has no snapshot yet"):
        assert repro_common.track_data(table, "empty")["fingerprint"] is None


def test_cli_fingerprint_reads_the_catalog_from_the_environment(events: Any) -> None:
    env = clean_env(
        MLREPRO_CACHE_DIR=os.environ["MLREPRO_CACHE_DIR"],
        PYICEBERG_CATALOG__LAKE__URI=os.environ["PYICEBERG_CATALOG__LAKE__URI"],
        PYICEBERG_CATALOG__LAKE__WAREHOUSE=os.environ["PYICEBERG_CATALOG__LAKE__WAREHOUSE"],
    )
    ok = run_cli("fingerprint", "iceberg:lake.db.events", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    (record,) = json.loads(ok.stdout)
    assert record["fingerprint"] == repro_common.track_data(events, "x")["fingerprint"]
    bad = run_cli("fingerprint", "iceberg:lake.db.nope", env=env)
    assert bad.returncode == 2 and "lake.db.nope cannot be loaded" in bad.stderr


def test_without_pyiceberg_the_reason_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyiceberg", None)
    with pytest.warns(RuntimeWarning, match=r"pip install 'mlrepro\[iceberg\]'"):
        item = repro_common.track_data("iceberg:lake.db.events", "events")
    assert item["fingerprint"] is None and item["kind"] == "iceberg"
