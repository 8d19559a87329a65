"""Why two runs may differ: grouped differences between their records, across MLflow and W&B."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from repro_common import capture
from repro_common.cli import main
from repro_common.diff import diff_manifests, diff_runs
from repro_common.manifest import Manifest
from repro_common.runs import load_run
from support.git import make_repo
from support.training_runs import script_files, train


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module: its schema is created once, each test makes its own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def _edited(manifest: Manifest, edit) -> Manifest:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(manifest.to_dict())
    edit(doc)
    changed = Manifest.from_dict(doc)
    changed.refresh_digest()
    return changed


def _changed(groups: dict, name: str) -> dict[str, tuple]:  # type: ignore[type-arg]
    return {c.field: (c.kind, c.a, c.b) for c in groups[name]}


def test_package_platform_and_code_changes_land_in_their_groups() -> None:
    base = capture()
    first = base.environment["packages"][0]["name"]

    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        packages = doc["environment"]["packages"]
        packages[0]["version"] = "0.0.1"
        packages.append({"name": "brand-new", "version": "1.0", "source": "index"})
        del packages[1]
        doc["environment"]["python"]["version"] = "3.99.0"
        doc["environment"].setdefault("hardware", {})["cuda"] = "12.4"
        doc["code"]["commit"] = "f" * 40
        doc["capture"]["hostname"] = "elsewhere"  # where and when never count
        doc["environment"]["python"]["executable"] = "/opt/other/python"

    groups = diff_manifests(base, _edited(base, edit))
    packages = _changed(groups, "packages")
    assert packages[first][0] == "changed" and packages[first][2] == "0.0.1"
    assert packages["brand-new"] == ("added", None, "1.0")
    assert [kind for kind, _, _ in packages.values()].count("removed") == 1
    assert set(_changed(groups, "platform")) == {"python", "cuda"}
    assert set(_changed(groups, "code")) == {"commit"}
    assert not groups["seeds"] and not groups["data"] and not groups["environment variables"]


def test_identical_records_have_no_differences() -> None:
    manifest = capture()
    groups = diff_manifests(manifest, Manifest.from_json(manifest.to_json()))
    assert not any(groups.values())


@pytest.mark.slow
def test_two_runs_differing_only_by_seed_name_only_the_seed(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "project", script_files())
    first, second, again = train(repo, [{"seed": 1}, {"seed": 2}, {"seed": 1}], tracking_uri=store)
    a, b, c = (load_run(made["mlflow"], store) for made in (first, second, again))

    result = diff_runs(a, b)
    assert result.differing_groups == ["seeds"]
    assert _changed(result.groups, "seeds")["global"] == ("changed", 1, 2)
    assert diff_runs(a, c).identical

    assert main(["diff", first["mlflow"], second["mlflow"], "--tracking-uri", store, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["differing"] == ["seeds"] and doc["identical"] is False
    assert main(["diff", first["mlflow"], again["mlflow"], "--tracking-uri", store]) == 0
    assert "identical" in capsys.readouterr().out


@pytest.mark.slow
def test_an_mlflow_run_and_a_wandb_run_compare_with_each_other(
    tmp_path: Path, store: str, wandb_offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "project", script_files())
    (tmp_path / "v1.csv").write_text("x\n1\n")
    (tmp_path / "v2.csv").write_text("x\n2\n")
    same, other = train(
        repo,
        [
            {"seed": 4, "data": {"train": str(tmp_path / "v1.csv")}, "loss": 0.5},
            {"seed": 4, "data": {"train": str(tmp_path / "v2.csv")}, "loss": 0.4},
        ],
        tracking_uri=store,
        trackers="mlflow,wandb",
    )
    mlflow_run = load_run(same["mlflow"], store)
    wandb_run = load_run(same["wandb"])
    assert (mlflow_run.kind, wandb_run.kind) == ("mlflow", "wandb")

    result = diff_runs(mlflow_run, wandb_run)
    assert result.identical, result.to_dict()
    assert [(m.name, m.delta) for m in result.metrics] == [("loss", 0.0)]

    changed = diff_runs(mlflow_run, load_run(other["wandb"]))
    assert changed.differing_groups == ["data"]
    assert changed.metrics[0].delta == pytest.approx(-0.1)

    assert main(["diff", same["mlflow"], other["wandb"], "--tracking-uri", store]) == 1
    out = capsys.readouterr().out
    assert "differ in data" in out and "train" in out and "-0.1" in out
