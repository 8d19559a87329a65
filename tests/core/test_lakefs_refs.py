"""lakeFS paths as run inputs. No lakeFS server can run here: parsing, commit pinning, the gate
and reproduce's environment are tested on the real code paths (the real `lakefs` SDK where it
is installed); the test that needs a server runs only where LAKEFS_ENDPOINT names one."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

import repro_common
from repro_common.fingerprints.lakefs_refs import parse_lakefs_uri
from repro_common.manifest import Manifest
from repro_common.table_inputs import (
    check_table,
    label,
    recorded_version,
    reopen_table,
    table_kind,
    version_variable,
)
from support.procs import free_port, run_cli

COMMIT = "a" * 40 + "0123456789abcdef01234567"
LAKEFS_VARIABLES = (
    "LAKEFS_ENDPOINT",
    "LAKEFS_ACCESS_KEY_ID",
    "LAKEFS_SECRET_ACCESS_KEY",
    "LAKECTL_SERVER_ENDPOINT_URL",
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
)
# The server the last test may use, taken before the fixture below hides it from the others.
SERVER_ENV = {name: os.environ[name] for name in LAKEFS_VARIABLES if name in os.environ}


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No lakeFS configured unless a test says so (not even a ~/.lakectl.yaml)."""
    for name in LAKEFS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKECTL_CONFIG_FILE", str(tmp_path / "no-lakectl.yaml"))


def _manifest(*items: dict[str, Any]) -> Manifest:
    return Manifest(track="production", environment={}, code={}, seeds={}, data=list(items))


def test_a_commit_pinned_path_is_recorded_as_is_without_a_server() -> None:
    uri = f"lakefs://datasets/{COMMIT}/train/part-0.parquet"
    assert table_kind(uri) == "lakefs"
    item = repro_common.track_data(uri, "train")
    assert item["kind"] == "lakefs" and item["repository"] == "datasets"
    assert item["commit"] == COMMIT and item["ref"] == COMMIT
    assert item["path"] == "train/part-0.parquet" and item["basis"] == "lakefs-commit/1"
    assert item["fingerprint"].startswith("blake3:")
    assert label(item) == f"lakefs lakefs://datasets/{COMMIT}/train/part-0.parquet"
    assert check_table(item) is None  # pinned: the production gate's data rule passes
    assert reopen_table(item)["fingerprint"] == item["fingerprint"]

    from repro_common.gate import data_rule

    assert data_rule(_manifest(item), set()).passed


def test_parsing_keeps_repository_ref_and_path_and_drops_credentials() -> None:
    ref = parse_lakefs_uri("lakefs://user:secret@repo/main/a/b.csv?token=x")
    assert (ref.repository, ref.ref, ref.path) == ("repo", "main", "a/b.csv")
    assert parse_lakefs_uri("lakefs://repo/main").path == ""
    for bad in ("lakefs://repo", "lakefs:///main/x"):
        with pytest.raises(ValueError, match="lakefs://repository/ref/path"):
            parse_lakefs_uri(bad)


def test_a_branch_without_a_server_is_recorded_unpinned_and_fails_the_gate() -> None:
    from repro_common.gate import data_rule

    with pytest.warns(RuntimeWarning, match="not resolved to its commit"):
        item = repro_common.track_data("lakefs://datasets/main/train/", "train")
    assert item["fingerprint"] is None and item["table_error"] is True
    assert "'main'" in item["reason"] and "a branch moves" in item["reason"]
    rule = data_rule(_manifest(item), set())
    assert not rule.passed and "not resolved to its commit" in rule.reason
    errors: list[dict[str, Any]] = []
    from repro_common.inputs import collect_data

    collect_data(errors)
    assert [e["collector"] for e in errors] == ["data.train"]


def test_a_record_naming_a_branch_without_its_commit_fails_the_gate() -> None:
    from repro_common.gate import data_rule

    pinned = repro_common.track_data(f"lakefs://datasets/{COMMIT}/train/", "train")
    edited = {**pinned, "ref": "main", "commit": None}
    problem = check_table(edited)
    assert problem is not None and "names lakeFS ref 'main'" in problem
    assert "without its commit" in problem
    rule = data_rule(_manifest(edited), set())
    assert not rule.passed and "without its commit" in rule.reason
    with pytest.raises(ValueError, match="without its commit"):
        reopen_table(edited)


def test_reproduce_hands_the_commit_to_the_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    from repro_common.reproduce import table_version_variables

    item = repro_common.track_data(f"lakefs://datasets/{COMMIT}/train/", "train")
    assert recorded_version(item) == COMMIT
    variables = table_version_variables(_manifest(item))
    assert variables == {version_variable("train"): COMMIT}
    monkeypatch.setenv(version_variable("train"), COMMIT)
    assert repro_common.data_version("train") == COMMIT


def test_the_s3_gateway_path_is_a_lakefs_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFS_ENDPOINT", "http://lakefs.internal:8000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://lakefs.internal:8000")
    uri = f"s3://datasets/{COMMIT}/train/part-0.parquet"
    assert table_kind(uri) == "lakefs"
    item = repro_common.track_data(uri, "train")
    assert item["kind"] == "lakefs" and item["via"] == "s3-gateway"
    assert item["commit"] == COMMIT and item["path"] == "train/part-0.parquet"
    same = repro_common.track_data(f"lakefs://datasets/{COMMIT}/train/part-0.parquet", "train")
    assert same["fingerprint"] == item["fingerprint"]


def test_a_moved_branch_shows_in_diff() -> None:
    from repro_common.diff import diff_manifests

    a = repro_common.track_data(f"lakefs://datasets/{COMMIT}/train/", "train")
    b = {**a, "commit": "b" * 64, "fingerprint": "blake3:" + "1" * 64}
    a, b = {**a, "ref": "main"}, {**b, "ref": "main"}
    changes = str(diff_manifests(_manifest(a), _manifest(b))["data"])
    assert f"commit {COMMIT[:12]}" in changes and "bbbbbbbbbbbb (ref main moved)" in changes


def test_credentials_in_the_uri_never_reach_the_record() -> None:
    uri = f"lakefs://AKIALAKECANARY:lake-secret-canary@datasets/{COMMIT}/x.csv?token=tok-canary"
    repro_common.track_data(uri, "pinned")
    with pytest.warns(RuntimeWarning):
        repro_common.track_data(uri.replace(COMMIT, "main"), "branch")
    manifest = repro_common.capture()
    manifest.validate()
    record = manifest.to_json()
    for canary in ("AKIALAKECANARY", "lake-secret-canary", "tok-canary"):
        assert canary not in record, canary


def test_an_unreachable_server_and_a_missing_package_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("lakefs")
    down = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "LAKEFS_ENDPOINT": down, "LAKEFS_ACCESS_KEY_ID": "k"}
    env["LAKEFS_SECRET_ACCESS_KEY"] = "s"
    proc = run_cli("fingerprint", "lakefs://datasets/main/x.csv", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not resolved to its commit" in proc.stderr and "cannot reach" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    ok = run_cli("fingerprint", f"lakefs://datasets/{COMMIT}/x.csv", env=env)
    assert ok.returncode == 0, ok.stderr  # a commit is recorded as is: no server asked
    assert ok.stdout.startswith("blake3:") and "basis lakefs-commit/1" in ok.stdout
    # With a server configured, the gate asks it whether the commit still exists.
    pinned = repro_common.track_data(f"lakefs://datasets/{COMMIT}/x.csv", "x")
    monkeypatch.setenv("LAKEFS_ENDPOINT", down)
    problem = check_table(pinned)
    assert problem is not None and "cannot reach" in problem and "\n" not in problem

    monkeypatch.setitem(sys.modules, "lakefs", None)  # as if not installed
    with pytest.warns(RuntimeWarning, match=r"pip install 'mlrepro\[lakefs\]'"):
        item = repro_common.track_data("lakefs://datasets/main/x.csv", "x")
    assert item["fingerprint"] is None


@pytest.mark.skipif(
    not os.environ.get("LAKEFS_ENDPOINT"),
    reason="needs a lakeFS server: set LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID, "
    "LAKEFS_SECRET_ACCESS_KEY and LAKEFS_TEST_REPO (a repository with a main branch)",
)
def test_a_branch_is_resolved_to_its_commit_on_a_real_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lakefs

    for name, value in SERVER_ENV.items():
        monkeypatch.setenv(name, value)

    repo = os.environ.get("LAKEFS_TEST_REPO", "quickstart")
    client = lakefs.Client(
        host=os.environ["LAKEFS_ENDPOINT"],
        username=os.environ.get("LAKEFS_ACCESS_KEY_ID"),
        password=os.environ.get("LAKEFS_SECRET_ACCESS_KEY"),
    )
    head = lakefs.Reference(repo, "main", client=client).get_commit().id
    item = repro_common.track_data(f"lakefs://{repo}/main/", "data")
    assert item["commit"] == head and item["ref"] == "main"
    assert check_table(item) is None
