"""`mlrepro fingerprint`: what a user types, what they read, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import blake3

from support.procs import clean_env, run_cli, run_python


def env() -> dict[str, str]:
    return clean_env(MLREPRO_CACHE_DIR=os.environ["MLREPRO_CACHE_DIR"])


def make_data(root: Path) -> Path:
    (root / "train").mkdir(parents=True)
    (root / "train" / "x.csv").write_text("a,b\n1,2\n")
    (root / "labels.txt").write_text("cat\n")
    return root


def test_fingerprints_print_one_line_per_path(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    single = root / "labels.txt"
    proc = run_cli("fingerprint", str(root), str(single), env=env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("blake3:") and f"  {root}  (2 files, 12 B)" in lines[0]
    expected = "blake3:" + blake3.blake3(b"cat\n").hexdigest()
    assert lines[1] == f"{expected}  {single}  (4 B)"
    assert proc.stderr == ""


def test_json_output_lists_kind_size_files_and_entries(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    proc = run_cli("fingerprint", str(root), "--json", "--files", "--no-cache", env=env())
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert record["kind"] == "directory" and record["files"] == 2 and record["size_bytes"] == 12
    assert [e["path"] for e in record["entries"]] == ["labels.txt", "train/x.csv"]
    assert record["dvc"] is None
    assert not (Path(os.environ["MLREPRO_CACHE_DIR"]) / "fingerprints-v1.sqlite3").exists()


def test_a_missing_path_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    missing = tmp_path / "nope"
    proc = run_cli("fingerprint", str(root), str(missing), env=env())
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"mlrepro: error: {missing}: no such file or directory"
    ]


def test_a_symlink_loop_exits_2_naming_the_path_without_hanging(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    loop = root / "train" / "again"
    loop.symlink_to(root, target_is_directory=True)
    started = time.monotonic()
    proc = run_cli("fingerprint", str(root), env=env(), timeout=180)
    took = time.monotonic() - started
    # Refused on first sight: a walk that followed the loop down would take far longer.
    assert took < 20, f"the loop took {took:.1f}s to refuse"
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("mlrepro: error: ") and str(loop) in line and "loop" in line


def test_a_dangling_link_exits_2_naming_it(tmp_path: Path) -> None:
    root = make_data(tmp_path / "data")
    (root / "gone").symlink_to(tmp_path / "missing-target")
    proc = run_cli("fingerprint", str(root), env=env())
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert str(root / "gone") in line and "broken symbolic link" in line


def test_no_arguments_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("fingerprint", env=env())
    assert proc.returncode == 2
    assert "PATH" in proc.stderr


def test_large_inputs_show_a_progress_bar_on_stderr(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(os.urandom(4 << 20))
    proc = run_python(
        f"""
        import sys
        import repro_common.cli.fingerprint as command
        from repro_common.cli import main
        command.PROGRESS_MIN_BYTES = 1 << 20
        sys.exit(main(["fingerprint", "--no-cache", {str(target)!r}]))
        """,
        env={**env(), "FORCE_COLOR": "1", "COLUMNS": "120"},
    )
    assert proc.stdout.startswith("blake3:")
    assert "MB" in proc.stderr or "━" in proc.stderr, proc.stderr
    small = run_cli("fingerprint", str(target), env={**env(), "FORCE_COLOR": "1"})
    assert small.returncode == 0 and small.stderr == ""
