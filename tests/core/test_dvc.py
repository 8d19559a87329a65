"""DVC links: a tracked path records DVC's md5 and the file it came from, read from YAML alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from repro_common import track_data
from repro_common.dvc import dvc_record
from support.inputs_registry import clear_registry
from support.procs import run_python


@pytest.fixture(autouse=True)
def _empty_registry():
    clear_registry()
    yield
    clear_registry()


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A project laid out as `dvc add` and `dvc repro` leave it (files written by hand)."""
    root = tmp_path / "project"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text("")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text("x\n1\n")
    (raw / "b.csv").write_text("x\n2\n")
    (root / "data" / "raw.dvc").write_text(
        "outs:\n"
        "- md5: 3c2a1f4e5d6b7a8c9d0e1f2a3b4c5d6e.dir\n"
        "  size: 8\n"
        "  nfiles: 2\n"
        "  hash: md5\n"
        "  path: raw\n"
    )
    (root / "labels.csv").write_text("y\n0\n")
    (root / "labels.csv.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 4\n  path: labels.csv\n"
    )
    features = root / "pipeline" / "out" / "features.parquet"
    features.parent.mkdir(parents=True)
    features.write_bytes(b"PAR1")
    (root / "pipeline" / "dvc.yaml").write_text(
        "stages:\n"
        "  featurize:\n"
        "    cmd: python featurize.py\n"
        "    wdir: out\n"
        "    outs:\n"
        "    - features.parquet\n"
    )
    (root / "pipeline" / "dvc.lock").write_text(
        "schema: '2.0'\n"
        "stages:\n"
        "  featurize:\n"
        "    cmd: python featurize.py\n"
        "    deps:\n"
        "    - path: ../../data/raw\n"
        "      md5: 3c2a1f4e5d6b7a8c9d0e1f2a3b4c5d6e.dir\n"
        "    outs:\n"
        "    - path: features.parquet\n"
        "      md5: feedfacefeedfacefeedfacefeedface\n"
        "      size: 4\n"
    )
    return root


def test_a_dvc_added_folder_links_to_its_dvc_file(dvc_repo: Path) -> None:
    assert dvc_record(dvc_repo / "data" / "raw") == {
        "md5": "3c2a1f4e5d6b7a8c9d0e1f2a3b4c5d6e.dir",
        "dvc_file": "data/raw.dvc",
        "path": "data/raw",
    }
    assert dvc_record(dvc_repo / "labels.csv") == {
        "md5": "0123456789abcdef0123456789abcdef",
        "dvc_file": "labels.csv.dvc",
        "path": "labels.csv",
    }


def test_a_file_inside_a_tracked_folder_links_to_the_folder_version(dvc_repo: Path) -> None:
    record = dvc_record(dvc_repo / "data" / "raw" / "a.csv")
    assert record is not None
    assert record["path"] == "data/raw" and record["dvc_file"] == "data/raw.dvc"


def test_a_pipeline_output_links_to_dvc_lock_relative_to_the_stage_wdir(dvc_repo: Path) -> None:
    assert dvc_record(dvc_repo / "pipeline" / "out" / "features.parquet") == {
        "md5": "feedfacefeedfacefeedfacefeedface",
        "dvc_file": "pipeline/dvc.lock",
        "path": "pipeline/out/features.parquet",
    }


def test_the_first_lock_format_is_read_too(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "model.pt").write_bytes(b"w")
    (tmp_path / "dvc.lock").write_text(
        "train:\n  cmd: python train.py\n  outs:\n  - path: model.pt\n    md5: aa11aa11aa11aa11aa11aa11aa11aa11\n"
    )
    record = dvc_record(tmp_path / "model.pt")
    assert record == {
        "md5": "aa11aa11aa11aa11aa11aa11aa11aa11",
        "dvc_file": "dvc.lock",
        "path": "model.pt",
    }


def test_untracked_paths_and_broken_dvc_files_give_none(dvc_repo: Path) -> None:
    (dvc_repo / "notes.txt").write_text("hi")
    assert dvc_record(dvc_repo / "notes.txt") is None
    (dvc_repo / "notes.txt.dvc").write_text("outs: [unclosed\n")
    assert dvc_record(dvc_repo / "notes.txt") is None
    (dvc_repo / "notes.txt.dvc").write_text("outs:\n- path: other.txt\n  md5: 00\n")
    assert dvc_record(dvc_repo / "notes.txt") is None


def test_the_search_stops_at_the_dvc_repository_root(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  s:\n    cmd: x\n    outs:\n    - path: inner/file.bin\n      md5: 99\n"
    )
    inner = tmp_path / "inner"
    (inner / ".dvc").mkdir(parents=True)
    (inner / "file.bin").write_bytes(b"1")
    assert dvc_record(inner / "file.bin") is None


def test_track_data_records_the_dvc_link_with_the_fingerprint(dvc_repo: Path) -> None:
    item = track_data(dvc_repo / "data" / "raw", "raw")
    assert item["kind"] == "directory" and item["files"] == 2
    assert item["dvc"]["md5"] == "3c2a1f4e5d6b7a8c9d0e1f2a3b4c5d6e.dir"
    assert item["dvc"]["dvc_file"] == "data/raw.dvc"
    assert track_data(b"bytes", "inline")["dvc"] is None


def test_the_dvc_package_is_never_needed(dvc_repo: Path) -> None:
    out = run_python(
        f"""
        import sys
        sys.modules["dvc"] = None  # importing dvc would now fail
        from repro_common.dvc import dvc_record
        print(dvc_record({str(dvc_repo / "labels.csv")!r})["md5"])
        """
    ).stdout.strip()
    assert out == "0123456789abcdef0123456789abcdef"
    assert "dvc" not in sys.modules or sys.modules["dvc"] is None
