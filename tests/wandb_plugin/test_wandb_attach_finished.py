"""attach() after run.finish() leaves the finished run's record exactly as it was."""

from __future__ import annotations

import warnings
from pathlib import Path

import wandb_repro_plugin as repro
from repro_common.cli import main
from support.wandb_log import read_run


def files_of(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(run_dir)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted((run_dir / "files").rglob("*"))
        if path.is_file()
    }


def test_attach_on_a_finished_run_writes_nothing_and_says_so(new_run, git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    run = new_run()
    repro.seed_everything(9)
    assert repro.attach(run) is not None
    run.finish()
    run_dir = Path(run.dir).parent
    read_run(run_dir)  # the log is complete
    before = files_of(run_dir)
    assert "files/repro/manifest.json" in before

    repro.seed_everything(10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert repro.attach(run) is None
    ours = [str(w.message) for w in caught if issubclass(w.category, repro.ReproWarning)]
    assert len(ours) == 1 and "is finished" in ours[0] and "\n" not in ours[0]

    assert files_of(run_dir) == before  # same bytes, same mtimes: nothing was written
    assert read_run(run_dir).config["repro"]["seed"] == 9
    assert main(["check", str(run_dir)]) == 0  # it still passes its own tamper check
