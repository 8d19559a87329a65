"""The completeness gate on real runs: what CI sees before a model is registered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlflow_repro_plugin.gate import ReproducibilityError, require_reproducible
from repro_common import capture
from repro_common.gate import RULES, check_run
from repro_common.manifest import Manifest
from repro_common.runs import load_run
from repro_common.snapshots import verify_snapshots
from support.git import commit_all, make_repo
from support.training_runs import script_files, train

# The test venv installs this checkout editable (not reinstallable elsewhere);
# users install mlrepro from an index. The waiver is named in the rule's reason.
ALLOW = ("mlrepro",)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module: its schema is created once, each test makes its own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", script_files())


def add_dvc_data(repo: Path) -> None:
    content = b"x,y\n1,2\n3,5\n"
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_bytes(content)
    md5 = hashlib.md5(content).hexdigest()
    (repo / "data" / "train.csv.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(content)}\n  path: train.csv\n"
    )
    commit_all(repo, "data under DVC")


@pytest.mark.slow
def test_a_clean_seeded_run_with_dvc_data_passes_the_production_gate(
    project: Path, store: str
) -> None:
    add_dvc_data(project)
    [made] = train(
        project,
        [{"seed": 7, "data": {"train": "data/train.csv"}}],
        tracking_uri=store,
        env={"MLREPRO_TRACK": "production"},
    )
    record = load_run(made["mlflow"], store)

    report = check_run(record, "production", allow_packages=ALLOW)
    assert report.passed, report.summary()
    assert [rule.name for rule in report.rules] == list(RULES)
    assert report.rule("data").reason.endswith("(1 by DVC md5, 0 by snapshot)")
    assert report.rule("code").reason.startswith("clean tree at ")
    assert "mlrepro waived" in report.rule("environment").reason
    assert require_reproducible(made["mlflow"], tracking_uri=store, allow_packages=ALLOW).passed

    unwaived = check_run(record, "production")
    assert unwaived.failed == ["environment"]
    assert "cannot be reinstalled from their record: mlrepro" in unwaived.rule("environment").reason


@pytest.mark.slow
def test_a_dirty_unseeded_run_fails_exactly_the_code_and_seeds_rules(
    project: Path, store: str
) -> None:
    # Uncommitted work: an edit to a tracked file (stored in the diff) and a new module
    # the run imports, too large for the diff to carry: the code cannot be rebuilt.
    (project / "train.py").write_text((project / "train.py").read_text() + "# tuned\n")
    (project / "helpers.py").write_text("# " + "x" * 600_000 + "\nVALUE = 1\n")
    [made] = train(
        project,
        [{}],
        tracking_uri=store,
        env={"MLREPRO_TRACK": "production", "IMPORT_HELPERS": "1"},
    )
    record = load_run(made["mlflow"], store)

    report = check_run(record, "production", allow_packages=ALLOW)
    assert report.failed == ["code", "seeds"]
    assert "helpers.py" in report.rule("code").reason
    assert report.rule("seeds").reason.startswith("no global seed recorded")
    with pytest.raises(ReproducibilityError) as raised:
        require_reproducible(made["mlflow"], tracking_uri=store, allow_packages=ALLOW)
    assert raised.value.failed == ["code", "seeds"]
    message = str(raised.value)
    assert "  - code: " in message and "  - seeds: no global seed" in message
    assert "environment" not in message

    exploratory = check_run(record, "exploratory")
    assert exploratory.passed and exploratory.advice == ["code", "environment", "seeds"]


@pytest.mark.slow
def test_a_dirty_wandb_run_whose_diff_is_stored_passes_the_code_rule(
    project: Path, wandb_offline: Path
) -> None:
    (project / "train.py").write_text((project / "train.py").read_text() + "# lr sweep\n")
    [made] = train(project, [{"seed": 3}], trackers="wandb", env={"MLREPRO_TRACK": "production"})
    record = load_run(made["wandb"])
    assert record.kind == "wandb"

    report = check_run(record, "production", allow_packages=ALLOW)
    assert report.passed, report.summary()
    assert "diff stored as repro/code.diff" in report.rule("code").reason
    assert b"+# lr sweep" in (record.read_artifact("repro/code.diff") or b"")
    assert record.tags["repro.manifest.digest"] == record.manifest.digest


@pytest.mark.slow
def test_an_edited_manifest_fails_the_manifest_rule_even_with_a_new_digest(
    project: Path, store: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    [made] = train(project, [{"seed": 1}], tracking_uri=store)
    run_id = made["mlflow"]
    record = load_run(run_id, store)
    assert check_run(record, "exploratory").passed
    client = MlflowClient(store)
    doc = json.loads(record.read_artifact("repro/manifest.json") or b"")
    edited = tmp_path / "edited" / "manifest.json"
    edited.parent.mkdir()

    doc["seeds"]["global"] = 2  # someone "fixes" the record after the fact
    edited.write_text(json.dumps(doc))
    client.log_artifact(run_id, str(edited), "repro")
    report = check_run(load_run(run_id, store), "exploratory")
    assert report.failed == ["manifest"]
    assert report.rule("manifest").reason.startswith("tampered: the content no longer matches")

    forged = Manifest.from_dict(doc)
    forged.refresh_digest()  # a careful forger recomputes the digest too
    edited.write_text(forged.to_json())
    client.log_artifact(run_id, str(edited), "repro")
    report = check_run(load_run(run_id, store), "exploratory")
    assert report.failed == ["manifest"]
    assert "differs from the run's repro.manifest.digest tag" in report.rule("manifest").reason


@pytest.mark.parametrize("track", ["exploratory", "production"])
def test_a_manifest_file_is_judged_on_its_own_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, track: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "manifest.json"
    path.write_text(capture().to_json())
    report = check_run(load_run(str(path)), track)
    assert report.rule("manifest").passed
    assert "no run tag" in report.rule("manifest").reason
    assert report.passed is (track == "exploratory")
    if track == "production":
        assert "code" in report.failed and "no commit recorded" in report.rule("code").reason


@pytest.mark.slow
def test_a_production_run_stores_its_spec_and_data_snapshot_as_it_runs(
    project: Path, store: str, wandb_offline: Path, tmp_path: Path
) -> None:
    data = tmp_path / "inputs" / "train.csv"
    data.parent.mkdir()
    data.write_text("x,y\n1,2\n")
    [made] = train(
        project,
        [{"seed": 8, "data": {"train": str(data)}}],
        tracking_uri=store,
        trackers="mlflow,wandb",
        env={"MLREPRO_TRACK": "production"},
    )
    for ref in (made["mlflow"], made["wandb"]):
        record = load_run(ref, store)
        assert {"repro/Dockerfile", "repro/data/train/train.csv"} <= set(
            record.list_artifacts("repro")
        ), record.kind
        assert record.read_artifact("repro/data/train/train.csv") == b"x,y\n1,2\n"
        assert record.backend is not None and record.manifest is not None
        assert verify_snapshots(record.backend, record.manifest) == []
        report = check_run(record, allow_packages=ALLOW)  # the run's own track: production
        assert report.track == "production" and report.passed, report.summary()
        assert report.rule("data").reason.endswith("(0 by DVC md5, 1 by snapshot)")


def test_an_inherited_seed_that_was_never_applied_fails_the_seeds_rule(tmp_path: Path) -> None:
    """PL_GLOBAL_SEED left in the shell by an earlier job is not a seeded run."""
    from repro_common.gate import seeds_rule
    from support.procs import clean_env, run_python

    proc = run_python(  # torch imported and left unseeded: the seed never reached it
        "import torch, repro_common; print(repro_common.capture().to_json())",
        cwd=tmp_path,
        env=clean_env(PL_GLOBAL_SEED="7"),
    )
    manifest = Manifest.from_json(proc.stdout)
    assert manifest.seeds["global"] == 7 and manifest.seeds["seeded"] is False
    result = seeds_rule(manifest)
    assert not result.passed and "not applied" in result.reason

    seeded = run_python(
        "import torch, repro_common; repro_common.seed_everything(7);"
        " print(repro_common.capture().to_json())",
        cwd=tmp_path,
        env=clean_env(),
    )
    assert seeds_rule(Manifest.from_json(seeded.stdout)).passed


def test_both_adapters_export_the_one_gate_api_of_the_core() -> None:
    """A registration script gets the same check whichever tracker it imports."""
    import mlflow_repro_plugin
    import wandb_repro_plugin
    from mlflow_repro_plugin import gate as mlflow_gate
    from repro_common import registration

    for module in (mlflow_repro_plugin, wandb_repro_plugin, mlflow_gate):
        assert module.require_reproducible is registration.require_reproducible
        assert module.ReproducibilityError is registration.ReproducibilityError
