"""On the team deployment (PostgreSQL + S3 behind `mlflow server`): the same checks as on SQLite."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.git import git, make_repo
from support.procs import run_cli

pytestmark = [pytest.mark.team, pytest.mark.slow]

EXPERIMENT = "team-stack"

TRAIN = """\
import sys

import mlflow
import repro_common

seed = int(sys.argv[1])
repro_common.seed_everything(seed)
repro_common.track_data("data.csv", name="train")
mlflow.set_experiment(sys.argv[2])
with mlflow.start_run() as run:
    mlflow.log_param("seed", seed)
    mlflow.log_metric("loss", 1.0 / seed)
print("RUN_ID", run.info.run_id)
"""


@pytest.fixture(scope="module")
def trained(team_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs of the same dirty checkout that differ only in their seed."""
    repo = make_repo(
        tmp_path_factory.mktemp("stack") / "project",
        {"train.py": TRAIN, "data.csv": "x,y\n1,2\n3,4\n", ".gitignore": "mlruns/\n"},
    )
    (repo / "train.py").write_text(TRAIN + "# tuned by hand, not committed yet\n")
    run_ids = []
    for seed in (1, 2):
        proc = team_stack.run_script(repo / "train.py", str(seed), EXPERIMENT)
        run_ids += team_stack.printed(proc.stdout, "RUN_ID")
    client = team_stack.client()
    return {"repo": repo, "runs": [client.get_run(run_id) for run_id in run_ids]}


def _mlrepro(stack: Any, *args: str) -> Any:
    return run_cli(*args, "--tracking-uri", stack.url, env=stack.client_env(), timeout=180)


def test_runs_carry_tags_and_repro_artifacts_in_the_object_store(
    team_stack: Any, trained: dict[str, Any]
) -> None:
    from repro_common.manifest import Manifest

    client = team_stack.client()
    head = git(trained["repo"], "rev-parse", "HEAD")
    for run, seed in zip(trained["runs"], (1, 2), strict=True):
        tags = run.data.tags
        assert [name for name in team_stack.CORE_TAGS if name not in tags] == []
        assert "repro.capture.errors" not in tags, tags["repro.capture.errors"]
        assert tags["repro.seed"] == str(seed)
        assert tags["repro.git.commit"] == head
        assert tags["repro.git.dirty"] == "true"
        assert tags["repro.track"] == "exploratory"

        listed = {item.path for item in client.list_artifacts(run.info.run_id, "repro")}
        assert listed == {"repro/manifest.json", "repro/code.diff"}
        assert tags["repro.artifacts"] == "manifest.json,code.diff"
        # Stored in the bucket (not on the server's disk), and the record is the one the tags describe.
        manifest = Manifest.from_json(team_stack.s3_object(run, "repro/manifest.json"))
        manifest.validate()
        assert manifest.digest == tags["repro.manifest.digest"]
        assert manifest.digest_matches()
        assert manifest.environment["digest"] == tags["repro.env.digest"]
        assert manifest.seeds["global"] == seed
        assert manifest.code["commit"] == head and manifest.code["dirty"] is True
        assert "tuned by hand" in team_stack.s3_object(run, "repro/code.diff").decode()


def test_tracked_data_shows_as_a_dataset_with_our_fingerprint(
    team_stack: Any, trained: dict[str, Any]
) -> None:
    import repro_common

    expected = repro_common.fingerprint(trained["repo"] / "data.csv")
    for run in trained["runs"]:
        assert run.data.tags["repro.data.train"] == expected
        datasets = [
            item.dataset for item in run.inputs.dataset_inputs if item.dataset.name == "train"
        ]
        assert len(datasets) == 1, [item.dataset.name for item in run.inputs.dataset_inputs]
        digest = datasets[0].digest.removeprefix("blake3:")
        assert len(digest) >= 16 and expected.removeprefix("blake3:").startswith(digest)
        assert "data.csv" in datasets[0].source


def test_gate_reads_runs_from_the_team_server(team_stack: Any, trained: dict[str, Any]) -> None:
    run_id = trained["runs"][0].info.run_id
    exploratory = _mlrepro(team_stack, "check", run_id, "--track", "exploratory", "--json")
    assert exploratory.returncode == 0, exploratory.stdout + exploratory.stderr
    assert json.loads(exploratory.stdout)["passed"] is True
    # An exploratory run stores no Dockerfile and no data snapshot: not ready for the registry.
    # What it does store (manifest from S3, checked against its tag; diff of the dirty tree) passes.
    production = _mlrepro(team_stack, "check", run_id, "--track", "production", "--json")
    assert production.returncode == 1, production.stdout + production.stderr
    report = json.loads(production.stdout)
    assert report["passed"] is False and report["failed"]
    assert "manifest" not in report["failed"] and "code" not in report["failed"], report


def test_diff_and_show_read_runs_from_the_team_server(
    team_stack: Any, trained: dict[str, Any]
) -> None:
    first, second = (run.info.run_id for run in trained["runs"])
    same = _mlrepro(team_stack, "diff", first, first, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    assert json.loads(same.stdout)["identical"] is True
    differ = _mlrepro(team_stack, "diff", first, second, "--json")
    assert differ.returncode == 1, differ.stdout + differ.stderr
    differing = json.loads(differ.stdout)["differing"]
    # Another seed (and the argv and param that carry it); same packages, platform and data.
    assert "seeds" in differing, differing
    assert not {"packages", "platform", "data"} & set(differing), differing

    shown = _mlrepro(team_stack, "show", first)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert git(trained["repo"], "rev-parse", "HEAD")[:7] in shown.stdout


def test_reproduce_rebuilds_a_run_from_the_team_server_and_gets_its_numbers_back(
    team_stack: Any, trained: dict[str, Any], tmp_path: Any
) -> None:
    original = trained["runs"][0]
    rebuilt = tmp_path / "rebuilt"
    proc = _mlrepro(
        team_stack, "reproduce", original.info.run_id, "--run", "--dir", str(rebuilt), "--json"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert json.loads(proc.stdout)["verdict"]["reproduced"] is True
    # The rerun is a new run on the same server, linked to the original, with the same numbers.
    again = [
        run
        for run in team_stack.runs(EXPERIMENT)
        if run.data.tags.get("repro.reproduces") == original.info.run_id
    ]
    assert len(again) == 1
    assert again[0].data.metrics["loss"] == original.data.metrics["loss"]
    assert again[0].data.tags["repro.seed"] == original.data.tags["repro.seed"]
    assert "tuned by hand" in (rebuilt / "code" / "train.py").read_text()
