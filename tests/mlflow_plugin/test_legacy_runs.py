"""Runs recorded before `repro.artifacts` (every run stored requirements.txt and carried a
"pending" note until its upload landed) still show, check, diff and reproduce.

The runs are built here with the old layout written out explicitly, in a real SQLite store,
through MlflowClient (which calls no run-context provider): the tags and files are what
the old plugin wrote, whatever the plugin does today.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import repro_common
from repro_common.cli import main
from repro_common.environment import requirements_txt
from repro_common.manifest import LEGACY_DIGEST_VERSION, Manifest
from support.git import make_repo

# Exactly what the old provider put in `repro.capture.errors` at creation.
OLD_PENDING_NOTE = (
    "artifacts: repro/ upload pending (if this stays, the run has no repro/ artifacts)"
)
OLD_REQUIREMENTS_MARK = "# stored with the run by the old plugin\n"


def _capture(seed: int) -> Manifest:
    """A record as the old plugin wrote it: digested under rule 1, with no `artifacts` listing."""
    repro_common.reset_cache()
    repro_common.seed_everything(seed)
    manifest = repro_common.capture()
    manifest.digest_version = LEGACY_DIGEST_VERSION
    manifest.artifacts = {}
    manifest.refresh_digest()
    return manifest


def _old_tags(manifest: Manifest) -> dict[str, str]:
    """The tags the old plugin set at creation: no `repro.artifacts`, the pending note."""
    return {
        "repro.manifest.digest": manifest.digest,
        "repro.env.digest": str(manifest.environment["digest"]),
        "repro.env.python": str(manifest.environment["python"]["version"]),
        "repro.git.commit": str(manifest.code["commit"]),
        "repro.git.dirty": "false",
        "repro.seed": str(manifest.seeds["global"]),
        "repro.track": "exploratory",
        "repro.capture.id": uuid.uuid4().hex,
        "repro.capture.errors": OLD_PENDING_NOTE,
    }


def _old_run(
    client: MlflowClient, experiment: str, manifest: Manifest, tmp: Path, *, landed: bool
) -> str:
    """A run as the old plugin left it. `landed`: its upload put manifest.json and
    requirements.txt in repro/ but the note was never cleared (the delete-tag failed)."""
    run = client.create_run(experiment, tags=_old_tags(manifest))
    client.log_metric(run.info.run_id, "loss", 0.5)
    if landed:
        folder = tmp / run.info.run_id
        folder.mkdir()
        (folder / "manifest.json").write_text(manifest.to_json())
        packages = manifest.environment.get("packages") or []
        (folder / "requirements.txt").write_text(OLD_REQUIREMENTS_MARK + requirements_txt(packages))
        client.log_artifacts(run.info.run_id, str(folder), "repro")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture
def old_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """Two complete old runs of one clean checkout (seeds 5 and 6) and one whose upload never landed."""
    repo = make_repo(tmp_path / "project", {"train.py": "print('train')\n"})
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py")])
    monkeypatch.setenv("MLREPRO_DISABLE", "1")  # nothing of today's plugin in these runs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("old-runs", artifact_location=str(tmp_path / "art"))
    first, second = _capture(5), _capture(6)
    runs = {
        "first": _old_run(client, experiment, first, tmp_path, landed=True),
        "second": _old_run(client, experiment, second, tmp_path, landed=True),
        "lost": _old_run(client, experiment, first, tmp_path, landed=False),
    }
    monkeypatch.delenv("MLREPRO_DISABLE")
    assert client.list_artifacts(runs["lost"]) == []
    assert not any("repro.artifacts" in client.get_run(r).data.tags for r in runs.values())
    return uri, runs


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def test_an_old_run_shows_checks_and_diffs_with_its_stale_pending_note_left_out(
    old_runs: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, runs = old_runs
    code, out, _ = _cli(capsys, "show", runs["first"], "--tracking-uri", uri)
    assert code == 0, out
    assert "blake3:" in out and "exploratory" in out
    # Its upload landed: the note that said "pending" is stale, and the record is whole.
    assert "upload pending" not in out and "incomplete" not in out, out

    code, out, _ = _cli(capsys, "show", runs["first"], "--tracking-uri", uri, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["incomplete"] is None
    assert shown["gate"]["exploratory"]["passed"] is True

    code, out, _ = _cli(capsys, "check", runs["first"], "--tracking-uri", uri, "--json")
    assert code == 0, out
    code, out, _ = _cli(
        capsys, "check", runs["first"], "--tracking-uri", uri, "--track", "production", "--json"
    )
    report = json.loads(out)
    assert code == 1 and "manifest" not in report["failed"], report  # no Dockerfile: not production
    assert "repro/Dockerfile missing" in report["rules"][2]["reason"], report["rules"][2]
    assert "requirements.txt" not in report["rules"][2]["reason"], "it stored requirements.txt"

    code, out, _ = _cli(
        capsys, "diff", runs["first"], runs["second"], "--tracking-uri", uri, "--json"
    )
    assert code == 1 and "seeds" in json.loads(out)["differing"], out


def test_an_old_run_reproduces_with_requirements_written_from_its_checked_manifest(
    old_runs: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old run's stored requirements.txt is covered by no digest: it is not used."""
    uri, runs = old_runs
    target = tmp_path / "rebuilt"
    code, out, err = _cli(
        capsys, "reproduce", runs["first"], "--tracking-uri", uri, "--dir", str(target)
    )
    assert code == 0, out + err
    written = (target / "requirements.txt").read_text()
    assert OLD_REQUIREMENTS_MARK not in written and "click==" in written
    assert (target / "code" / "train.py").read_text() == "print('train')\n"


def test_an_old_run_whose_upload_never_landed_reads_as_incomplete_everywhere(
    old_runs: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, runs = old_runs
    lost = runs["lost"]
    missing = "record incomplete: repro/manifest.json never arrived"

    code, out, _ = _cli(capsys, "show", lost, "--tracking-uri", uri)
    assert code == 1 and missing in out, out
    assert "repro.manifest.digest = blake3:" in out  # what its tags still say

    code, out, _ = _cli(capsys, "check", lost, "--tracking-uri", uri, "--track", "production")
    assert code == 1 and missing in out, out

    code, out, err = _cli(capsys, "diff", runs["first"], lost, "--tracking-uri", uri)
    assert code == 2 and missing in err and len(err.strip().splitlines()) == 1, err

    code, out, err = _cli(
        capsys, "reproduce", lost, "--tracking-uri", uri, "--dir", str(tmp_path / "never")
    )
    assert code == 2 and missing in err, out + err
    assert not (tmp_path / "never").exists()
