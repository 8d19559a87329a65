"""Delta and Iceberg tables on the team's S3-compatible store (moto), through the same code path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.s3 import TEST_CREDENTIALS, S3Store, moto_s3

pytestmark = [pytest.mark.team]
pytest.importorskip("deltalake")
pytest.importorskip("pyiceberg")


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    """The store, with the variables delta-rs and pyarrow read to reach it."""
    with moto_s3(tmp_path / "s3", bucket="lake") as store:
        for key, value in TEST_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_REGION", TEST_CREDENTIALS["AWS_DEFAULT_REGION"])
        monkeypatch.setenv("AWS_ENDPOINT_URL", store.endpoint)
        monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
        monkeypatch.setenv("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
        yield store


def test_a_delta_table_on_s3_is_recorded_by_its_log_and_checked_for_its_files(s3: S3Store) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    import repro_common
    from repro_common.table_inputs import check_table, label

    uri = "s3://lake/events"
    write_deltalake(uri, pa.table({"a": [1, 2]}))
    write_deltalake(uri, pa.table({"a": [3]}), mode="overwrite")
    item = repro_common.track_data(f"{uri}@v0", "events")
    assert item["version"] == 0 and item["basis"] == "delta-log/1" and item["files"] == 1
    assert item["uri"] == uri and label(item) == "delta s3://lake/events @ v0"
    assert item["table_id"] == DeltaTable(uri).metadata().id
    assert check_table(item) is None
    DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    problem = check_table(item)
    assert problem is not None and "version 0" in problem and "is gone" in problem
    assert check_table(repro_common.track_data(uri, "events")) is None


def test_an_iceberg_table_with_its_warehouse_on_s3(
    s3: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded by its manifests; the gate asks the store (through the table's FileIO,
    with the catalog's endpoint and keys) for every file, so a deleted one is caught."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    import repro_common
    from repro_common.gate import data_rule
    from repro_common.manifest import Manifest
    from repro_common.table_inputs import check_table

    properties = {
        "uri": f"sqlite:///{tmp_path}/catalog.db",
        "warehouse": "s3://lake/warehouse",
        "s3.endpoint": s3.endpoint,
        "s3.access-key-id": TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "s3.region": TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    }
    for key, value in properties.items():  # how `mlrepro` commands find the catalog again
        monkeypatch.setenv(f"PYICEBERG_CATALOG__LAKE__{key.upper().replace('.', '__')}", value)
    catalog: Any = SqlCatalog("lake", **properties)
    catalog.create_namespace("db")
    table = catalog.create_table("db.events", schema=pa.schema([("a", pa.int64())]))
    table.append(pa.table({"a": pa.array([1, 2], pa.int64())}))
    table.append(pa.table({"a": pa.array([3], pa.int64())}))
    item = repro_common.track_data(table, "events")
    assert item["basis"] == "iceberg-manifest/1" and item["files"] == 2
    assert item["snapshot_id"] == str(table.current_snapshot().snapshot_id)
    assert check_table(item) is None
    victim = sorted(f["file_path"] for f in table.inspect.files().to_pylist())[0]
    s3.client().delete_object(Bucket="lake", Key=victim.removeprefix("s3://lake/"))
    problem = check_table(item)
    assert problem is not None and "is gone" in problem and victim in problem
    rule = data_rule(Manifest(track="production", data=[item]), set())
    assert not rule.passed and item["snapshot_id"] in rule.details[0]
