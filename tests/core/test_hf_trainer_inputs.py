"""Which of a Hugging Face Trainer's datasets are fingerprinted at train start, and which are not."""

from __future__ import annotations

import pytest

from repro_common import fingerprint, hf_trainer
from support.hf_training import tiny_bert, token_dataset, training_args

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


class Tokenising(torch.utils.data.Dataset):
    """Works in __getitem__ (tokenising, decoding): reading it all at train start is not free."""

    reads = 0

    def __len__(self):
        return 8

    def __getitem__(self, index):
        Tokenising.reads += 1
        return {"input_ids": torch.arange(8) % 32, "labels": torch.tensor(index % 2)}


def make_trainer(tmp_path, **datasets):
    from transformers import Trainer

    return Trainer(model=tiny_bert(), args=training_args(str(tmp_path / "out"), []), **datasets)


def test_arrow_and_tensor_sets_are_fingerprinted_and_a_custom_one_is_listed_unread(tmp_path):
    tensors = torch.utils.data.TensorDataset(torch.arange(6))
    trainer = make_trainer(
        tmp_path,
        train_dataset=Tokenising(),
        eval_dataset={"arrow": token_dataset(8), "tensors": tensors},
    )
    errors: list = []
    entries = {e["name"]: e for e in hf_trainer.trainer_inputs(trainer, set(), errors)}

    assert errors == []
    assert Tokenising.reads == 0
    assert entries["train"]["fingerprint"] is None and "track_data" in entries["train"]["reason"]
    assert entries["eval.arrow"]["fingerprint"] == fingerprint(token_dataset(8))
    assert entries["eval.tensors"]["fingerprint"] == fingerprint(tensors)


def test_a_name_the_user_tracked_is_left_alone(tmp_path):
    trainer = make_trainer(tmp_path, train_dataset=token_dataset(), eval_dataset=token_dataset(4))
    entries = hf_trainer.trainer_inputs(trainer, {"train"}, [])
    assert [e["name"] for e in entries] == ["eval"]


def test_the_trainer_is_found_from_inside_its_own_calls(tmp_path):
    trainer = make_trainer(tmp_path, train_dataset=token_dataset())
    assert hf_trainer.find_trainer() is None

    class Probe:
        found = None

        def on_log(self, *args, **kwargs):
            Probe.found = hf_trainer.find_trainer()

    trainer.callback_handler.callbacks.append(Probe())
    trainer.log({"loss": 1.0})  # the Trainer calls its callbacks, which look up the stack
    assert Probe.found is trainer
    assert hf_trainer.settings(trainer)["seed"] == 7


def test_show_lists_the_trainer_settings_and_says_when_the_seed_misses_the_model():
    from repro_common.manifest import Manifest
    from repro_common.render import card_rows

    settings = {"seed": 7, "data_seed": None, "full_determinism": False, "model_init": False}
    built_before = Manifest(seeds={"global": 7, "trainer": {**settings, "model_seeded": False}})
    (row,) = [r for r in card_rows(built_before) if r[:2] == ("seeds", "trainer")]
    assert "seed=7" in row[2] and "model_init=False" in row[2]
    assert "built before the Trainer seeded" in row[2]
    seeded = Manifest(seeds={"global": 7, "trainer": {**settings, "model_init": True}})
    (row,) = [r for r in card_rows(seeded) if r[:2] == ("seeds", "trainer")]
    assert "model_init=True" in row[2] and "built before" not in row[2]
