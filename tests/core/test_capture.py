"""capture(): isolated collectors, a stable digest across processes, and never an exception."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import repro_common
from repro_common import code, environment
from repro_common.manifest import Manifest
from support.git import make_repo
from support.procs import clean_env, run_python

CAPTURE = "import repro_common; print(repro_common.capture().to_json())"


def _boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("injected fault")


def test_capture_in_a_checkout_validates_and_round_trips(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(git_repo)
    manifest = repro_common.capture()
    manifest.validate()
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.code["commit"] and manifest.code["dirty"] is False
    assert manifest.environment["packages"] and manifest.environment["digest"].startswith("blake3:")
    assert manifest.errors == []


@pytest.mark.parametrize(
    ("target", "collector", "section"),
    [
        ((environment, "collect_environment"), "environment", "environment"),
        ((code, "collect_code"), "code", "code"),
        ((environment, "collect_packages"), "environment.packages", None),
        ((environment, "collect_hardware"), "environment.hardware", None),
        ((code, "parse_status"), "code.git", None),
    ],
)
def test_a_failing_collector_costs_only_its_part(
    git_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: tuple,
    collector: str,
    section: str | None,
) -> None:
    monkeypatch.chdir(git_repo)
    monkeypatch.setattr(*target, _boom)
    manifest = repro_common.capture()
    manifest.validate()
    assert {"collector": collector, "error": "RuntimeError: injected fault"} in manifest.errors
    if section is not None:
        assert getattr(manifest, section) == {}
    other = "code" if section == "environment" else "environment"
    assert getattr(manifest, other)


def test_every_collector_failing_at_once_still_gives_a_valid_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(environment, "collect_environment", _boom)
    monkeypatch.setattr(code, "collect_code", _boom)
    from repro_common import inputs, seeds

    monkeypatch.setattr(seeds, "collect_seeds", _boom)
    monkeypatch.setattr(inputs, "collect_data", _boom)
    manifest = repro_common.capture()
    manifest.validate()
    assert {e["collector"] for e in manifest.errors} >= {"environment", "code", "seeds", "data"}


def test_unwritable_home_and_no_git_do_not_stop_a_capture(git_repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")  # nothing can be created under it, not even by root
    no_git = tmp_path / "empty-bin"
    no_git.mkdir()
    env = clean_env(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), PATH=str(no_git))
    out = run_python(CAPTURE, cwd=git_repo, env=env)
    manifest = Manifest.from_json(out.stdout)
    manifest.validate()
    assert manifest.environment["packages"]
    assert manifest.code["commit"] is None and manifest.code["root"] == str(git_repo)
    assert [e["collector"] for e in manifest.errors] == ["code.git"]


def test_two_fresh_processes_on_the_same_checkout_give_the_same_digest(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "project", {"train.py": "x = 1\n", "utils.py": "y = 2\n"})
    (repo / "train.py").write_text("x = 2\n")  # dirty: the diff is part of the digest
    first = Manifest.from_json(run_python(CAPTURE, cwd=repo).stdout)
    second = Manifest.from_json(run_python(CAPTURE, cwd=repo).stdout)
    assert first.capture["pid"] != second.capture["pid"]
    assert first.digest == second.digest
    assert first.environment["digest"] == second.environment["digest"]
    assert first.digest_matches() and second.digest_matches()

    (repo / "train.py").write_text("x = 3\n")
    third = Manifest.from_json(run_python(CAPTURE, cwd=repo).stdout)
    assert third.code["diff_digest"] != first.code["diff_digest"]
    assert third.digest != first.digest
    assert third.environment["digest"] == first.environment["digest"]


def test_a_package_version_change_changes_both_digests(tmp_path: Path) -> None:
    site = tmp_path / "extra" / "site-packages"
    info = site / "throwaway_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway_pkg\nVersion: 1.0\n")
    env = clean_env(PYTHONPATH=str(site))
    first = Manifest.from_json(run_python(CAPTURE, cwd=tmp_path, env=env).stdout)
    info.rename(site / "throwaway_pkg-1.0.1.dist-info")
    second = Manifest.from_json(run_python(CAPTURE, cwd=tmp_path, env=env).stdout)
    versions = [
        p["version"] for p in second.environment["packages"] if p["name"] == "throwaway-pkg"
    ]
    assert versions == ["1.0.1"]
    assert second.environment["digest"] != first.environment["digest"]
    assert second.digest != first.digest


def test_environment_and_code_are_collected_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = environment.collect_environment
    monkeypatch.setattr(
        environment, "collect_environment", lambda errors: calls.append(1) or real(errors)
    )
    repro_common.capture()
    repro_common.capture()
    assert len(calls) == 1
    repro_common.reset_cache()
    repro_common.capture()
    assert len(calls) == 2


def test_capture_json_has_no_process_specific_path_in_the_environment_digest(
    git_repo: Path, tmp_path: Path
) -> None:
    """Moving a checkout (another clone path, same commit) keeps the environment digest.

    The manifest digest covers the checkout path (rule 2): `reproduce` clones from it,
    so an edited path must be caught."""
    import shutil

    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(git_repo, moved)
    a = json.loads(run_python(CAPTURE, cwd=git_repo).stdout)
    b = json.loads(run_python(CAPTURE, cwd=moved).stdout)
    assert a["code"]["root"] != b["code"]["root"]
    assert a["environment"]["digest"] == b["environment"]["digest"]
    assert a["digest"] != b["digest"]
    assert os.path.isabs(a["code"]["root"])
