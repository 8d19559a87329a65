"""Delta and Iceberg inputs in a W&B run: config["repro"]["data"] and the manifest artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

import wandb_repro_plugin as repro
from repro_common.manifest import Manifest
from support.wandb_log import read_run

pytest.importorskip("deltalake")


def test_a_delta_version_reaches_config_and_manifest(new_run, tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    table = str(tmp_path / "events")
    write_deltalake(table, pa.table({"a": [1, 2]}))
    write_deltalake(table, pa.table({"a": [3]}), mode="append")
    tracked = repro.track_data(f"{table}@v0", "events")

    run = new_run()
    manifest = repro.attach(run, data={"latest": DeltaTable(table)})
    run.finish()

    summary = read_run(Path(run.dir).parent).config["repro"]
    assert summary["data"]["events"] == tracked["fingerprint"]
    on_disk = Manifest.from_json((Path(run.dir) / "repro" / "manifest.json").read_bytes())
    on_disk.validate()
    items = {item["name"]: item for item in on_disk.data}
    assert items["events"]["version"] == 0 and items["events"]["kind"] == "delta"
    assert items["latest"]["version"] == 1
    assert summary["data"]["latest"] == items["latest"]["fingerprint"] != tracked["fingerprint"]
    assert manifest is not None and manifest.digest == on_disk.digest
