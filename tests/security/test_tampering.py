"""`check` sees every edit of what reproduce and diff act on, and every missing or changed file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from support.procs import run_cli


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("code", "remote", "https://evil.invalid/repo.git"),
        ("code", "branch", "attacker"),
        ("code", "root", "/tmp/elsewhere"),
        ("code", "entry_point", "other.py"),
        ("capture", "tool", "not-mlrepro"),
    ],
)
def test_editing_a_field_reproduce_acts_on_is_tampering(mlflow_run, section, key, value):
    doc = mlflow_run.manifest()
    doc[section][key] = value
    mlflow_run.write_manifest(doc)  # the recorded digest kept: content no longer matches it

    out = mlflow_run.cli("check", mlflow_run.run_id)

    assert out.returncode == 1, out.stdout + out.stderr
    assert "tampered" in out.stdout


def test_a_self_consistent_edit_still_differs_from_the_creation_tag(mlflow_run):
    doc = mlflow_run.manifest()
    doc["code"]["remote"] = "https://evil.invalid/repo.git"
    mlflow_run.write_manifest(doc, redigest=True)

    out = mlflow_run.cli("check", mlflow_run.run_id, "--json")

    assert out.returncode == 1
    rule = next(r for r in json.loads(out.stdout)["rules"] if r["name"] == "manifest")
    assert "repro.manifest.digest tag" in rule["reason"]


def test_an_appended_hunk_in_the_stored_diff_fails_the_gate(mlflow_run):
    diff = mlflow_run.read("repro/code.diff")
    extra = (
        b"diff --git a/evil.py b/evil.py\nnew file mode 100644\n--- /dev/null\n"
        b"+++ b/evil.py\n@@ -0,0 +1 @@\n+print('owned')\n"
    )
    mlflow_run.write("repro/code.diff", diff + extra)

    out = mlflow_run.cli("check", mlflow_run.run_id)

    assert out.returncode == 1, out.stdout
    assert "repro/code.diff" in out.stdout


def test_lines_added_to_the_stored_requirements_fail_the_gate(make_mlflow_run):
    run = make_mlflow_run(track="production")
    listed = run.manifest()["artifacts"]
    assert "repro/requirements.txt" in listed and "repro/Dockerfile" in listed
    run.write(
        "repro/requirements.txt",
        run.read("repro/requirements.txt") + b"--index-url http://evil.invalid/simple\n",
    )

    out = run.cli("check", run.run_id, "--track", "exploratory")

    assert out.returncode == 1, out.stdout
    assert "repro/requirements.txt" in out.stdout


def test_a_file_slipped_into_repro_is_named(mlflow_run):
    mlflow_run.write("repro/data/extra/payload.csv", b"1,2\n")

    out = mlflow_run.cli("check", mlflow_run.run_id)

    assert out.returncode == 1
    assert "repro/data/extra/payload.csv" in out.stdout


def test_a_downgraded_record_does_not_match_its_creation_tag(mlflow_run):
    """Stripping the rule-2 fields and re-digesting under rule 1 is caught by the run's tag."""
    doc = mlflow_run.manifest()
    assert doc["digest_version"] == 2
    del doc["digest_version"], doc["artifacts"]
    doc["code"]["remote"] = "https://evil.invalid/repo.git"  # rule 1 does not cover it
    mlflow_run.write_manifest(doc, redigest=True)

    out = mlflow_run.cli("check", mlflow_run.run_id)

    assert out.returncode == 1
    assert "tampered" in out.stdout


def test_a_legacy_record_still_checks_and_says_its_rule_covers_less(mlflow_run):
    """A run recorded before rule 2: verified under rule 1, with the note."""
    from repro_common.manifest import manifest_digest

    doc = mlflow_run.manifest()
    del doc["digest_version"], doc["artifacts"]
    doc["digest"] = manifest_digest(doc)
    mlflow_run.write_manifest(doc)
    mlflow_run.client.set_tag(mlflow_run.run_id, "repro.manifest.digest", doc["digest"])

    out = mlflow_run.cli("check", mlflow_run.run_id)
    shown = mlflow_run.cli("show", mlflow_run.run_id)

    assert out.returncode == 0, out.stdout + out.stderr
    assert "legacy digest rule 1" in out.stdout
    assert shown.returncode == 0, shown.stderr


def test_a_record_without_a_digest_fails_the_gate(tmp_path: Path):
    bare = tmp_path / "manifest.json"
    bare.write_text(json.dumps({"schema": "mlrepro.manifest/1"}))

    out = run_cli("check", str(bare))

    assert out.returncode == 1, out.stdout + out.stderr


def test_a_partial_snapshot_upload_fails_every_track_and_is_counted(
    make_mlflow_run: Callable, tmp_path: Path
):
    """Killed mid-upload: 37 of 80 snapshot files stored."""
    folder = tmp_path / "inputs" / "shards"
    folder.mkdir(parents=True)
    for i in range(80):
        (folder / f"part-{i:02d}.csv").write_text(f"{i},{i * i}\n")
    run = make_mlflow_run(track="production", inputs=[folder])
    stored = sorted((run.artifacts / "repro" / "data").rglob("*.csv"))
    assert len(stored) == 80
    for path in stored[37:]:
        path.unlink()

    exploratory = run.cli("check", run.run_id, "--track", "exploratory", "--json")
    production = run.cli("check", run.run_id, "--track", "production", "--json")

    assert exploratory.returncode == 1, exploratory.stdout
    rules = {r["name"]: r for r in json.loads(exploratory.stdout)["rules"]}
    assert "43 of " in rules["manifest"]["reason"] and "missing" in rules["manifest"]["reason"]
    assert "part-79.csv" in " ".join(rules["manifest"]["details"])
    data = next(r for r in json.loads(production.stdout)["rules"] if r["name"] == "data")
    assert "37 of 80" in data["reason"] and "no snapshot" not in data["reason"]
