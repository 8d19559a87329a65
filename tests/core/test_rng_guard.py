"""Fingerprinting a dataset leaves the user's random streams where they were."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from repro_common import fingerprint, track_data
from repro_common.fingerprints import AugmentedDataError
from support.inputs_registry import clear_registry


def streams() -> tuple[object, ...]:
    return (
        random.getstate(),
        np.random.get_state()[1].tobytes(),
        np.random.get_state()[2],
        bytes(torch.get_rng_state().tolist()),
    )


class Draws:
    """Draws from every global stream per item; `augment` decides whether the item shows it."""

    def __init__(self, augment: bool) -> None:
        self.augment = augment

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> tuple[float, float, float]:
        noise = (random.random(), float(np.random.normal()), float(torch.rand(1)))
        return noise if self.augment else (float(index), 0.0, 0.0)


def test_reading_a_dataset_leaves_every_global_stream_as_it_was() -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = streams()
    assert fingerprint(Draws(augment=False)).startswith("blake3:")
    assert streams() == before
    with pytest.raises(AugmentedDataError, match="item 0 of Draws differs between two reads"):
        fingerprint(Draws(augment=True))
    assert streams() == before


def test_an_augmenting_dataset_is_tracked_without_a_fingerprint() -> None:
    clear_registry()
    try:
        with pytest.warns(RuntimeWarning, match="'train' is not fingerprinted"):
            item = track_data(Draws(augment=True), "train")
        assert (item["kind"], item["fingerprint"]) == ("augmented", None)
        assert "track_data(<path or array>, 'train')" in item["reason"]
    finally:
        clear_registry()
