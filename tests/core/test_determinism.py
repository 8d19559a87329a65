"""check_determinism: reruns under one seed agree bitwise, and a planted difference is found by path."""

from __future__ import annotations

import math
import os
import random
from typing import Any

import numpy as np
import pytest
import torch

from repro_common import check_determinism
from repro_common.determinism import DeterminismReport, compare

# -- the functions under test live at module level: spawned runs import them by name ----------


def seeded_metrics(n: int = 6) -> dict[str, Any]:
    import repro_common

    repro_common.seed_everything()  # picks up MLREPRO_SEED, which check_determinism sets
    return {
        "metrics": {"loss": np.random.rand(n), "acc": torch.rand(n)},
        "step": random.randint(0, 10**6),
    }


def metrics_with_planted_noise(n: int = 6) -> dict[str, Any]:
    out = seeded_metrics(n)
    out["metrics"]["loss"][3] += int.from_bytes(os.urandom(4), "big") / 2**32 + 1e-3  # never seeded
    return out


def metrics_with_tiny_noise() -> dict[str, Any]:
    return {"loss": 0.5 + (1 + int.from_bytes(os.urandom(2), "big")) * 1e-14}


def failing() -> None:
    raise ArithmeticError("diverged at step 3")


def seed_seen_by_the_run() -> dict[str, Any]:
    import repro_common

    return {"env": os.environ.get("MLREPRO_SEED"), "global": repro_common.seeds.current_seed()}


def train_lightning(accelerator: str = "cpu") -> dict[str, Any]:
    import warnings

    import lightning as L
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import repro_common

    warnings.filterwarnings("ignore")
    repro_common.seed_everything(deterministic=True)

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=0.05)

    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(64, 1)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=16,
        shuffle=True,
        **repro_common.seeds.dataloader_kwargs("train"),
    )
    model = Tiny()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=2,
        accelerator=accelerator,
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    trained = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"init": {k: v.cpu() for k, v in init.items()}, "trained": trained}


def train_keras() -> dict[str, Any]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    import repro_common

    record = repro_common.seed_everything(deterministic=True)
    x = np.random.rand(64, 4).astype("float32")
    y = x.sum(axis=1, keepdims=True) + 0.1 * np.random.rand(64, 1).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    init = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
    return {"init": init, "trained": model.get_weights(), "frameworks": record["frameworks"]}


# -- comparison -------------------------------------------------------------------------------


def test_the_first_difference_is_named_by_its_path() -> None:
    a = {
        "metrics": {"loss": [0.5, 0.4, 0.3, 0.2], "acc": np.arange(3.0)},
        "weights": torch.ones(2, 3),
    }
    b = {
        "metrics": {"loss": [0.5, 0.4, 0.3, 0.25], "acc": np.arange(3.0)},
        "weights": torch.ones(2, 3),
    }
    found = compare(a, b)
    assert found is not None
    assert (found.path, found.first, found.second) == ("metrics.loss[3]", "0.2", "0.25")
    assert compare(a, a) is None

    w = torch.ones(2, 3)
    w[1, 2] = 1.5
    found = compare({"weights": torch.ones(2, 3)}, {"weights": w})
    assert (
        found is not None
        and found.path == "weights[1, 2]"
        and found.reason == "1 of 6 elements differ"
    )
    found = compare({"layer 1": np.zeros(2)}, {"layer 1": np.array([0.0, 1.0])})
    assert found is not None and found.path == "['layer 1'][1]"


def test_bitwise_by_default_within_tolerance_on_request() -> None:
    assert compare(0.1 + 0.2, 0.3) is not None
    assert compare(0.1 + 0.2, 0.3, rtol=1e-12) is None
    assert compare(np.array([0.0]), np.array([-0.0])) is not None  # same value, different bits
    assert compare(np.array([math.nan, 1.0]), np.array([math.nan, 1.0])) is None
    assert compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-6]), atol=1e-5) is None
    assert compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]), atol=1e-5).path == "[1]"
    assert (
        compare(
            torch.tensor([1.0], dtype=torch.bfloat16), torch.tensor([1.0], dtype=torch.bfloat16)
        )
        is None
    )
    assert compare(np.float32(1.5), 1.5) is None


def test_types_dtypes_shapes_keys_and_lengths_must_match() -> None:
    assert compare(np.zeros(3, dtype=np.float32), np.zeros(3)).reason == "dtypes differ"
    assert compare(np.zeros((2, 3)), np.zeros((3, 2))).reason == "shapes differ"
    assert compare(torch.zeros(2), np.zeros(2)).reason == "types differ"
    assert compare({"a": 1}, {"a": 1, "b": 2}).path == "b"
    assert compare([1, 2], [1, 2, 3]).reason == "lengths differ"
    assert compare(True, 1) is not None
    assert compare("adam", "sgd").path == "(return value)"


# -- check_determinism ----------------------------------------------------------------------------


def test_a_seeded_function_is_deterministic_across_fresh_processes() -> None:
    report = check_determinism(seeded_metrics, seed=1234)
    assert isinstance(report, DeterminismReport) and report
    assert report.deterministic and report.first_difference is None
    assert [r["run"] for r in report.runs] == [1, 2]
    assert report.runs[0]["digest"] == report.runs[1]["digest"]
    assert str(report).startswith(
        "deterministic: 2 runs (separate processes, seed 1234) matched bitwise"
    )
    other = check_determinism(seeded_metrics, seed=1235, in_process=True)
    assert compare(report.outputs[0], other.outputs[0]) is not None  # the seed matters


def test_a_planted_os_urandom_is_caught_with_its_path() -> None:
    report = check_determinism(metrics_with_planted_noise, seed=7)
    assert not report
    assert report.first_difference == "metrics.loss[3]"
    assert (
        report.differing_run == 2
        and report.values is not None
        and report.values[0] != report.values[1]
    )
    assert "at metrics.loss[3]" in str(report)


def test_in_process_mode_reseeds_before_each_run() -> None:
    assert check_determinism(seeded_metrics, runs=3, seed=5, in_process=True)
    assert check_determinism(lambda: random.random(), seed=5, in_process=True)
    report = check_determinism(metrics_with_planted_noise, seed=5, in_process=True)
    assert not report and report.first_difference == "metrics.loss[3]"


def test_tolerances_forgive_tiny_differences_only_when_asked() -> None:
    assert not check_determinism(metrics_with_tiny_noise, in_process=True, seed=1)
    assert check_determinism(metrics_with_tiny_noise, in_process=True, seed=1, atol=1e-9)


def test_the_seed_reaches_the_run_through_mlrepro_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREPRO_SEED", "31337")
    report = check_determinism(seed_seen_by_the_run)
    assert report.seed == 31337
    assert report.outputs[0] == {"env": "31337", "global": 31337}


def test_bad_input_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="in_process=True"):
        check_determinism(lambda: 1)

    def nested() -> int:
        return 1

    with pytest.raises(ValueError, match="module level"):
        check_determinism(nested)
    with pytest.raises(ValueError, match="runs must be an integer >= 2"):
        check_determinism(seeded_metrics, runs=1)
    with pytest.raises(ValueError, match="0 to 4294967295"):
        check_determinism(seeded_metrics, seed=-1)
    with pytest.raises(ValueError, match="rtol"):
        check_determinism(seeded_metrics, rtol=-1)
    with pytest.raises(ValueError, match="callable"):
        check_determinism("train.py")  # type: ignore[arg-type]


def test_a_failing_run_raises_with_its_traceback() -> None:
    with pytest.raises(RuntimeError, match="diverged at step 3"):
        check_determinism(failing, seed=1)


# -- real training, fresh processes ----------------------------------------------------------------


def _changed(init: Any, trained: Any) -> bool:
    return compare(init, trained) is not None


@pytest.mark.slow
@pytest.mark.parametrize("accelerator", ["cpu", "cuda"])
def test_a_tiny_lightning_model_trains_to_bitwise_equal_weights(accelerator: str) -> None:
    if accelerator == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    report = check_determinism(train_lightning, seed=2024, kwargs={"accelerator": accelerator})
    assert report, str(report)
    assert _changed(report.outputs[0]["init"], report.outputs[0]["trained"])
    assert set(report.outputs[0]["trained"]) == {
        "net.0.weight",
        "net.0.bias",
        "net.3.weight",
        "net.3.bias",
    }


@pytest.mark.slow
def test_a_tiny_keras_model_on_torch_trains_to_bitwise_equal_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    report = check_determinism(train_keras, seed=2024)
    assert report, str(report)
    assert "keras" in report.outputs[0]["frameworks"]
    assert _changed(report.outputs[0]["init"], report.outputs[0]["trained"])
