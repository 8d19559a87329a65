"""`reproduce` checks the record before it clones, installs or runs anything."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.procs import PYTHON, clean_env, run_cli

APPENDED_HUNK = """\
diff --git a/owned.py b/owned.py
new file mode 100644
--- /dev/null
+++ b/owned.py
@@ -0,0 +1 @@
+print('owned')
"""


def test_an_appended_hunk_is_refused_before_anything_runs(mlflow_run, tmp_path: Path):
    mlflow_run.write("repro/code.diff", mlflow_run.read("repro/code.diff") + APPENDED_HUNK.encode())
    target = tmp_path / "rebuilt"

    out = mlflow_run.cli("reproduce", mlflow_run.run_id, "--dir", str(target), "--run")

    assert out.returncode == 1, out.stdout + out.stderr
    assert "repro/code.diff" in out.stderr and "--trust-record" in out.stderr
    assert "REPRODUCED" not in out.stdout
    assert not target.exists(), "nothing is cloned or written for a refused record"


def test_trust_record_goes_on_and_says_so_in_the_verdict(mlflow_run, tmp_path: Path):
    mlflow_run.write("repro/code.diff", mlflow_run.read("repro/code.diff") + APPENDED_HUNK.encode())

    out = mlflow_run.cli(
        "reproduce",
        mlflow_run.run_id,
        "--dir",
        str(tmp_path / "rebuilt"),
        "--trust-record",
        "--json",
    )

    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["record"] == {
        "verified": False,
        "trust_record": True,
        "integrity": report["record"]["integrity"],
    }
    assert "repro/code.diff" in report["record"]["integrity"]
    assert (tmp_path / "rebuilt" / "code" / "owned.py").is_file()


def test_a_verified_record_says_so(mlflow_run, tmp_path: Path):
    out = mlflow_run.cli(
        "reproduce", mlflow_run.run_id, "--dir", str(tmp_path / "rebuilt"), "--json"
    )

    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(out.stdout)["record"]
    assert record["verified"] is True and record["trust_record"] is False
    assert "match their blake3" in record["integrity"]


def test_a_record_without_a_digest_is_unverifiable(mlflow_run, tmp_path: Path):
    doc = mlflow_run.manifest()
    del doc["digest"]
    mlflow_run.write_manifest(doc)

    out = mlflow_run.cli("reproduce", mlflow_run.run_id, "--dir", str(tmp_path / "rebuilt"))

    assert out.returncode == 1, out.stdout + out.stderr
    assert not (tmp_path / "rebuilt").exists()


def test_a_legacy_record_still_reproduces(mlflow_run, tmp_path: Path):
    from repro_common.manifest import manifest_digest

    doc = mlflow_run.manifest()
    del doc["digest_version"], doc["artifacts"]
    doc["digest"] = manifest_digest(doc)
    mlflow_run.write_manifest(doc)
    mlflow_run.client.set_tag(mlflow_run.run_id, "repro.manifest.digest", doc["digest"])

    out = mlflow_run.cli(
        "reproduce", mlflow_run.run_id, "--dir", str(tmp_path / "rebuilt"), "--json"
    )

    assert out.returncode == 0, out.stdout + out.stderr
    assert "legacy digest rule 1" in json.loads(out.stdout)["record"]["integrity"]


def test_a_tampered_wandb_run_is_refused(wandb_run_dir: Path, tmp_path: Path):
    from repro_common.manifest import manifest_digest

    stored = wandb_run_dir / "files" / "repro" / "manifest.json"
    doc = json.loads(stored.read_text())
    doc["code"]["remote"] = "https://evil.invalid/repo.git"
    doc["digest"] = manifest_digest(doc)  # self-consistent; the run's config says otherwise
    stored.write_text(json.dumps(doc))
    target = tmp_path / "rebuilt"

    check = run_cli("check", str(wandb_run_dir))
    out = run_cli("reproduce", str(wandb_run_dir), "--dir", str(target), "--run")

    assert check.returncode == 1 and "tampered" in check.stdout
    assert out.returncode == 1, out.stdout + out.stderr
    assert "tampered" in out.stderr
    assert not target.exists()


def test_a_remote_that_is_an_option_never_reaches_git(mlflow_run, tmp_path: Path):
    canary = tmp_path / "owned-upload-pack"
    doc = mlflow_run.manifest()
    doc["code"]["root"] = str(tmp_path / "gone")  # no local checkout: the remote is used
    doc["code"]["remote"] = f"--upload-pack=touch {canary};false"
    mlflow_run.write_manifest(doc, redigest=True)

    refused = mlflow_run.cli("reproduce", mlflow_run.run_id, "--dir", str(tmp_path / "a"))
    trusted = mlflow_run.cli(
        "reproduce", mlflow_run.run_id, "--dir", str(tmp_path / "b"), "--trust-record"
    )

    assert refused.returncode == 1
    assert trusted.returncode == 2, trusted.stdout + trusted.stderr
    assert "git would read it as an option" in trusted.stderr
    assert not canary.exists()


def test_reproduce_sh_run_by_hand_logs_to_the_callers_relative_store(mlflow_run, tmp_path: Path):
    """An inherited `sqlite:///mlflow.db` is the caller's store, not a new one under code/."""
    target = tmp_path / "rebuilt"
    made = mlflow_run.cli("reproduce", mlflow_run.run_id, "--dir", str(target))
    assert made.returncode == 0, made.stdout + made.stderr
    script = (target / "reproduce.sh").read_text()
    assert f"sqlite:///{mlflow_run.base}/mlflow.db" in script, "the default store is absolute"

    proc = subprocess.run(
        ["bash", str(target / "reproduce.sh")],
        cwd=mlflow_run.base,
        env=clean_env(MLFLOW_TRACKING_URI="sqlite:///mlflow.db", PYTHON=PYTHON),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(target.rglob("mlflow.db")), "no new store inside the reproduction"
    new_run = proc.stdout.strip().splitlines()[-1].removeprefix("RUN_ID=")
    tags = mlflow_run.client.get_run(new_run).data.tags
    assert tags["repro.reproduces"] == mlflow_run.run_id
    assert os.path.isabs(mlflow_run.base)
