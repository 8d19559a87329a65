"""What MLflow asks the provider for besides runs, and the limits of what fits in a tag."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest

import mlflow_repro_plugin as repro
from mlflow_repro_plugin import uploader
from mlflow_repro_plugin.provider import ReproRunContextProvider
from mlflow_repro_plugin.tags import (
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    errors_value,
    manifest_tags,
    tag_key,
)
from repro_common.manifest import Manifest


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every upload job the provider schedules (still delivered)."""
    jobs: list[Any] = []
    real = uploader.schedule

    def spy(job: Any) -> None:
        jobs.append(job)
        real(job)

    monkeypatch.setattr(uploader, "schedule", spy)
    return jobs


def test_traces_datasets_and_logged_models_get_no_tags_and_trigger_no_upload(
    client: Any, scheduled: list[Any]
) -> None:
    import numpy as np
    import pandas as pd
    from mlflow.tracing.utils.environment import resolve_env_metadata

    resolve_env_metadata.cache_clear()

    @mlflow.trace
    def predict(x: int) -> int:
        return x + 1

    with mlflow.start_run() as run:
        assert len(scheduled) == 1
        from_numpy = mlflow.data.from_numpy(np.arange(12).reshape(3, 4))
        from_pandas = mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2]}))
        mlflow.log_input(from_numpy, context="train")
        predict(1)
        model = mlflow.initialize_logged_model(name="m")
        env_metadata = resolve_env_metadata()
    assert repro.flush(60)

    assert len(scheduled) == 1, "only the run may schedule an upload"
    for dataset in (from_numpy, from_pandas):
        source_tags = dataset.source.to_dict()["tags"]
        assert source_tags and not [k for k in source_tags if k.startswith("repro.")], source_tags
    assert not [k for k in env_metadata if k.startswith("repro.")]
    assert not [k for k in mlflow.get_logged_model(model.model_id).tags if k.startswith("repro.")]
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id(), flush=True)
    assert trace is not None
    assert not [
        k for k in {**trace.info.tags, **trace.info.trace_metadata} if k.startswith("repro.")
    ]
    assert client.get_run(run.info.run_id).data.tags["repro.capture.id"] == scheduled[0].capture_id


def test_calling_tags_outside_mlflow_returns_nothing() -> None:
    assert ReproRunContextProvider().tags() == {}


def test_errors_tag_fits_mlflow_and_points_to_the_manifest() -> None:
    errors = [{"collector": f"c{i}", "error": "E" * 900} for i in range(40)]
    value = errors_value(errors, "artifacts: repro/ upload failed (boom)")
    assert value is not None and len(value) <= MAX_TAG_VALUE
    assert value.startswith("artifacts: repro/ upload failed (boom); c0: ")
    assert "more" in value and value.endswith("[full list: repro/manifest.json capture.errors]")

    one_huge = errors_value([{"collector": "code", "error": "x" * 20_000}])
    assert one_huge is not None and len(one_huge) <= MAX_TAG_VALUE
    assert one_huge.startswith("code: xxx") and "repro/manifest.json" in one_huge
    assert errors_value([]) is None


def test_data_tags_are_valid_mlflow_keys_and_values() -> None:
    name = "train/images: ünïcode & spaces " + "n" * 400
    manifest = Manifest(
        environment={"python": {"version": "3.11.7"}},
        code={"commit": None, "dirty": None},
        seeds={"global": None},
        data=[{"name": name, "kind": "file", "fingerprint": "blake3:" + "ab" * 32}],
        capture={"errors": []},
    )
    tags = manifest_tags(manifest)
    [key] = [k for k in tags if k.startswith("repro.data.")]
    assert len(key) == MAX_TAG_KEY and key == tag_key("repro.data." + name)
    assert all(c.isascii() and (c.isalnum() or c in "_-. /") for c in key)
    assert tags[key] == "blake3:" + "ab" * 32
    assert (
        "repro.git.commit" not in tags
        and "repro.git.dirty" not in tags
        and "repro.seed" not in tags
    )


def test_a_collector_error_longer_than_a_tag_is_whole_in_the_manifest(
    client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow_reads import artifact

    from repro_common import code

    def broken_code(errors: list[dict[str, Any]]) -> dict[str, Any]:
        raise RuntimeError("git exploded: " + "y" * 12_000)

    monkeypatch.setattr(code, "collect_code", broken_code)
    with caplog.at_level("WARNING", logger="mlrepro"):
        with mlflow.start_run() as first:
            pass
        with mlflow.start_run() as second:
            pass
        assert repro.flush(60)
    for run in (first, second):
        tags = client.get_run(run.info.run_id).data.tags
        assert tags["repro.capture.errors"].startswith("code: RuntimeError: git exploded")
        assert len(tags["repro.capture.errors"]) <= MAX_TAG_VALUE
        assert "repro.git.commit" not in tags
    manifest = Manifest.from_json(
        artifact(client, first.info.run_id, "repro/manifest.json", tmp_path) or b""
    )
    [entry] = [e for e in manifest.errors if e["collector"] == "code"]
    assert len(entry["error"]) > MAX_TAG_VALUE, "the manifest keeps the whole message"
    warnings = [r for r in caplog.records if r.name == "mlrepro" and "code" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
