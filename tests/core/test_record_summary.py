"""The record summary: the MLflow tags, the W&B config and what the W&B reader gives back.

Pinned for two fixed records before the summary moved into the core, so the three
trackers' views of a run stay byte for byte what runs recorded earlier carry.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlflow_repro_plugin.provider import manifest_tags
from repro_common.manifest import Manifest
from wandb_repro_plugin.run_config import config_summary
from wandb_repro_plugin.source import load_run

ONES, TWOS, THREES = ("blake3:" + digit * 64 for digit in "123")
FULL_DIGEST = "blake3:4b37832a8735c427d4c5374f552bde9a6d0bcf6c1e274db9cb48c49ad3554101"
ENV_DIGEST = "blake3:ac87a5aba9d72647051cc5f7a64521dcfcc24c9aac4e07c2dec149477badb000"
BARE_DIGEST = "blake3:64da60897277e786e3aec985803393d2cbb30f66d0a99bd4c32376fb359e7053"
LONG = "x" * 9000


def full_record() -> Manifest:
    return Manifest(
        environment={"python": {"version": "3.11.9", "implementation": "CPython"}, "packages": []},
        code={"commit": "a" * 40, "dirty": True, "remote": "https://example.com/r.git"},
        seeds={"global": 0, "seeded": True},
        data=[
            {"name": "train", "kind": "file", "fingerprint": ONES},
            {"name": "val set/ü", "kind": "object", "fingerprint": TWOS},
            {"name": "skipped", "kind": "object", "fingerprint": None, "reason": "unsupported"},
            {"name": "", "kind": "object", "fingerprint": THREES},
            {"name": "long", "kind": "object", "fingerprint": LONG},
        ],
        capture={"errors": [{"collector": "environment.gpu", "error": "nvidia-smi: timeout"}]},
        track="production",
    )


@pytest.fixture(autouse=True)
def _reproducing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLREPRO_REPRODUCES", "runs:/abc")


def test_mlflow_tags_of_a_full_record_are_pinned() -> None:
    assert manifest_tags(full_record()) == {
        "repro.manifest.digest": FULL_DIGEST,
        "repro.track": "production",
        "repro.artifacts": "manifest.json,requirements.txt,Dockerfile",
        "repro.env.digest": ENV_DIGEST,
        "repro.env.python": "3.11.9",
        "repro.git.commit": "a" * 40,
        "repro.git.dirty": "true",
        "repro.seed": "0",
        "repro.data.train": ONES,
        "repro.data.val set/_": TWOS,
        "repro.data.long": "x" * 7997 + "...",
        "repro.reproduces": "runs:/abc",
    }


def test_mlflow_tags_of_a_bare_record_are_pinned() -> None:
    assert manifest_tags(Manifest(track="exploratory")) == {
        "repro.manifest.digest": BARE_DIGEST,
        "repro.track": "exploratory",
        "repro.artifacts": "manifest.json",
        "repro.reproduces": "runs:/abc",
    }


FULL_CONFIG: dict[str, Any] = {
    "manifest_digest": FULL_DIGEST,
    "env_digest": ENV_DIGEST,
    "python": "3.11.9",
    "git_commit": "a" * 40,
    "git_dirty": True,
    "seed": 0,
    "track": "production",
    "data": {"train": ONES, "val set/ü": TWOS, "": THREES, "long": LONG},
    "artifact": "repro-4b37832a8735c427d4c5374f552bde9a",
}
BARE_CONFIG: dict[str, Any] = {
    "manifest_digest": BARE_DIGEST,
    "env_digest": None,
    "python": None,
    "git_commit": None,
    "git_dirty": None,
    "seed": None,
    "track": "exploratory",
    "data": {},
    "artifact": "repro-64da60897277e786e3aec985803393d2",
}


def test_wandb_config_is_pinned_key_order_included() -> None:
    full = config_summary(full_record())
    assert full == FULL_CONFIG and list(full) == list(FULL_CONFIG)
    bare = config_summary(Manifest(track="exploratory"))
    assert bare == BARE_CONFIG and list(bare) == list(BARE_CONFIG)


def _read_back(tmp_path: Any, config: dict[str, Any]) -> dict[str, str]:
    """The tags `mlrepro show` reads from an online W&B run dir holding `config` under `repro`."""
    import json

    import yaml

    run_dir = tmp_path / "run-20260101_000000-abc123"
    (run_dir / "files").mkdir(parents=True)
    (run_dir / "files" / "config.yaml").write_text(yaml.safe_dump({"repro": {"value": config}}))
    (run_dir / "files" / "wandb-summary.json").write_text(json.dumps({}))
    record = load_run(str(run_dir))
    assert record is not None
    return dict(record.tags or {})


def test_wandb_reader_gives_back_the_pinned_tags(tmp_path: Any) -> None:
    errors = [{"collector": "environment.gpu", "error": "nvidia-smi: timeout"}]
    config = {**FULL_CONFIG, "capture_errors": errors, "reproduces": "runs:/abc"}
    assert _read_back(tmp_path / "full", config) == {
        "repro.manifest.digest": FULL_DIGEST,
        "repro.env.digest": ENV_DIGEST,
        "repro.env.python": "3.11.9",
        "repro.git.commit": "a" * 40,
        "repro.git.dirty": "true",
        "repro.seed": "0",
        "repro.track": "production",
        "repro.reproduces": "runs:/abc",
        "repro.capture.errors": "environment.gpu: nvidia-smi: timeout",
        "repro.data.train": ONES,
        "repro.data.val set/ü": TWOS,
        "repro.data.": THREES,
        "repro.data.long": LONG,
    }
    assert _read_back(tmp_path / "bare", BARE_CONFIG) == {
        "repro.manifest.digest": BARE_DIGEST,
        "repro.track": "exploratory",
    }


def test_the_three_views_agree_on_every_value_mlflow_can_hold(tmp_path: Any) -> None:
    """What the W&B reader rebuilds from the config equals the MLflow tags where both exist."""
    record = full_record()
    tags = manifest_tags(record)
    read = _read_back(tmp_path, {**config_summary(record), "reproduces": "runs:/abc"})
    shared = set(tags) & set(read) - {"repro.data.long"}
    assert shared >= {"repro.manifest.digest", "repro.env.python", "repro.git.dirty", "repro.seed"}
    assert {k: tags[k] for k in shared} == {k: read[k] for k in shared}


def test_the_mlflow_adapter_spells_the_summary_names_the_core_defines() -> None:
    """The provider spells a few names itself (it must not import the core with MLflow)."""
    from mlflow_repro_plugin import tags
    from repro_common import summary

    assert (tags.ERRORS_TAG, tags.CAPTURE_ID_TAG, tags.ARTIFACTS_TAG, tags.TRACK_TAG) == (
        summary.CAPTURE_ERRORS,
        summary.CAPTURE_ID,
        summary.ARTIFACTS,
        summary.TRACK,
    )
