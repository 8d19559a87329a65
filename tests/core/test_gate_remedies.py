"""Every gate rule that fails says what to do about it, the data rule included."""

from __future__ import annotations

from pathlib import Path

import repro_common
from repro_common.gate import evaluate


def test_every_failing_rule_names_its_remedy(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x\n1\n")
    repro_common.track_data(data, name="train")  # no DVC reference, no snapshot stored
    manifest = repro_common.capture(track="exploratory")  # unseeded
    rules = {rule.name: rule for rule in evaluate(manifest, "production", artifacts=set())}
    failing = [rule for rule in rules.values() if not rule.passed]
    assert {"seeds", "data"} <= {rule.name for rule in failing}
    assert all(rule.remedy for rule in failing), [(r.name, r.remedy) for r in failing]
    assert "mlrepro promote RUN" in rules["data"].remedy and "dvc add" in rules["data"].remedy
    assert "MLREPRO_SEED" in rules["seeds"].remedy
    assert all(not rule.remedy for rule in rules.values() if rule.passed)
