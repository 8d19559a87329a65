"""Code capture: the commit, the diff on top, and the local source git does not hold."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from repro_common import code
from repro_common.code import collect_code, diff_text, new_file_patch, parse_status
from repro_common.manifest import digest_bytes
from support.git import commit_all, git, make_repo
from support.procs import run_python

CAPTURE_SCRIPT = """\
import json, sys
from repro_common import code
section = code.collect_code(errors := [])
open(sys.argv[1], "w").write(json.dumps({"code": section, "errors": errors}))
patch = code.diff_text(section)
if patch:
    open(sys.argv[2], "w").write(patch)
"""


def _capture_in(
    repo: Path, script: str = "train.py", extra: list[str] | None = None, cwd: Path | None = None
) -> tuple[dict, str | None]:
    """Run `python <script> OUT PATCH` in a fresh process, as a user's training script would."""
    out, patch = repo.parent / "section.json", repo.parent / "code.diff"
    patch.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, str(repo / script), str(out), str(patch), *(extra or [])],
        cwd=cwd or repo,
        check=True,
        capture_output=True,
        text=True,
    )
    doc = json.loads(out.read_text())
    assert doc["errors"] == []
    return doc["code"], patch.read_text() if patch.exists() else None


def _rebuild(origin: Path, commit: str, patch: str, target: Path) -> Path:
    """Clone at the recorded commit and apply the recorded patch, as `reproduce` does."""
    subprocess.run(["git", "clone", "-q", str(origin), str(target)], check=True)
    git(target, "checkout", "-q", commit)
    (target.parent / "applied.diff").write_text(patch)
    git(target, "apply", "--whitespace=nowarn", str(target.parent / "applied.diff"))
    return target


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "project",
        {
            "train.py": "import helpers\n" + CAPTURE_SCRIPT,
            "helpers.py": "SCALE = 1\n",
            "README.md": "demo\n",
            "assets/logo.bin": "\x00\x01\x02",
            ".gitignore": "local_settings.py\n*.log\n__pycache__/\n",
        },
        remote="https://ci-bot:CANARY-remote@git.example.com/team/project.git",
    )


def test_a_clean_checkout_records_commit_branch_and_remote(project: Path) -> None:
    section, patch = _capture_in(project)
    assert section["commit"] == git(project, "rev-parse", "HEAD")
    assert section["branch"] == "main"
    assert section["remote"] == "https://git.example.com/team/project.git"
    assert section["dirty"] is False and section["diff_digest"] is None and patch is None
    assert section["entry_point"] == "train.py" and section["cwd"] == "."
    assert section["root"] == str(project)
    assert section["unversioned_sources"] == [] and section["untracked"] == []


def test_staged_unstaged_binary_and_untracked_imported_code_all_come_back_with_git_apply(
    project: Path, tmp_path: Path
) -> None:
    commit = git(project, "rev-parse", "HEAD")
    (project / "helpers.py").write_text("SCALE = 2\nimport utils\n")  # unstaged
    (project / "README.md").write_text("demo, staged\n")
    git(project, "add", "README.md")  # staged
    (project / "assets" / "logo.bin").write_bytes(bytes(range(256)))  # binary
    (project / "utils.py").write_text("def lost_result():\n    return 42")  # untracked, imported
    (project / "local_settings.py").write_text("LR = 0.3\n")  # ignored, imported
    (project / "train.py").write_text("import helpers, local_settings\n" + CAPTURE_SCRIPT)
    (project / "notes.txt").write_text("not code\n")  # untracked, never imported
    (project / "run.log").write_text("ignored, not imported\n")

    section, patch = _capture_in(project)
    assert section["dirty"] is True and patch
    assert section["untracked"] == ["notes.txt", "utils.py"]
    sources = {s["path"]: s for s in section["unversioned_sources"]}
    assert set(sources) == {"utils.py", "local_settings.py"}
    assert sources["utils.py"]["digest"] == digest_bytes((project / "utils.py").read_bytes())
    assert sources["utils.py"]["size_bytes"] == len("def lost_result():\n    return 42")
    # Ignored files are where secrets live: named and digested, never carried.
    settings = sources["local_settings.py"]
    assert settings["ignored"] is True and settings["in_diff"] is False
    assert settings["digest"] == digest_bytes(b"LR = 0.3\n")
    assert "LR = 0.3" not in patch

    tracked = subprocess.run(
        ["git", "diff", "HEAD", "--binary"], cwd=project, capture_output=True, check=True
    ).stdout
    assert section["diff_digest"] == digest_bytes(tracked)
    assert section["diff_bytes"] == len(tracked)

    rebuilt = _rebuild(project, commit, patch, tmp_path / "rebuilt")
    for rel in (
        "helpers.py",
        "README.md",
        "assets/logo.bin",
        "utils.py",
        "train.py",
    ):
        assert (rebuilt / rel).read_bytes() == (project / rel).read_bytes(), rel
    assert not (rebuilt / "notes.txt").exists()
    assert not (rebuilt / "local_settings.py").exists()


def test_outside_git_commit_is_null_with_a_reason_and_no_error(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(CAPTURE_SCRIPT)
    subprocess.run([sys.executable, str(script), "s.json", "p.diff"], cwd=tmp_path, check=True)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["errors"] == []
    assert doc["code"]["commit"] is None and doc["code"]["dirty"] is None
    assert doc["code"]["reason"] == code.NOT_A_REPO
    assert doc["code"]["entry_point"] == str(script)


def test_git_missing_from_path_leaves_the_rest_of_the_code_record(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.chdir(git_repo)
    errors: list[dict] = []
    section = collect_code(errors)
    assert section["commit"] is None and "git" in section["reason"]
    assert errors == [{"collector": "code.git", "error": "git executable not found on PATH"}]
    assert section["cwd"] == "." and section["root"] == str(git_repo)


def test_a_repository_git_refuses_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    (broken / ".git").mkdir(parents=True)  # a .git with nothing in it
    monkeypatch.chdir(broken)
    errors: list[dict] = []
    section = collect_code(errors)
    assert section["commit"] is None and section["reason"].startswith("git failed")
    assert errors and errors[0]["collector"] == "code.git"


def test_a_repository_without_commits_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    monkeypatch.chdir(repo)
    errors: list[dict] = []
    section = collect_code(errors)
    assert errors == []
    assert section["commit"] is None and section["reason"] == "repository has no commits yet"
    assert section["untracked"] == ["a.py"]


def test_entry_point_and_cwd_are_relative_to_the_checkout(project: Path) -> None:
    (project / "jobs").mkdir()
    shutil.copy(project / "train.py", project / "jobs" / "train.py")
    (project / "jobs" / "helpers.py").write_text("SCALE = 1\n")
    commit_all(project)
    section, _ = _capture_in(
        project,
        "jobs/train.py",
        ["--epochs", "3", "--api-key", "CANARY-argv"],
        cwd=project / "jobs",
    )
    assert section["entry_point"] == "jobs/train.py"
    assert section["cwd"] == "jobs"
    assert section["argv"][2:] == ["--epochs", "3", "--api-key", "***"]


def test_module_entry_point_is_recorded(project: Path) -> None:
    pkg = project / "trainer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(CAPTURE_SCRIPT)
    commit_all(project)
    subprocess.run([sys.executable, "-m", "trainer", "s.json", "p.diff"], cwd=project, check=True)
    section = json.loads((project / "s.json").read_text())["code"]
    assert section["entry_module"] == "trainer"
    assert section["entry_point"] == "trainer/__main__.py"


def test_untracked_names_are_capped(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        (git_repo / f"scratch{i}.txt").write_text("x")
    monkeypatch.setattr(code, "UNTRACKED_MAX", 3)
    monkeypatch.chdir(git_repo)
    section = collect_code([])
    assert section["untracked"] == ["scratch0.txt", "scratch1.txt", "scratch2.txt"]
    assert section["untracked_truncated"] is True
    assert section["dirty"] is False  # untracked files that never ran do not make a run dirty


def test_a_huge_diff_keeps_whole_file_patches_that_still_apply(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = git(git_repo, "rev-parse", "HEAD")
    (git_repo / "README.md").write_text("small change\n")
    (git_repo / "train.py").write_text("x = 1\n" * 5000)
    monkeypatch.setattr(code, "DIFF_MAX_BYTES", 2000)
    monkeypatch.chdir(git_repo)
    section = collect_code([])
    full = subprocess.run(
        ["git", "diff", "HEAD", "--binary"], cwd=git_repo, capture_output=True, check=True
    ).stdout
    assert section["diff_truncated"] is True
    assert section["diff_bytes"] == len(full) and section["diff_digest"] == digest_bytes(full)
    patch = diff_text(section)
    assert patch and len(patch) <= 2000
    rebuilt = _rebuild(git_repo, commit, patch, tmp_path / "rebuilt")
    assert (rebuilt / "README.md").read_text() == "small change\n"


def test_modules_installed_inside_the_checkout_are_not_local_source(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = git_repo / ".venv" / "lib" / "python3" / "site-packages"
    site.mkdir(parents=True)
    (site / "vendored.py").write_text("")
    (git_repo / "scratch.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    for name, path in (("vendored", site / "vendored.py"), ("scratch", git_repo / "scratch.py")):
        module = types.ModuleType(name)
        module.__file__ = str(path)
        monkeypatch.setitem(sys.modules, name, module)
    assert code.module_files_in(str(git_repo)) == ["scratch.py"]


def _forget_patches() -> None:
    """As in another process that reads the record: no patch text in memory."""
    code._tracked_texts.clear()
    code._source_texts.clear()


def test_diff_text_is_rebuilt_from_the_checkout_only_while_it_matches(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (git_repo / "README.md").write_text("changed\n")
    monkeypatch.chdir(git_repo)
    section = collect_code([])
    _forget_patches()
    assert "+changed" in (diff_text(section) or "")
    _forget_patches()
    (git_repo / "README.md").write_text("changed again\n")
    assert diff_text(section) is None


def test_modules_imported_after_the_cached_record_are_added_on_refresh(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefetch at `import mlflow` runs before train.py imports its untracked utils.py."""
    monkeypatch.chdir(git_repo)
    errors: list[dict] = []
    section = collect_code(errors)
    assert section["unversioned_sources"] == [] and section["dirty"] is False
    code.refresh_sources(section, errors)
    assert section["unversioned_sources"] == []  # nothing new: nothing changes

    (git_repo / "late_utils.py").write_text("def helper():\n    return 7\n")
    monkeypatch.syspath_prepend(str(git_repo))
    monkeypatch.delitem(sys.modules, "late_utils", raising=False)
    __import__("late_utils")
    code.refresh_sources(section, errors)
    assert errors == []
    assert [s["path"] for s in section["unversioned_sources"]] == ["late_utils.py"]
    assert section["dirty"] is True
    assert "+def helper():" in (diff_text(section) or "")
    monkeypatch.delitem(sys.modules, "late_utils")


def test_git_status_records_are_parsed_with_renames_and_detached_heads() -> None:
    raw = (
        b"# branch.oid 0123456789abcdef0123456789abcdef01234567\0# branch.head (detached)\0"
        b"2 R. N... 100644 100644 100644 aaa bbb R100 new name.py\0old name.py\0"
        b"? spaces in name.txt\0"
    )
    state = parse_status(raw)
    assert state == {
        "head": "0123456789abcdef0123456789abcdef01234567",
        "branch": None,
        "changed": True,
        "untracked": ["spaces in name.txt"],
    }


def test_new_file_patches_round_trip_through_git_apply(git_repo: Path) -> None:
    contents = {
        "a.py": b"x = 1\n",
        "b.py": b"no newline",
        "empty.py": b"",
        "c d.py": b"with space\n\nblank\n",
    }
    patch = "".join(new_file_patch(name, data) for name, data in contents.items())
    (git_repo.parent / "new.diff").write_text(patch)
    git(git_repo, "apply", str(git_repo.parent / "new.diff"))
    for name, data in contents.items():
        assert (git_repo / name).read_bytes() == data


def test_capture_does_not_take_git_locks(project: Path) -> None:
    """A run started while the user commits must not make their git fail on index.lock."""
    (project / "helpers.py").write_text("SCALE = 3\n")
    before = os.stat(project / ".git" / "index").st_mtime_ns
    run_python("from repro_common import code; code.collect_code([])", cwd=project)
    assert os.stat(project / ".git" / "index").st_mtime_ns == before
