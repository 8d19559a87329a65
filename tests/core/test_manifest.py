"""The manifest contract: schema, round trip, digests that ignore where and when."""

from __future__ import annotations

import json

import pytest

from repro_common import capture
from repro_common.manifest import Manifest, ManifestError, validate_document


def test_captured_manifest_follows_the_schema_and_round_trips() -> None:
    manifest = capture()
    manifest.validate()
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.digest_matches()
    assert set(json.loads(manifest.to_json())) == {
        "schema",
        "digest",
        "track",
        "environment",
        "code",
        "seeds",
        "data",
        "capture",
        "digest_version",
        "artifacts",
    }
    assert json.loads(manifest.to_json())["digest_version"] == 2


def test_digest_ignores_timestamps_and_hostnames_but_not_content() -> None:
    manifest = capture()
    doc = json.loads(manifest.to_json())
    doc["capture"]["created_at"] = "1999-01-01T00:00:00+00:00"
    doc["capture"]["hostname"] = "elsewhere"
    doc["environment"]["python"]["executable"] = "/somewhere/else/python"
    assert Manifest.from_dict(doc).digest_matches()

    doc["environment"]["packages"].append(
        {"name": "zzz-extra", "version": "1.0", "source": "index"}
    )
    assert not Manifest.from_dict(doc).digest_matches()


def test_editing_a_seed_breaks_the_digest() -> None:
    doc = json.loads(capture().to_json())
    doc["seeds"]["global"] = 12345
    assert not Manifest.from_dict(doc).digest_matches()


def test_schema_rejects_a_broken_record() -> None:
    doc = json.loads(capture().to_json())
    doc["track"] = "yolo"
    with pytest.raises(ManifestError, match="track"):
        validate_document(doc)


def test_from_json_names_what_is_wrong() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{nope")
    with pytest.raises(ManifestError, match="not an mlrepro manifest"):
        Manifest.from_json('{"schema": "other/1"}')


def test_a_record_edited_after_it_passed_validation_is_checked_again() -> None:
    # validate() skips content it already passed (show judges a record once per track):
    # an edit in place is new content and must be checked again.
    manifest = Manifest.from_dict(json.loads(capture().to_json()))
    manifest.validate()
    manifest.validate()
    manifest.seeds["global"] = "seven"
    with pytest.raises(ManifestError, match="seeds.global"):
        manifest.validate()
    manifest.seeds["global"] = 7
    manifest.validate()
    manifest.data.append({"name": "x", "kind": "file", "fingerprint": None, "size_bytes": "big"})
    with pytest.raises(ManifestError, match=r"field data\[\d+\]"):
        manifest.validate()
