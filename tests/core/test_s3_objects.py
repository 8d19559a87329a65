"""S3 objects and prefixes as run inputs, on moto's S3 server (the team-scale tests' store):
versioning on and off, an object overwritten, a version deleted."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import repro_common
from repro_common.fingerprints import fingerprint, s3_objects
from repro_common.manifest import Manifest
from repro_common.table_inputs import (
    check_table,
    describe_table,
    label,
    reopen_table,
    table_kind,
    version_variable,
)
from support.procs import clean_env, free_port, run_cli, train
from support.s3 import TEST_CREDENTIALS, S3Store

pytestmark = [pytest.mark.slow]  # starts moto_server
pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    s3 = S3Store(tmp_path_factory.mktemp("moto"), bucket="plain")
    s3.start()
    client = s3.client()
    client.create_bucket(Bucket="kept")
    client.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
    try:
        yield s3
    finally:
        s3.stop()


@pytest.fixture
def s3(store: S3Store, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A client on the store, with the variables a user's process has; keys are per test."""
    for key, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", store.endpoint)
    client = store.client()
    client.test_prefix = request.node.name[:40] + "/"  # type: ignore[attr-defined]
    return client


def _gets(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every GetObject our code sends from now on (a boto3 event hook on the real client)."""
    calls: list[dict[str, Any]] = []
    client = s3_objects.s3_client()
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: calls.append(dict(params))
    )
    return calls


def _manifest(*items: dict[str, Any]) -> Manifest:
    return Manifest(
        track="production",
        environment={},
        code={},
        seeds={},
        data=list(items),
        capture={},
    )


def test_an_object_in_a_versioned_bucket_is_recorded_by_version_and_content(s3: Any) -> None:
    key = s3.test_prefix + "train.csv"
    first = s3.put_object(Bucket="kept", Key=key, Body=b"x,y\n1,2\n")["VersionId"]
    assert table_kind(f"s3://kept/{key}") == "s3"
    item = repro_common.track_data(f"s3://kept/{key}", "train")
    assert item["kind"] == "s3" and item["layout"] == "object" and item["versioned"] is True
    assert item["version_id"] == first and item["etag"] and item["size_bytes"] == 8
    # The fingerprint a copy on disk gets: blake3 of the bytes.
    assert item["fingerprint"] == fingerprint(b"x,y\n1,2\n")
    assert item["basis"] == "s3-content/1"
    assert label(item) == f"s3 s3://kept/{key} @ version {first}"

    second = s3.put_object(Bucket="kept", Key=key, Body=b"x,y\n1,3\n")["VersionId"]
    newer = repro_common.track_data(f"s3://kept/{key}", "train")
    assert newer["version_id"] == second and newer["fingerprint"] != item["fingerprint"]
    # Overwritten, the recorded version is still there: the gate passes, reproduce gets it back.
    assert check_table(item) is None
    assert reopen_table(item)["fingerprint"] == item["fingerprint"]
    # `version=` pins an older version by its id.
    pinned = repro_common.track_data(f"s3://kept/{key}", "train", version=first)
    assert pinned["version_id"] == first and pinned["fingerprint"] == item["fingerprint"]

    from repro_common.diff import diff_manifests

    changes = str(diff_manifests(_manifest(item), _manifest(newer))["data"])
    assert f"version {first}" in changes and f"version {second}" in changes


def test_re_fingerprinting_an_unchanged_object_is_answered_without_downloading(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = s3.test_prefix + "train.csv"
    s3.put_object(Bucket="kept", Key=key, Body=b"versioned")
    s3.put_object(Bucket="plain", Key=key, Body=b"unversioned")
    gets = _gets(monkeypatch)
    for bucket in ("kept", "plain"):
        first = repro_common.track_data(f"s3://{bucket}/{key}", "train")
        again = repro_common.track_data(f"s3://{bucket}/{key}", "train")
        assert again["fingerprint"] == first["fingerprint"]
    assert [call["Bucket"] for call in gets] == ["kept", "plain"]  # one read each, then cached
    assert "VersionId" in gets[0] and gets[1]["IfMatch"] == f'"{first["etag"]}"'
    # The gate's check and reproduce's reopen do not download a cached version either.
    assert check_table(first) is None and reopen_table(first)["fingerprint"] == first["fingerprint"]
    assert len(gets) == 2
    s3.put_object(Bucket="plain", Key=key, Body=b"overwritten")  # a new ETag: read again
    changed = repro_common.track_data(f"s3://plain/{key}", "train")
    assert changed["fingerprint"] == fingerprint(b"overwritten") and len(gets) == 3


def test_a_large_object_is_streamed_in_bounded_memory(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 48 << 20
    key = s3.test_prefix + "big.bin"
    payload = os.urandom(1 << 20) * 48
    s3.put_object(Bucket="plain", Key=key, Body=payload)
    expected = fingerprint(payload)
    del payload
    s3_objects.s3_client()  # the client (botocore's service model) is not what is measured
    tracemalloc.start()
    try:
        item = describe_table(f"s3://plain/{key}", "big", use_cache=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert item["fingerprint"] == expected and item["size_bytes"] == size
    # 48 MB read through a few CHUNK-sized buffers, never held whole (2 GB would add the same).
    assert peak < 4 * s3_objects.CHUNK + (4 << 20), f"peak {peak / 2**20:.1f} MiB"


def test_a_prefix_is_fingerprinted_like_the_same_folder_on_disk(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = s3.test_prefix
    files = {"a.csv": b"1\n", "sub/b.csv": b"2\n", "sub/deeper/c.bin": b"\x00" * 10}
    for rel, body in files.items():
        s3.put_object(Bucket="kept", Key=base + rel, Body=body)
        (tmp_path / "copy" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "copy" / rel).write_bytes(body)
    s3.put_object(Bucket="kept", Key=base + "sub/", Body=b"")  # a console "folder" marker
    item = repro_common.track_data(f"s3://kept/{base}", "images")
    assert item["layout"] == "prefix" and item["files"] == 3 and item["versioned"] is True
    assert item["fingerprint"] == fingerprint(tmp_path / "copy")
    assert [o["key"] for o in item["objects"]] == sorted(files)
    assert all(o["version_id"] and o["etag"] for o in item["objects"])
    # Named without its trailing slash, a prefix is still a prefix.
    assert repro_common.track_data(f"s3://kept/{base.rstrip('/')}", "images") == item
    repro_common.capture().validate()

    s3.put_object(Bucket="kept", Key=base + "sub/b.csv", Body=b"22\n")
    s3.put_object(Bucket="kept", Key=base + "new.csv", Body=b"3\n")
    moved = repro_common.track_data(f"s3://kept/{base}", "images")
    assert check_table(item) is None  # every recorded version still exists
    assert s3_objects.s3_change(item, moved) == "3 objects → 4 objects (1 changed, 1 added)"

    gone = next(o for o in item["objects"] if o["key"] == "a.csv")
    s3.delete_object(Bucket="kept", Key=base + "a.csv", VersionId=gone["version_id"])
    problem = check_table(item)
    assert problem is not None
    assert f"version {gone['version_id']} of s3://kept/{base}a.csv is gone" in problem


def test_a_deleted_version_fails_the_gate_and_stops_reproduce_before_it_runs(
    s3: Any, tmp_path: Path
) -> None:
    from repro_common.gate import data_rule
    from repro_common.reproduce import table_input_check

    key = s3.test_prefix + "train.csv"
    version = s3.put_object(Bucket="kept", Key=key, Body=b"x\n1\n")["VersionId"]
    item = repro_common.track_data(f"s3://kept/{key}", "train")
    rule = data_rule(_manifest(item), set())
    assert rule.passed and "1 by table version" in rule.reason, rule.reason
    s3.delete_object(Bucket="kept", Key=key, VersionId=version)
    rule = data_rule(_manifest(item), set())
    assert not rule.passed
    assert f"version {version} of s3://kept/{key} is gone (the version was deleted)" in rule.reason
    check = table_input_check(item)
    assert check.ok is False and check.reproduced == "gone" and "is gone" in check.note
    with pytest.warns(RuntimeWarning, match="is gone"):
        again = repro_common.track_data(f"s3://kept/{key}", "train", version=version)
    assert again["fingerprint"] is None and again["table_error"] is True


def test_an_unversioned_object_passes_the_production_gate_only_as_a_snapshot(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro_common.gate import data_rule
    from repro_common.snapshots import local_mismatch, plan_snapshot

    key = s3.test_prefix + "train.csv"
    s3.put_object(Bucket="plain", Key=key, Body=b"x,y\n1,2\n")
    item = repro_common.track_data(f"s3://plain/{key}", "train")
    assert item["version_id"] is None and item["versioned"] is False
    rule = data_rule(_manifest(item), set())  # no snapshot stored
    assert not rule.passed
    assert "without versioning, so it is not immutable" in rule.reason
    assert "mlrepro promote" in rule.reason
    plan = plan_snapshot(item)
    assert plan.status == "snapshot" and plan.path is None  # nothing downloaded to plan
    assert local_mismatch(plan) is None  # fetched now, and checked against the fingerprint
    assert plan.path is not None and plan.path.read_bytes() == b"x,y\n1,2\n"
    assert plan.files == [(plan.path, "data/train/train.csv")]

    monkeypatch.setenv("MLREPRO_SNAPSHOT_LIMIT_MB", "0.000001")
    too_large = plan_snapshot(item)
    assert too_large.status == "too_large" and "turn on versioning" in too_large.reason

    s3.put_object(Bucket="plain", Key=key, Body=b"x,y\n1,3\n")  # overwritten in place
    with pytest.raises(Exception, match="overwritten since the run.*recorded content is gone"):
        reopen_table(item)
    assert "overwritten since the run" in str(local_mismatch(plan_snapshot(item)))


def test_promote_copies_an_unversioned_object_and_the_gate_then_passes(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from repro_common.cli import main
    from repro_common.runs import load_run
    from support.git import make_repo
    from support.training_runs import script_files, train

    key = s3.test_prefix + "train.csv"
    s3.put_object(Bucket="plain", Key=key, Body=b"x,y\n1,2\n")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    repo = make_repo(tmp_path / "project", script_files())
    [made] = train(repo, [{"seed": 5, "data": {"train": f"s3://plain/{key}"}}], tracking_uri=store)
    run_id = made["mlflow"]
    assert main(["check", run_id, "--tracking-uri", store, "--track", "production", "--json"]) == 1
    rules = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rules"]}
    assert "without versioning, so it is not immutable" in rules["data"]["reason"]

    main(["promote", run_id, "--tracking-uri", store, "--allow-package", "mlrepro"])
    capsys.readouterr()
    promoted = load_run(run_id, store)
    assert promoted.read_artifact("repro/data/train/train.csv") == b"x,y\n1,2\n"
    assert main(["check", run_id, "--tracking-uri", store, "--track", "production", "--json"]) in (
        0,
        1,
    )
    rules = {r["name"]: r for r in json.loads(capsys.readouterr().out)["rules"]}
    assert rules["data"]["passed"], rules["data"]["reason"]
    assert "1 by snapshot" in rules["data"]["reason"]


TRAIN = """\
import sys

import boto3
import mlflow

import repro_common as repro

bucket, key = sys.argv[1], sys.argv[2]
version = repro.data_version("train")  # set by `mlrepro reproduce`
extra = {"VersionId": version} if version else {}
body = boto3.client("s3").get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
repro.track_data(f"s3://{bucket}/{key}", "train", version=version)
with mlflow.start_run() as run:
    mlflow.log_metric("rows", body.count(b"\\n"))
print("RUN_ID=" + run.info.run_id)
"""


def test_reproduce_hands_the_version_to_the_rerun_and_refuses_when_it_is_gone(
    s3: Any, store: S3Store, tmp_path: Path
) -> None:
    from support.git import make_repo

    key = s3.test_prefix + "train.csv"
    version = s3.put_object(Bucket="kept", Key=key, Body=b"x\n1\n2\n")["VersionId"]
    repo = make_repo(tmp_path / "project", {"train.py": TRAIN, "README.md": "demo\n"})
    env = clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = train(repo, env, "kept", key)

    s3.put_object(Bucket="kept", Key=key, Body=b"x\n9\n")  # the object moves on
    made = run_cli("reproduce", run_id, "--dir", str(tmp_path / "r1"), env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    script = (tmp_path / "r1" / "reproduce.sh").read_text()
    assert f"export {version_variable('train')}={version}\n" in script

    s3.delete_object(Bucket="kept", Key=key, VersionId=version)
    gone = run_cli("reproduce", run_id, "--run", "--dir", str(tmp_path / "r2"), env=env)
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert f"version {version} of s3://kept/{key} is gone" in " ".join(gone.stdout.split())
    assert not (tmp_path / "r2" / "reproduce.log").exists()


def test_bad_s3_inputs_are_one_line_and_exit_2(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = s3.test_prefix + "train.csv"
    s3.put_object(Bucket="plain", Key=key, Body=b"1\n")
    ok = run_cli("fingerprint", f"s3://plain/{key}")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(fingerprint(b"1\n")) and f"s3 s3://plain/{key}" in ok.stdout

    cases = {
        f"s3://plain/{key}.missing": "no such object",
        "s3://no-such-bucket/x.csv": "bucket no-such-bucket does not exist",
    }
    for uri, message in cases.items():
        proc = run_cli("fingerprint", uri)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

    down = clean_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    proc = run_cli("fingerprint", f"s3://plain/{key}", env=down)
    assert proc.returncode == 2 and "cannot reach http://127.0.0.1:" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    bare = {
        k: v for k, v in clean_env().items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"
    }
    bare.update(AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    bare.update(AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    proc = run_cli("fingerprint", f"s3://plain/{key}", env=bare)
    assert proc.returncode == 2 and "no AWS credentials" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_boto3_is_one_line_naming_the_extra(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    key = s3.test_prefix + "train.csv"
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed: import fails
    monkeypatch.setattr(s3_objects, "_clients", {})
    with pytest.warns(RuntimeWarning, match=r"pip install 'mlrepro\[s3\]'"):
        item = repro_common.track_data(f"s3://plain/{key}", "train")
    assert item["fingerprint"] is None and "boto3" in item["reason"]


def test_an_s3_failure_in_a_tracked_run_is_a_capture_error_and_the_run_goes_on(
    s3: Any, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    import mlflow_repro_plugin

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    try:
        with pytest.warns(RuntimeWarning, match="no such object"):
            repro_common.track_data(f"s3://plain/{s3.test_prefix}gone.csv", "train")
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 0.5)
        assert mlflow_repro_plugin.flush(60)
        data = MlflowClient(store).get_run(run.info.run_id).data
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    assert data.metrics["loss"] == 0.5
    errors = data.tags.get("repro.capture.errors", "")
    assert "data.train" in errors and "no such object" in errors


def test_credentials_never_reach_the_record(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = s3.test_prefix + "train.csv"
    s3.put_object(Bucket="kept", Key=key, Body=b"1\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARYKEYID00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-secret-in-env")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "canary-session-token")
    uri = f"s3://AKIAURIKEYCANARY:canary-secret-in-uri@kept/{key}?X-Amz-Signature=canarysig"
    item = repro_common.track_data(uri, "train")
    assert item["fingerprint"] == fingerprint(b"1\n") and item["uri"] == f"s3://kept/{key}"
    with pytest.warns(RuntimeWarning, match="no such object"):
        missing = repro_common.track_data(uri.replace("train.csv", "nope.csv"), "missing")
    assert missing["fingerprint"] is None
    manifest = repro_common.capture()
    manifest.validate()  # the schema knows the S3 fields
    record = manifest.to_json()
    for canary in (
        "AKIACANARYKEYID00000",
        "canary-secret-in-env",
        "canary-session-token",
        "AKIAURIKEYCANARY",
        "canary-secret-in-uri",
        "canarysig",
    ):
        assert canary not in record, canary


def test_a_delta_table_on_s3_is_still_a_delta_table(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("deltalake")
    import pyarrow as pa
    from deltalake import write_deltalake

    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    uri = f"s3://plain/{s3.test_prefix}events"
    write_deltalake(uri, pa.table({"a": [1, 2]}))
    assert table_kind(uri) == "delta" and table_kind(uri + "/") == "delta"
    assert table_kind(f"s3://plain/{s3.test_prefix}events/_delta_log/") == "s3"
    item = repro_common.track_data(uri, "events")
    assert item["kind"] == "delta" and item["version"] == 0
