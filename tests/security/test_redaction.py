"""One redaction for every URL and argv value: canaries in query strings, odd passwords, headers,
DSNs and git-ignored modules never reach a run's tags or artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlflow_repro_plugin.source import safe_uri
from repro_common.manifest import digest_bytes
from repro_common.redact import REDACTED, redact_argv, redact_uri, redact_url, strip_userinfo
from support.git import make_repo
from support.records import MLFLOW_TRAIN, read_run, run_mlflow_script

CANARY = "CANARYq9x4"
C = CANARY

# One ignored module imported before MLflow (read with the first git look), one after.
TRAIN = "import local_settings\n" + MLFLOW_TRAIN.replace(
    "import repro_common\n", "import repro_common\nimport late_settings\n"
)
ARGS = [
    "--data", f"https://data.example.com/set.tar?access_token={C}a",
    f"--weights=s3://bucket/w.pt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={C}b"
    f"&X-Amz-Signature={C}c&X-Amz-Security-Token={C}d",
    f"https://acct.blob.core.windows.net/c/blob?sv=2022-11-02&se=2026&sp=r&sig={C}e",
    f"--mirror=https://user:pa/ss?w{C}f@mirror.example.com/simple",
    "--passphrase", f"{C}g",
    "--header", f"Authorization: Bearer {C}h",
    "-H", f"Authorization: token {C}i",
    "--dsn", f"Server=db;Database=x;User Id=u;Password={C}j;",
    f"db=host=db user=u password={C}k",
    f"--callback=https://app.example.com/cb#access_token={C}l&state=1",
    f"--url=https://h.example.com/x?client_secret={C}m&api_key={C}n&Signature={C}o&key={C}p",
    "--epochs", "2",
]  # fmt: skip


def _site_with_a_url_installed_package(folder: Path) -> Path:
    """A distribution installed from a URL with a token in its query (PEP 610 direct_url.json)."""
    dist = folder / "canarypkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: canarypkg\nVersion: 1.0\n")
    (dist / "direct_url.json").write_text(
        json.dumps(
            {
                "url": f"https://ci:pa/ss?{C}q@pkgs.example.com/canarypkg-1.0.tar.gz?token={C}r",
                "archive_info": {"hashes": {"sha256": "0" * 64}},
            }
        )
    )
    return folder


def test_canaries_in_urls_argv_headers_dsns_and_ignored_modules_reach_no_tag_or_artifact(
    tmp_path: Path,
) -> None:
    repo = make_repo(
        tmp_path / "project",
        {"train.py": TRAIN, ".gitignore": "*_settings.py\n__pycache__/\n"},
        remote=f"https://deploy:pa/ss?{C}s@git.example.com/team/project.git?private_token={C}t",
    )
    (repo / "local_settings.py").write_text(f'DB_PASSWORD = "{C}u"\n')  # ignored, imported
    (repo / "late_settings.py").write_text(f'API_KEY = "{C}w"\n')
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    inputs = [{"path": str(data), "name": "train", "source": f"https://b.s3.amazonaws.com/t.csv"
               f"?X-Amz-Signature={C}v&X-Amz-Expires=60"}]  # fmt: skip
    site = _site_with_a_url_installed_package(tmp_path / "site")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_mlflow_script(
        repo,
        uri,
        ARGS,
        MLREPRO_TRACK="production",  # requirements.txt is written too
        TRACK_INPUTS=json.dumps(inputs),
        PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    )
    run = read_run(uri, proc)
    assert {"repro/manifest.json", "repro/requirements.txt"} <= set(run.artifacts), run.stderr
    for name, content in {"tags+params": run.everything(), **run.artifacts}.items():
        assert CANARY.encode() not in content, f"{name} leaks the canary"

    manifest = json.loads(run.artifacts["repro/manifest.json"])
    code = manifest["code"]
    assert code["remote"] == "https://git.example.com/team/project.git?private_token=***"
    assert "--epochs" in code["argv"] and REDACTED in code["argv"]
    sources = {s["path"]: s for s in code["unversioned_sources"]}
    for name in ("local_settings.py", "late_settings.py"):
        assert sources[name]["ignored"] is True and sources[name]["in_diff"] is False
        assert sources[name]["digest"] == digest_bytes((repo / name).read_bytes())
    assert (
        "repro/code.diff" not in run.artifacts
        or b"DB_PASSWORD" not in run.artifacts["repro/code.diff"]
    )
    (package,) = [p for p in manifest["environment"]["packages"] if p["name"] == "canarypkg"]
    assert package["url"] == "https://pkgs.example.com/canarypkg-1.0.tar.gz?token=***"
    assert manifest["data"][0]["source"].endswith("?X-Amz-Signature=***&X-Amz-Expires=***")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--passphrase", "s"], ["--passphrase", REDACTED]),
        (["--password=s/x?y"], [f"--password={REDACTED}"]),
        (["--header", "Authorization: Bearer s"], ["--header", f"Authorization: {REDACTED}"]),
        (["-H", "authorization: Basic dXNlcjpwYXNzd29yZA=="], ["-H", f"authorization: {REDACTED}"]),
        (["--header=X-Api-Key: s"], [f"--header=X-Api-Key: {REDACTED}"]),
        (["-H", "Accept: application/json"], ["-H", "Accept: application/json"]),
        (["--auth-header", "Bearer s"], ["--auth-header", REDACTED]),
        (["Bearer eyJabc"], [f"Bearer {REDACTED}"]),
        (["--dsn", "Server=db;User Id=u;Password=s;"], ["--dsn", f"Server=db;User Id=u;Password={REDACTED};"]),
        (["--dsn", "host=db user=u password=s port=5432"],
         ["--dsn", f"host=db user=u password={REDACTED} port=5432"]),
        (["--odbc", "DRIVER=x;PWD={a;b};UID=u"], ["--odbc", f"DRIVER=x;PWD={REDACTED};UID=u"]),
        (["--src", "https://h/x?access_token=s&page=2"], ["--src", f"https://h/x?access_token={REDACTED}&page=2"]),
        (["--src=https://u:p/w?d@h.example.com/x"], ["--src=https://u@h.example.com/x"]),
        # Ordinary arguments with brackets, keys and tokens in their names stay as written.
        (["--max-tokens", "512", "data.files=[a.csv,b.csv]", "--key-dim", "64", "Basic run"],
         ["--max-tokens", "512", "data.files=[a.csv,b.csv]", "--key-dim", "64", "Basic run"]),
        (["--url", "https://h.example.com/pkg@1.0?page=2"], ["--url", "https://h.example.com/pkg@1.0?page=2"]),
    ],
)  # fmt: skip
def test_argv_forms(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:pa/ss@host/x.git", "https://host/x.git"),
        ("https://u:pa?ss@host/x.git", "https://host/x.git"),
        ("https://u:pa#ss@host/x.git", "https://host/x.git"),
        ("https://u:p@ss@host:8443/x.git", "https://host:8443/x.git"),
        ("https://host/x.git?private_token=s&ref=main", "https://host/x.git?private_token=***&ref=main"),
        ("https://h/x?TOKEN=s&Sig=s&X-AMZ-SIGNATURE=s&x-goog-credential=s",
         "https://h/x?TOKEN=***&Sig=***&X-AMZ-SIGNATURE=***&x-goog-credential=***"),
        ("https://h/x?passwd=s&secret=s&client_secret=s&apiKey=s",
         "https://h/x?passwd=***&secret=***&client_secret=***&apiKey=***"),
        ("ssh://git:pa/ss@host/x.git", "ssh://git@host/x.git"),
        ("git@host:org/x.git", "git@host:org/x.git"),
        ("git+https://github.com/org/x.git@v1.0", "git+https://github.com/org/x.git@v1.0"),
        ("http://localhost:5000/path@v1", "http://localhost:5000/path@v1"),
        ("https://host/x?page=2&limit=10", "https://host/x?page=2&limit=10"),
    ],
)  # fmt: skip
def test_urls_lose_userinfo_whatever_the_password_holds_and_credential_parameters(
    url: str, expected: str
) -> None:
    assert strip_userinfo(url) == expected


def test_every_printer_of_urls_uses_the_same_redaction() -> None:
    uri = "https://admin:pa/ss@mlflow.example.com/?token=s"
    assert strip_userinfo(uri) == "https://mlflow.example.com/?token=***"
    assert safe_uri(uri) == strip_userinfo(uri)
    assert (
        redact_uri(uri)
        == redact_url(uri, keep_user=True)
        == ("https://admin@mlflow.example.com/?token=***")
    )
