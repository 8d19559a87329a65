"""The Hugging Face Trainer on CPU with W&B offline: a tiny BERT from a config, local datasets."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from repro_common import fingerprint, track_data
from repro_common.manifest import Manifest
from support.hf_training import tiny_bert, token_dataset, training_args
from support.wandb_log import find_logs, read_run

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


def train(tmp_path: Path, report_to: list[str], callbacks: list, **kwargs):
    from transformers import Trainer

    model = {} if "model_init" in kwargs else {"model": tiny_bert()}
    trainer = Trainer(
        args=training_args(str(tmp_path / "out"), report_to),
        train_dataset=token_dataset(),
        eval_dataset=token_dataset(8, offset=1),
        callbacks=callbacks,
        **model,
        **kwargs,
    )
    trainer.train()
    import wandb

    if wandb.run is not None:
        wandb.run.finish()
    return trainer


def only_run(wandb_dir: Path):
    (log_path,) = find_logs(wandb_dir)  # one run, made by the Trainer's WandbCallback
    log = read_run(log_path)
    (artifact,) = log.artifacts_of_type("repro-manifest")  # once, whatever the events
    manifest = Manifest.from_json(Path(artifact["files"]["manifest.json"]).read_bytes())
    return log, manifest, log_path.parent


def test_trainer_run_holds_the_trainer_seeds_and_its_datasets(wandb_dir, tmp_path):
    from wandb_repro_plugin.transformers import ReproCallback

    trainer = train(tmp_path, ["wandb"], [ReproCallback()])

    log, manifest, run_dir = only_run(wandb_dir)
    summary = log.config["repro"]
    assert summary["seed"] == 7  # the Trainer's set_seed(args.seed)
    assert summary["data"] == {
        "train": fingerprint(trainer.train_dataset),
        "eval": fingerprint(trainer.eval_dataset),
    }
    assert "capture_errors" not in summary
    assert summary["manifest_digest"] == manifest.digest
    trainer_seeds = manifest.seeds["trainer"]
    assert trainer_seeds["seed"] == 7 and trainer_seeds["data_seed"] == 11
    assert trainer_seeds["full_determinism"] is False
    # The model was built before the Trainer seeded: the record does not let the seed claim it.
    assert trainer_seeds["model_seeded"] is False and "model_init=" in trainer_seeds["note"]
    assert summary["trainer"] == trainer_seeds
    assert {d["name"]: d["kind"] for d in manifest.data} == {
        "train": "hf_dataset",
        "eval": "hf_dataset",
    }
    assert (run_dir / "files" / "repro" / "manifest.json").is_file()
    assert "history" in log.record_types  # the Trainer's own metrics are there too


def test_before_wandbcallback_in_the_list_it_records_once_at_the_first_step(wandb_dir, tmp_path):
    """WandbCallback makes the run after our train-begin hook: the record waits for the first
    step, so it is there even when training dies before its end."""
    from transformers import TrainerCallback
    from transformers.integrations import WandbCallback

    from wandb_repro_plugin.transformers import ReproCallback

    class DiesAtStepTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise RuntimeError("killed mid-training")

    with pytest.raises(RuntimeError, match="killed mid-training"):
        train(tmp_path, [], [ReproCallback(), WandbCallback(), DiesAtStepTwo()])
    import wandb

    wandb.run.finish()

    log, manifest, _ = only_run(wandb_dir)
    assert log.config["repro"]["manifest_digest"] == manifest.digest
    assert manifest.seeds["trainer"]["seed"] == 7


def test_an_input_the_user_tracked_under_the_same_name_wins(wandb_dir, tmp_path):
    import numpy as np

    from wandb_repro_plugin.transformers import ReproCallback

    mine = np.arange(10)
    track_data(mine, "train")
    trainer = train(tmp_path, ["wandb"], [ReproCallback()])

    log, _, _ = only_run(wandb_dir)
    assert log.config["repro"]["data"] == {
        "train": fingerprint(mine),
        "eval": fingerprint(trainer.eval_dataset),
    }


def test_model_init_is_recorded_as_covered_by_the_seed(wandb_dir, tmp_path):
    from wandb_repro_plugin.transformers import ReproCallback

    train(tmp_path, ["wandb"], [ReproCallback()], model_init=tiny_bert)

    _, manifest, _ = only_run(wandb_dir)
    assert manifest.seeds["trainer"]["model_init"] is True
    assert manifest.seeds["trainer"]["model_seeded"] is True
    assert "note" not in manifest.seeds["trainer"]


def test_a_process_that_is_not_the_main_one_records_nothing(new_run, tmp_path):
    from transformers import TrainerControl, TrainerState

    from wandb_repro_plugin.transformers import ReproCallback

    run = new_run()
    callback = ReproCallback()
    args = training_args(str(tmp_path / "out"), [])
    state = TrainerState(is_world_process_zero=False)
    for hook in (callback.on_train_begin, callback.on_step_begin, callback.on_train_end):
        hook(args, state, TrainerControl())
    run.finish()
    assert "repro" not in read_run(Path(run.dir).parent).config


def test_the_callback_is_a_trainer_callback_that_survives_pickling():
    from transformers import TrainerCallback

    from wandb_repro_plugin.transformers import ReproCallback

    callback = ReproCallback(track="exploratory")
    assert isinstance(callback, TrainerCallback)
    again = pickle.loads(pickle.dumps(callback))
    assert isinstance(again, TrainerCallback) and again.track == "exploratory"
    with pytest.raises(ValueError, match="unknown track"):
        ReproCallback(track="nightly")
