"""attach(run): a plain W&B script gets the record; read back from what W&B wrote to disk."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import wandb_repro_plugin as repro
from repro_common.manifest import Manifest
from support.git import git
from support.wandb_log import read_run
from wandb_repro_plugin import core

SUMMARY_KEYS = {
    "manifest_digest",
    "env_digest",
    "python",
    "git_commit",
    "git_dirty",
    "seed",
    "track",
    "data",
}


def test_attach_puts_the_record_in_config_artifact_and_run_files(new_run, git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    (git_repo / "train.py").write_text("print('tuned')\n")  # uncommitted change
    monkeypatch.setenv("MLREPRO_REPRODUCES", "abc123")
    repro.seed_everything(11)
    labels = b"0,1,1,0\n"

    run = new_run()
    manifest = repro.attach(track="production", data={"labels": labels})
    run.finish()

    log = read_run(Path(run.dir).parent)
    summary = log.config["repro"]
    assert set(summary) >= SUMMARY_KEYS
    assert summary["manifest_digest"] == manifest.digest
    assert summary["git_commit"] == git(git_repo, "rev-parse", "HEAD")
    assert summary["git_dirty"] is True
    assert summary["seed"] == 11
    assert summary["track"] == "production"
    assert summary["data"] == {"labels": repro.fingerprint(labels)}
    assert summary["reproduces"] == "abc123"
    assert "capture_errors" not in summary

    (artifact,) = log.artifacts_of_type("repro-manifest")
    assert artifact["name"] == "repro-" + manifest.digest.removeprefix("blake3:")[:32]
    assert artifact["metadata"]["manifest_digest"] == manifest.digest
    assert {"manifest.json", "requirements.txt", "code.diff"} <= set(artifact["files"])

    copied = Path(run.dir) / "repro"
    for name, staged in artifact["files"].items():
        assert (copied / name).read_bytes() == Path(staged).read_bytes(), name
    on_disk = Manifest.from_json((copied / "manifest.json").read_bytes())
    assert on_disk.digest == manifest.digest and on_disk.digest_matches()
    on_disk.validate()
    assert "tuned" in (copied / "code.diff").read_text()


def test_identical_records_share_one_artifact_name(new_run):
    names = []
    for labels in (b"same", b"same", b"changed"):
        repro.track_data(labels, "labels")
        run = new_run()
        repro.attach(run)
        run.finish()
        (artifact,) = read_run(Path(run.dir).parent).artifacts_of_type("repro-manifest")
        names.append(artifact["name"])
    assert names[0] == names[1]
    assert names[2] != names[0]


def test_no_active_run_warns_once_and_returns_none(wandb_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert repro.attach() is None
    assert [str(w.message) for w in caught if issubclass(w.category, repro.ReproWarning)] == [
        "mlrepro: no active W&B run (call wandb.init() before training, or pass run=); nothing recorded"
    ]


@pytest.mark.parametrize("broken", ["capture", "log_artifact"])
def test_a_failure_inside_is_recorded_and_the_run_goes_on(new_run, monkeypatch, broken):
    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(core, broken, boom)
    run = new_run()
    with pytest.warns(repro.ReproWarning, match="incomplete") as caught:
        repro.attach(run)
    assert len([w for w in caught if issubclass(w.category, repro.ReproWarning)]) == 1
    run.log({"loss": 0.5})  # the host run is unharmed
    run.finish()

    log = read_run(Path(run.dir).parent)
    errors = log.config["repro"]["capture_errors"]
    assert {
        "collector": broken.replace("log_", ""),
        "error": "RuntimeError: injected failure",
    } in errors
    assert "history" in log.record_types
    if broken == "log_artifact":  # the record still reaches config and the run dir
        assert log.config["repro"]["manifest_digest"].startswith("blake3:")
        assert json.loads((Path(run.dir) / "repro" / "manifest.json").read_text())["digest"]
        assert not log.artifacts_of_type("repro-manifest")


def test_disabled_records_nothing(new_run, monkeypatch):
    monkeypatch.setenv("MLREPRO_DISABLE", "1")
    run = new_run()
    assert repro.attach(run) is None
    run.finish()
    assert "repro" not in read_run(Path(run.dir).parent).config
