"""`wandb_repro_plugin.link_model`: W&B's registry link behind the same gate as MLflow's.

Offline, W&B's own `run.link_model` cannot link (its registry needs a server and an
API key): a run that passes the gate reaches it and gets W&B's `UsageError`; a run
that fails never gets that far.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import wandb_repro_plugin as repro
from repro_common.registration import RegistrationRefused

EDITABLE = ["mlrepro"]  # this checkout is installed editable in the test venv


def test_an_unseeded_run_is_refused_with_the_gate_reasons(new_run, git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    run = new_run()
    repro.attach(run)
    model = git_repo / "model.txt"
    model.write_text("weights")

    with pytest.raises(RegistrationRefused) as refused:
        repro.link_model(run, str(model), "churn", allow_packages=EDITABLE)
    message = str(refused.value)
    run_dir = str(Path(run.dir).parent)
    assert message.startswith(f"mlrepro gate: refusing to register 'churn': run {run_dir}")
    assert "  - seeds: no global seed recorded" in message
    assert "seeds" in refused.value.failed
    assert f"mlrepro check {run_dir} --track production" in message


def test_a_run_without_a_record_is_refused_for_that(new_run, git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    run = new_run()  # attach() never called
    with pytest.raises(RegistrationRefused, match="call wandb_repro_plugin.attach"):
        repro.link_model(run, str(git_repo / "train.py"), "churn")


def test_a_complete_production_run_reaches_wandbs_own_link_model(
    new_run, git_repo, monkeypatch, tmp_path
):
    import wandb

    monkeypatch.chdir(git_repo)
    labels = tmp_path / "labels.csv"
    labels.write_text("a,b\n1,2\n")
    repro.seed_everything(5)
    run = new_run()
    repro.attach(run, track="production", data={"labels": str(labels)})
    model = tmp_path / "model.txt"
    model.write_text("weights")

    assert repro.registry.check_for_registry(run, allow_packages=EDITABLE).passed
    with pytest.raises(wandb.errors.UsageError):  # W&B's registry link needs a server
        repro.link_model(run, str(model), "churn", allow_packages=EDITABLE)
