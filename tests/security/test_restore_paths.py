"""Restored inputs stay inside `reproduce --dir`, whatever links the recorded diff creates."""

from __future__ import annotations

import json
from pathlib import Path

from support.git import git, make_repo


def _symlink_patch(tmp_path: Path, name: str, points_to: Path) -> bytes:
    """A real `git diff` that creates the symlink `name` -> `points_to`."""
    scratch = make_repo(tmp_path / "scratch", {"README.md": "x\n"})
    (scratch / name).symlink_to(points_to)
    git(scratch, "add", "-A")
    return (git(scratch, "diff", "--cached", "--binary") + "\n").encode()


def test_a_symlink_from_the_diff_cannot_carry_a_restored_snapshot_outside(
    make_mlflow_run, tmp_path: Path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    run = make_mlflow_run(track="production", ignored_inputs={"data/train.csv": "1,2\n3,4\n"})
    assert any(p.startswith("repro/data/") for p in run.manifest()["artifacts"])
    (run.repo / "data" / "train.csv").unlink()  # gone: the snapshot is what brings it back
    run.write(
        "repro/code.diff",
        run.read("repro/code.diff") + _symlink_patch(tmp_path, "data", outside),
    )

    out = run.cli(
        "reproduce",
        run.run_id,
        "--dir",
        str(tmp_path / "rebuilt"),
        "--run",
        "--trust-record",
        "--json",
    )

    assert not list(outside.iterdir()), "a restored file was written outside --dir"
    assert out.returncode == 1, out.stdout + out.stderr
    verdict = json.loads(out.stdout)["verdict"]
    refused = [c for c in verdict["checks"] if c["reproduced"] == "refused"]
    assert refused and "outside" in refused[0]["note"]


def test_an_untampered_snapshot_is_restored_inside(make_mlflow_run, tmp_path: Path):
    run = make_mlflow_run(track="production", ignored_inputs={"data/train.csv": "1,2\n3,4\n"})
    (run.repo / "data" / "train.csv").unlink()

    out = run.cli("reproduce", run.run_id, "--dir", str(tmp_path / "rebuilt"), "--run", "--json")

    assert out.returncode == 0, out.stdout + out.stderr
    restored = tmp_path / "rebuilt" / "code" / "data" / "train.csv"
    assert restored.read_text() == "1,2\n3,4\n" and not restored.is_symlink()
