"""The server-load benchmark's estimator: a drift over the benchmark must not read as our cost."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_server_load import _neighbour_ratios, drift_corrected_ratios  # noqa: E402

ORDER = ["disabled", "plugin", "plugin", "disabled"] * 3


def _measured(cost: float, drift: float) -> list[tuple[str, float]]:
    """Rounds in run order: the plugin costs `cost` times more; everything grows by `drift` a round."""
    return [
        (mode, (cost if mode == "plugin" else 1.0) * (1 + drift * index))
        for index, mode in enumerate(ORDER)
    ]


@pytest.mark.parametrize("drift", [0.0, 0.05, -0.03])
def test_a_linear_drift_cancels(drift: float) -> None:
    ratios = drift_corrected_ratios(_measured(1.04, drift))
    assert len(ratios) == ORDER.count("plugin")
    assert ratios == pytest.approx([1.04] * len(ratios))


def test_with_an_odd_number_of_rounds_the_median_still_reads_the_cost() -> None:
    """Three rounds a mode (the order of the old benchmark): the plugin's rounds ran later on
    average, so comparing the modes' medians over-reads under a drift."""
    rounds = [
        (mode, (1.04 if mode == "plugin" else 1.0) * (1 + 0.05 * index))
        for index, mode in enumerate(
            ["plugin", "disabled", "disabled", "plugin", "plugin", "disabled"]
        )
    ]
    assert statistics.median(drift_corrected_ratios(rounds)) == pytest.approx(1.04)
    plain = statistics.median(v for m, v in rounds if m == "plugin") / statistics.median(
        v for m, v in rounds if m == "disabled"
    )
    assert plain > 1.06


def test_the_control_mode_is_compared_with_the_disabled_rounds_too() -> None:
    rounds = [("disabled", 1.0), ("same-requests", 1.06), ("disabled", 1.0)]
    assert drift_corrected_ratios(rounds, "same-requests") == pytest.approx([1.06])
    assert drift_corrected_ratios(rounds) == []


def test_the_noise_floor_compares_back_to_back_rounds_of_one_mode() -> None:
    rounds = [("disabled", 1.0), ("plugin", 2.0), ("plugin", 2.2), ("disabled", 0.9)]
    assert _neighbour_ratios(rounds) == pytest.approx([1.1])
