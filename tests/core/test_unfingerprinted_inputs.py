"""An input a run read but could not fingerprint: in the schema, the diff and the data rule."""

from __future__ import annotations

import pytest

from repro_common.diff import diff_manifests
from repro_common.gate import data_rule
from repro_common.inputs import SKIPPED, unfingerprinted_input
from repro_common.manifest import Manifest, ManifestError

STREAM = unfingerprinted_input("stream", SKIPPED, "cannot fingerprint builtins.generator")


def test_the_schema_takes_a_null_fingerprint_only_with_its_reason() -> None:
    Manifest(data=[STREAM]).validate()
    without_reason = {k: v for k, v in STREAM.items() if k != "reason"}
    with pytest.raises(ManifestError, match="reason"):
        Manifest(data=[without_reason]).validate()


def test_a_skipped_input_on_one_side_only_is_a_data_change() -> None:
    changes = diff_manifests(Manifest(data=[STREAM]), Manifest(data=[]))["data"]
    assert [(c.field, c.kind) for c in changes] == [("stream", "removed")]


def test_the_data_rule_names_a_skipped_input_and_the_remedy() -> None:
    rule = data_rule(Manifest(data=[STREAM], track="production"), artifacts=set())
    assert not rule.passed
    assert rule.reason == (
        "'stream' was read but not fingerprinted (skipped): track the file it comes from "
        "with track_data(<path>, 'stream')"
    )


def test_a_skipped_input_on_both_sides_is_unknown_not_the_same() -> None:
    """Neither run hashed it: diff and reproduce must not call its content the same."""
    from repro_common.diff import _diff_manifests
    from repro_common.reproduce import compare_inputs

    _, unknown, _ = _diff_manifests(Manifest(data=[STREAM]), Manifest(data=[STREAM]))
    assert unknown["data"] == "not fingerprinted in A or B: stream"
    [check] = compare_inputs(Manifest(data=[STREAM]), Manifest(data=[STREAM]))
    assert check.ok is None and check.note.startswith("not compared: cannot fingerprint")
