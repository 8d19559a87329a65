"""A user changes nothing but installs the plugin: every MLflow run carries its record."""

from __future__ import annotations

import platform
import threading
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow_reads import artifact, repro_names

import mlflow_repro_plugin as repro
from mlflow_repro_plugin import uploader
from mlflow_repro_plugin.run_site import RunNotVisible
from repro_common.manifest import Manifest
from support.git import git

DESIGN_TAGS = {
    "repro.manifest.digest",
    "repro.env.digest",
    "repro.env.python",
    "repro.git.commit",
    "repro.git.dirty",
    "repro.track",
    "repro.capture.id",
}


def manifest_of(client: Any, run_id: str, tmp: Path) -> Manifest:
    raw = artifact(client, run_id, "repro/manifest.json", tmp)
    assert raw is not None, f"run {run_id} has no repro/manifest.json"
    return Manifest.from_json(raw)


def test_a_plain_start_run_gets_the_design_tags_and_the_repro_artifacts(
    client: Any, project: Path, tmp_path: Path
) -> None:
    (project / "train.py").write_text("print('train, edited')\n")
    repro.seed_everything(7)
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.25)
    assert repro.flush(60)

    finished = client.get_run(run.info.run_id)
    tags = finished.data.tags
    assert set(tags) >= DESIGN_TAGS, sorted(tags)
    manifest = manifest_of(client, run.info.run_id, tmp_path)
    manifest.validate()
    assert manifest.digest_matches()
    assert tags["repro.manifest.digest"] == manifest.digest
    assert tags["repro.env.digest"] == manifest.environment["digest"]
    assert tags["repro.env.python"] == platform.python_version()
    assert tags["repro.git.commit"] == git(project, "rev-parse", "HEAD")
    assert tags["repro.git.dirty"] == "true"
    assert tags["repro.seed"] == "7" == str(manifest.seeds["global"])
    assert tags["repro.track"] == "exploratory"
    assert len(tags["repro.capture.id"]) == 32
    assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
    assert "repro.reproduces" not in tags

    # An exploratory record: the manifest, and the diff of the dirty tree; announced at creation.
    assert repro_names(client, run.info.run_id) == {"manifest.json", "code.diff"}
    assert tags["repro.artifacts"] == "manifest.json,code.diff"
    diff = artifact(client, run.info.run_id, "repro/code.diff", tmp_path / "d")
    assert diff is not None and b"train, edited" in diff
    # requirements.txt is the manifest's package list: any reader writes it from there.
    assert f"mlflow=={mlflow.__version__}" in {
        f"{p['name'].lower()}=={p['version']}" for p in manifest.environment["packages"]
    }
    assert finished.info.status == "FINISHED"
    assert finished.data.metrics == {"loss": 0.25}


def test_a_clean_tree_has_no_code_diff(client: Any, tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["repro.git.dirty"] == "false"
    assert tags["repro.artifacts"] == "manifest.json"
    assert repro_names(client, run.info.run_id) == {"manifest.json"}


def test_nested_and_successive_runs_each_get_their_own_record(client: Any) -> None:
    with mlflow.start_run() as parent:
        with mlflow.start_run(nested=True) as child_a:
            pass
        with mlflow.start_run(nested=True) as child_b, mlflow.start_run(nested=True) as grandchild:
            pass
    with mlflow.start_run() as later:
        pass
    assert repro.flush(60)

    runs = [parent, child_a, child_b, grandchild, later]
    ids = set()
    for run in runs:
        tags = client.get_run(run.info.run_id).data.tags
        assert "repro.capture.errors" not in tags, tags
        ids.add(tags["repro.capture.id"])
        assert repro_names(client, run.info.run_id) == {"manifest.json"}
    assert len(ids) == len(runs), "each run must have its own capture id"
    assert (
        client.get_run(grandchild.info.run_id).data.tags["mlflow.parentRunId"]
        == child_b.info.run_id
    )


def test_runs_started_from_threads_get_their_records(client: Any) -> None:
    run_ids: list[str] = []
    failures: list[BaseException] = []

    def train(index: int) -> None:
        try:
            with mlflow.start_run(run_name=f"worker-{index}") as run:
                mlflow.log_metric("index", index)
            run_ids.append(run.info.run_id)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=train, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert repro.flush(60)
    assert len(run_ids) == 4
    for run_id in run_ids:
        assert repro_names(client, run_id) == {"manifest.json"}
        assert "repro.capture.errors" not in client.get_run(run_id).data.tags


def test_a_run_already_ended_still_gets_its_artifacts_and_keeps_its_status(client: Any) -> None:
    run = mlflow.start_run()
    mlflow.end_run()
    ended = client.get_run(run.info.run_id)
    assert ended.info.status == "FINISHED"
    assert repro.flush(60)
    after = client.get_run(run.info.run_id)
    assert repro_names(client, run.info.run_id) == {"manifest.json"}
    assert (after.info.status, after.info.end_time) == ("FINISHED", ended.info.end_time)


def test_the_creation_tags_announce_the_record_and_no_note_waits_to_be_deleted(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_find = uploader.find_runs

    def held_find(*args: Any, **kwargs: Any) -> list[str]:
        release.wait(60)
        return real_find(*args, **kwargs)

    monkeypatch.setattr(uploader, "find_runs", held_find)
    with mlflow.start_run() as run:
        pass
    before = client.get_run(run.info.run_id).data.tags
    assert before["repro.artifacts"] == "manifest.json"
    assert "repro.capture.errors" not in before, before["repro.capture.errors"]
    release.set()
    assert repro.flush(60)
    after = client.get_run(run.info.run_id).data.tags
    assert after == before, "the upload changes no tag on the happy path"
    assert repro_names(client, run.info.run_id) == {"manifest.json"}


def test_mlrepro_track_and_reproduces_are_tagged(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREPRO_TRACK", "production")
    monkeypatch.setenv("MLREPRO_REPRODUCES", "0123456789abcdef0123456789abcdef")
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["repro.track"] == "production"
    assert tags["repro.reproduces"] == "0123456789abcdef0123456789abcdef"
    # The production track stores the environment spec too, and announces it at creation.
    assert tags["repro.artifacts"] == "manifest.json,requirements.txt,Dockerfile"
    assert repro_names(client, run.info.run_id) == {
        "manifest.json",
        "requirements.txt",
        "Dockerfile",
    }


def test_mlrepro_disable_makes_the_provider_do_nothing(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import repro_common
    from mlflow_repro_plugin.provider import ReproRunContextProvider
    from repro_common.capture import _static_parts  # noqa: F401  (module loaded)

    monkeypatch.setenv("MLREPRO_DISABLE", "1")
    scheduled: list[Any] = []
    monkeypatch.setattr(uploader, "schedule", scheduled.append)
    repro_common.reset_cache()
    provider = ReproRunContextProvider()
    assert provider.in_context() is False
    with mlflow.start_run() as run:
        pass
    tags = client.get_run(run.info.run_id).data.tags
    assert not [k for k in tags if k.startswith("repro.")], tags
    assert scheduled == []
    import sys

    assert sys.modules["repro_common.capture"]._prefetch_thread is None, (
        "disabled must not prefetch"
    )


def test_a_run_mlflow_fails_to_create_leaves_no_upload_waiting(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLREPRO_UPLOAD_TIMEOUT", "600")
    with caplog.at_level("WARNING", logger="mlrepro"), pytest.raises(MlflowException):
        mlflow.start_run(experiment_id="424242")  # no such experiment: create_run raises
    assert repro.flush(60), "the job must see that the run was never created, not wait 600 s"
    assert not [r for r in caplog.records if r.name == "mlrepro"]


def test_the_uploader_finds_a_run_by_its_capture_id_without_the_creating_frame(client: Any) -> None:
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)
    tags = client.get_run(run.info.run_id).data.tags
    for hint in (run.info.experiment_id, None):
        job = uploader.UploadJob(
            capture_id=tags["repro.capture.id"], manifest=None, experiment_id=hint
        )
        assert uploader.find_runs(client, job) == [run.info.run_id]
    with pytest.raises(RunNotVisible):
        uploader.find_runs(client, uploader.UploadJob(capture_id="0" * 32, manifest=None))


def test_no_uploader_thread_lingers_once_the_work_is_done(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(uploader, "IDLE_EXIT", 0.05)

    def uploader_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "mlrepro-uploader"]

    with mlflow.start_run() as first:
        pass
    assert repro.flush(60)
    deadline = time.monotonic() + 10
    while uploader_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uploader_threads() == []
    with mlflow.start_run() as second:  # and a later run starts a new worker
        pass
    assert repro.flush(60)
    for run in (first, second):
        assert repro_names(client, run.info.run_id) == {"manifest.json"}
