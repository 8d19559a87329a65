"""Injected faults: the user's run starts and finishes, one warning, `repro.capture.errors` says why."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow_reads import artifact, repro_names

import mlflow_repro_plugin as repro
from mlflow_repro_plugin import uploader
from repro_common.manifest import Manifest
from support.mlflow_server import mlflow_server
from support.procs import free_port


def mlrepro_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "mlrepro" and r.levelname == "WARNING"
    ]


def test_capture_itself_failing_still_lets_runs_start_and_finish(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_capture(track: str | None = None) -> Manifest:
        raise OSError("disk on fire")

    monkeypatch.setattr(sys.modules["repro_common.capture"], "capture", broken_capture)
    with caplog.at_level("WARNING", logger="mlrepro"):
        for _ in range(2):
            with mlflow.start_run() as run:
                mlflow.log_metric("loss", 1.0)
        assert repro.flush(60)
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.metrics == {"loss": 1.0}
    errors = finished.data.tags["repro.capture.errors"]
    assert "mlflow.provider: OSError: disk on fire" in errors and "not uploaded" in errors
    assert len(mlrepro_warnings(caplog)) == 1, mlrepro_warnings(caplog)


def test_an_upload_that_cannot_start_keeps_the_tags_and_says_artifacts_are_missing(
    client: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_thread(job: Any) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(uploader, "schedule", no_thread)
    with caplog.at_level("WARNING", logger="mlrepro"):
        with mlflow.start_run() as run:
            pass
        with mlflow.start_run():
            pass
    tags = client.get_run(run.info.run_id).data.tags
    assert tags["repro.manifest.digest"].startswith("blake3:")
    assert "the upload could not start" in tags["repro.capture.errors"]
    assert len(mlrepro_warnings(caplog)) == 1, mlrepro_warnings(caplog)


def test_an_unwritable_artifact_store_is_reported_on_the_run(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the artifact root should be\n")
    experiment = client.create_experiment(
        "unwritable", artifact_location=str(blocker / "artifacts")
    )
    with caplog.at_level("WARNING", logger="mlrepro"):
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.log_param("lr", 0.1)
        assert repro.flush(60)
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.params == {"lr": "0.1"}
    errors = finished.data.tags["repro.capture.errors"]
    assert errors.startswith("artifacts: repro/ upload failed (NotADirectoryError")
    assert finished.data.tags["repro.manifest.digest"], (
        "the tags do not depend on the artifact store"
    )
    warnings = mlrepro_warnings(caplog)
    assert len(warnings) == 1 and "could not upload repro/" in warnings[0], warnings


def test_failing_artifact_rendering_still_uploads_the_manifest(
    client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from repro_common import artifacts

    def broken(manifest: Manifest) -> dict[str, bytes]:
        raise ValueError("cannot render requirements")

    monkeypatch.setattr(artifacts, "record_files", broken)
    with mlflow.start_run() as run:
        pass
    assert repro.flush(60)
    assert repro_names(client, run.info.run_id) == {"manifest.json"}
    tags = client.get_run(run.info.run_id).data.tags
    assert "artifacts: ValueError: cannot render requirements" in tags["repro.capture.errors"]
    raw = artifact(client, run.info.run_id, "repro/manifest.json", tmp_path)
    assert raw is not None and Manifest.from_json(raw).digest == tags["repro.manifest.digest"]


def test_a_broken_git_checkout_does_not_stop_the_run(
    client: Any, project: Path, tmp_path: Path
) -> None:
    (project / ".git" / "HEAD").write_text("this is not a ref\n")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    assert repro.flush(60)
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert "repro.git.commit" not in finished.data.tags
    raw = artifact(client, run.info.run_id, "repro/manifest.json", tmp_path)
    assert raw is not None
    manifest = Manifest.from_json(raw)
    assert manifest.code.get("commit") is None
    # git's own words, kept: a broken checkout is git trouble, not "not inside a git repository".
    reason = str(manifest.code.get("reason"))
    assert reason.startswith("git failed: GitError: ") and "not a git repository" in reason, reason
    assert f"code.git: {reason.removeprefix('git failed: ')}" in finished.data.tags.get(
        "repro.capture.errors", ""
    ), finished.data.tags


@pytest.mark.slow
def test_tracking_server_down_then_back_upload_gives_up_in_time_or_retries_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Run A's upload meets a stopped server (short timeout): it gives up, the run says so.
    Run B's upload (long timeout) retries with backoff until the restarted server answers."""
    from mlflow.tracking import MlflowClient

    from mlflow_repro_plugin import failures, live_inputs

    live_inputs.install()
    failures._warned.clear()
    monkeypatch.setenv(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"
    )  # only our retry loop bridges the gap
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    release = threading.Event()
    real_find = uploader.find_runs

    def held_find(*args: Any, **kwargs: Any) -> list[str]:
        release.wait(120)
        return real_find(*args, **kwargs)

    monkeypatch.setattr(uploader, "find_runs", held_find)
    workdir, port = tmp_path / "server", free_port()
    try:
        with mlflow_server(workdir, port=port) as url:
            mlflow.set_tracking_uri(url)
            mlflow.set_experiment("restart")
            monkeypatch.setenv("MLREPRO_UPLOAD_TIMEOUT", "1")
            with mlflow.start_run() as run_a:
                pass
            monkeypatch.setenv("MLREPRO_UPLOAD_TIMEOUT", "180")
            with mlflow.start_run() as run_b:
                pass
        with caplog.at_level("WARNING", logger="mlrepro"):
            release.set()  # the server is down now
            while uploader.UPLOADER.pending() > 1:
                threading.Event().wait(0.1)  # A gave up; B is retrying
            with mlflow_server(workdir, port=port) as url:
                assert repro.flush(180)
                reader = MlflowClient(url)
                tags_a = reader.get_run(run_a.info.run_id).data.tags
                tags_b = reader.get_run(run_b.info.run_id).data.tags
                assert repro_names(reader, run_b.info.run_id) == {"manifest.json"}
                assert repro_names(reader, run_a.info.run_id) == set()
                # A's tags announced a manifest that never came: readers say so.
                from mlflow_repro_plugin.source import load_run

                record_a = load_run(run_a.info.run_id, url)
                assert record_a is not None and record_a.manifest is None
                assert record_a.manifest_error == (
                    "record incomplete: repro/manifest.json never arrived"
                )
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.tracking.fluent._active_experiment_id = None
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
            monkeypatch.delenv(key, raising=False)
    assert tags_a["repro.artifacts"] == tags_b["repro.artifacts"] == "manifest.json"
    assert "repro.capture.errors" not in tags_b, tags_b["repro.capture.errors"]
    warnings = mlrepro_warnings(caplog)
    assert len(warnings) == 1 and "could not upload repro/" in warnings[0], warnings
