"""No secret reaches a record: canaries planted where real credentials live must not come out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from repro_common.redact import REDACTED, is_secret_name, redact_argv, redact_uri, strip_userinfo
from support.git import make_repo
from support.procs import clean_env

CANARY = "CANARY7f3a9e"

TRAIN = """\
import os, sys
from pathlib import Path
import helpers
import repro_common
from repro_common.artifacts import artifact_files

# The canaries are really there for the process to leak.
assert "{canary}" in " ".join(sys.argv) and "{canary}" in os.environ["MY_API_TOKEN"]
manifest = repro_common.capture()
out = Path(os.environ["OUT_DIR"])
for name, content in artifact_files(manifest).items():
    (out / name).write_bytes(content)
print("captured", manifest.digest)
"""


def test_canaries_in_remote_env_and_argv_appear_nowhere_in_the_run_files(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "project",
        {
            "train.py": TRAIN.replace("{canary}", "CANARY"),
            "helpers.py": "X = 1\n",
            ".gitignore": "__pycache__/\n",
        },
        remote=f"https://deploy-user:{CANARY}@git.example.com/team/project.git",
    )
    (repo / "helpers.py").write_text("X = 2\nimport scratch\n")  # dirty: a code.diff is written
    (repo / "scratch.py").write_text("Y = 3\n")  # untracked and imported: travels in code.diff
    out = tmp_path / "out"
    out.mkdir()
    env = clean_env(
        OUT_DIR=str(out),
        MY_API_TOKEN=f"{CANARY}-env",
        AWS_SECRET_ACCESS_KEY=f"{CANARY}-aws",
        MLFLOW_TRACKING_URI=f"https://admin:{CANARY}@mlflow.example.com",
        OMP_NUM_THREADS="1",
    )
    args = [
        "--api-key", f"{CANARY}-space",
        f"--password={CANARY}-equals",
        f"DB_TOKEN={CANARY}-assign",
        f"db.password={CANARY}-hydra",
        f"--data=https://reader:{CANARY}@data.example.com/set.tar",
        "--epochs", "2",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(repo / "train.py"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "captured blake3:" in proc.stdout
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(files) == {"manifest.json", "requirements.txt", "code.diff"}
    for name, content in files.items():
        assert CANARY.encode() not in content, f"{name} leaks the canary"
    manifest = files["manifest.json"].decode()
    assert "git.example.com/team/project.git" in manifest  # the remote is kept, without credentials
    assert '"--epochs"' in manifest and '"***"' in manifest
    assert b"+Y = 3" in files["code.diff"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api-key", "s3cr3t", "--lr", "0.1"], ["--api-key", REDACTED, "--lr", "0.1"]),
        (["--api-key=s3cr3t"], [f"--api-key={REDACTED}"]),
        (["--hf_token", "s"], ["--hf_token", REDACTED]),
        (["--clientSecret", "s"], ["--clientSecret", REDACTED]),
        (["API_TOKEN=s", "MY_PASSWORD=s"], [f"API_TOKEN={REDACTED}", f"MY_PASSWORD={REDACTED}"]),
        (["db.password=s", "+trainer.wandb_key=s"], [f"db.password={REDACTED}", f"+trainer.wandb_key={REDACTED}"]),
        (["--token", "--verbose"], ["--token", "--verbose"]),  # a flag, not a value
        (["ghp_" + "a" * 36], [REDACTED]),
        (["--src", "https://u:pw@host/x.git"], ["--src", "https://u@host/x.git"]),
        # Ordinary ML arguments are left alone.
        (["--key-dim", "64", "--max-tokens", "512", "--tokenizer", "bpe", "--keys", "a,b"],
         ["--key-dim", "64", "--max-tokens", "512", "--tokenizer", "bpe", "--keys", "a,b"]),
        (["lr=0.1", "model.num_tokens=8"], ["lr=0.1", "model.num_tokens=8"]),
    ],
)  # fmt: skip
def test_argv_secret_forms(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@github.com/org/x.git", "https://github.com/org/x.git"),
        (
            "https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/org/x.git",
            "https://github.com/org/x.git",
        ),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
        ("ssh://git:pw@host:22/x.git", "ssh://git@host:22/x.git"),
        ("https://github.com/org/x.git", "https://github.com/org/x.git"),
        ("/srv/git/x.git", "/srv/git/x.git"),
    ],
)
def test_remote_urls_lose_their_credentials(url: str, expected: str) -> None:
    assert strip_userinfo(url) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://mlflow@db:5432/mlflow"),
        ("https://host/?token=abc&experiment=3", "https://host/?token=***&experiment=3"),
        (
            "https://acct.blob.core.windows.net/c?sv=2022&sig=abc&sp=r",
            "https://acct.blob.core.windows.net/c?sv=***&sig=***&sp=***",
        ),
        (
            "s3://bucket/path?X-Amz-Signature=abc&X-Amz-Credential=k",
            "s3://bucket/path?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        (
            "http://u:p@host:5000?password=x&apikey=y&secret=z",
            "http://u@host:5000?password=***&apikey=***&secret=***",
        ),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_tracking_uris_lose_passwords_and_tokens(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_secret_names() -> None:
    for name in (
        "API_KEY",
        "apiKey",
        "password",
        "MY_API_TOKEN",
        "aws_secret_access_key",
        "db-passwd",
        "auth",
    ):
        assert is_secret_name(name), name
    for name in ("key_dim", "max_tokens", "tokenizer", "monkey", "keys", "passes", "lr"):
        assert not is_secret_name(name), name
