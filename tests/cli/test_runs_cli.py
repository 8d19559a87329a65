"""`mlrepro show / check / promote / diff` as users type them, on real MLflow and W&B runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro_common.cli import main
from repro_common.runs import load_run
from support.git import make_repo
from support.procs import clean_env, free_port, run_cli, run_python
from support.training_runs import script_files, train

ALLOW = ["--allow-package", "mlrepro"]  # this checkout is installed editable in the test venv


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module: its schema is created once, each test makes its own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def _artifacts(run_id: str, uri: str) -> set[str]:
    return set(load_run(run_id, uri).list_artifacts("repro"))


@pytest.mark.slow
def test_show_and_check_read_mlflow_runs_wandb_dirs_and_manifest_files(
    tmp_path: Path, store: str, wandb_offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "project", script_files())
    (tmp_path / "train.csv").write_text("x,y\n1,2\n")
    [made] = train(
        repo,
        [{"seed": 11, "data": {"train": str(tmp_path / "train.csv")}}],
        tracking_uri=store,
        trackers="mlflow,wandb",
    )
    run_id, run_dir = made["mlflow"], made["wandb"]

    assert main(["show", run_id, "--tracking-uri", store]) == 0
    card = capsys.readouterr().out
    for expected in ("exploratory", "11 (argument)", "train", "blake3:", "production", "FAIL"):
        assert expected in card

    assert main(["show", f"runs:/{run_id}/model", "--tracking-uri", store, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == "mlflow" and shown["track"] == "exploratory"
    assert shown["tags"]["repro.manifest.digest"] == shown["manifest"]["digest"]
    assert shown["gate"]["exploratory"]["passed"] is True
    assert shown["gate"]["production"]["failed"] == ["environment", "data"]

    assert main(["show", str(Path(run_dir).parent), "--json"]) == 0  # wandb/ -> latest run
    from_wandb = json.loads(capsys.readouterr().out)
    assert from_wandb["source"] == "wandb"
    assert from_wandb["manifest"]["digest"] == shown["manifest"]["digest"]

    manifest_file = Path(run_dir) / "files" / "repro" / "manifest.json"
    assert main(["show", str(manifest_file)]) == 0
    assert shown["manifest"]["digest"] in capsys.readouterr().out.replace("\n", "").replace(
        "│", ""
    ).replace(" ", "")

    assert main(["check", run_id, "--tracking-uri", store]) == 0  # its own track
    capsys.readouterr()
    assert main(["check", run_id, "--tracking-uri", store, "--track", "production", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["failed"] == ["environment", "data"]
    rules = {rule["name"]: rule for rule in report["rules"]}
    assert "repro/Dockerfile" in rules["environment"]["reason"]
    assert "no DVC reference and no snapshot" in rules["data"]["reason"]
    assert main(["check", run_dir, "--track", "production"]) == 1
    out = capsys.readouterr().out
    assert "fails the production gate" in out and "data:" in out


@pytest.mark.slow
def test_promotion_refuses_changed_data_then_promotes_once_and_passes_the_gate(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "project", script_files())
    data = tmp_path / "inputs" / "train.csv"
    data.parent.mkdir()
    data.write_text("x,y\n1,2\n")
    [made] = train(repo, [{"seed": 5, "data": {"train": str(data)}}], tracking_uri=store)
    run_id = made["mlflow"]
    before = load_run(run_id, store)
    digest = before.tags["repro.manifest.digest"]

    data.write_text("x,y\n1,3\n")  # someone re-exported the data since the run
    assert main(["promote", run_id, "--tracking-uri", store]) == 1
    err = capsys.readouterr().err
    assert "refusing to promote, the data changed since the run" in err
    assert f"train: {data} is now blake3:" in err
    refused = load_run(run_id, store)
    assert refused.tags["repro.track"] == "exploratory" and "repro.promoted_at" not in refused.tags
    assert "repro/Dockerfile" not in _artifacts(run_id, store)

    data.write_text("x,y\n1,2\n")  # back to the recorded content
    # Promoted, but this checkout's editable mlrepro still fails the production gate: exit 1.
    assert main(["promote", run_id, "--tracking-uri", store]) == 1
    out = capsys.readouterr().out
    assert "promoted" in out and "still failing for production: environment" in out
    assert "fix:" in out
    assert main(["promote", run_id, "--tracking-uri", store, *ALLOW]) == 0
    assert "already on the production track" in capsys.readouterr().out
    promoted = load_run(run_id, store)
    assert promoted.tags["repro.track"] == "production"
    assert promoted.tags["repro.promoted_at"]
    # The files promotion stores are listed in the digest, so the digest and its tag move on.
    assert promoted.manifest is not None and promoted.manifest.digest != digest
    assert promoted.tags["repro.manifest.digest"] == promoted.manifest.digest
    assert promoted.manifest.digest_matches() and promoted.manifest.track == "production"
    stored = _artifacts(run_id, store)
    # requirements.txt is written from the manifest's package list (an exploratory run has none).
    assert {"repro/requirements.txt", "repro/Dockerfile", "repro/data/train/train.csv"} <= stored
    assert {"repro/Dockerfile", "repro/data/train/train.csv"} <= set(promoted.manifest.artifacts)
    assert promoted.tags["repro.artifacts"] == "manifest.json,Dockerfile,requirements.txt,data/*"
    assert promoted.read_artifact("repro/data/train/train.csv") == b"x,y\n1,2\n"

    assert main(["promote", run_id, "--tracking-uri", store, "--json", *ALLOW]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["already_promoted"] is True and again["stored"] == []
    assert again["promoted_at"] == promoted.tags["repro.promoted_at"]
    assert _artifacts(run_id, store) == stored

    assert main(["check", run_id, "--tracking-uri", store, *ALLOW]) == 0
    assert "passes the production gate" in capsys.readouterr().out


@pytest.mark.slow
def test_promoting_a_wandb_run_writes_into_its_run_directory(
    tmp_path: Path, wandb_offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "project", script_files())
    (tmp_path / "train.csv").write_text("x\n1\n")
    [made] = train(
        repo, [{"seed": 9, "data": {"train": str(tmp_path / "train.csv")}}], trackers="wandb"
    )
    run_dir = Path(made["wandb"])

    assert main(["promote", str(run_dir), *ALLOW]) == 0
    out = capsys.readouterr().out
    assert "local run directory only" in out
    assert (run_dir / "files" / "repro" / "Dockerfile").is_file()
    assert (run_dir / "files" / "repro" / "data" / "train" / "train.csv").read_text() == "x\n1\n"
    assert main(["check", str(run_dir), *ALLOW, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["track"] == "production" and report["passed"] is True


@pytest.fixture
def plain_wandb_run(wandb_offline: Path) -> Path:
    """A W&B run made without our plugin: no repro/ files."""
    proc = run_python(
        """
        import wandb
        run = wandb.init(project="plain")
        run.log({"loss": 1.0})
        run.finish()
        print(run.dir)
        """,
        env=clean_env(),
    )
    return Path(proc.stdout.strip().splitlines()[-1]).parent


def _assert_one_line_exit_2(label: str, args: list[str], expected: str, cwd: Path) -> None:
    proc = run_cli(*args, cwd=cwd, timeout=60)
    assert proc.returncode == 2, (label, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, label
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlrepro: error:"), (label, lines)
    assert expected in lines[0], (label, lines[0])


@pytest.mark.slow
def test_a_wandb_run_made_without_the_plugin_is_named_as_such(
    tmp_path: Path, plain_wandb_run: Path
) -> None:
    _assert_one_line_exit_2(
        "plain W&B run",
        ["show", str(plain_wandb_run)],
        "was the run made with wandb_repro_plugin",
        tmp_path,
    )


def test_bad_input_is_one_line_and_exit_2_never_a_traceback(tmp_path: Path) -> None:
    not_a_manifest = tmp_path / "config.json"
    not_a_manifest.write_text('{"lr": 0.1}')
    hex_id = "0123456789abcdef0123456789abcdef"
    dead = f"http://127.0.0.1:{free_port()}"
    cases = {
        "garbage id": (["show", "not-a-run"], "no run found for 'not-a-run'"),
        "missing file": (["check", str(tmp_path / "nope.json")], "no run found"),
        "not a manifest": (["show", str(not_a_manifest)], "not an mlrepro manifest"),
        "folder": (["diff", str(tmp_path), str(tmp_path)], "neither a manifest.json nor a W&B run"),
        "unreachable server": (
            ["check", hex_id, "--tracking-uri", dead],
            f"cannot reach the MLflow server at {dead}: connection refused",
        ),
        "missing store": (
            ["show", hex_id, "--tracking-uri", f"sqlite:///{tmp_path}/none.db"],
            "no MLflow database at",
        ),
        "bad track": (["check", hex_id, "--track", "staging"], "staging"),
    }
    for label, (args, expected) in cases.items():
        _assert_one_line_exit_2(label, args, expected, tmp_path)


def test_help_teaches_by_example() -> None:
    for command in ("show", "diff", "check", "promote"):
        proc = run_cli(command, "--help")
        assert proc.returncode == 0
        assert "Examples:" in proc.stdout and f"mlrepro {command} " in proc.stdout
        assert "RUN is an MLflow run id" in proc.stdout.replace("\n", " ").replace("  ", " ")
