"""An S3-compatible object store on 127.0.0.1 (moto's standalone server) for MLflow artifacts.

The store can be stopped and started again on the same endpoint to inject faults.
moto keeps objects in memory, so a restart forgets them; `start()` recreates the
bucket so that later uploads work again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.procs import clean_env, free_port

# Dummy credentials: moto accepts anything, boto3 insists on having some.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "mlrepro-test",
    "AWS_SECRET_ACCESS_KEY": "mlrepro-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Store:
    """One `moto_server` subprocess and one bucket; `env` is what an S3 client process needs."""

    def __init__(self, workdir: Path, bucket: str = "mlflow", port: int | None = None) -> None:
        self.workdir = workdir
        self.bucket = bucket
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**TEST_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": self.endpoint}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix` in the bucket."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def start(self, timeout: float = 60) -> None:
        """Start the server (again) on the same port and make sure the bucket exists."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
        with open(self.workdir / "moto.log", "ab") as log:
            self._proc = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(**TEST_CREDENTIALS),
                start_new_session=True,
            )
        self._wait_listening(timeout)
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if self.bucket not in existing:
            client.create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        """Kill the server: clients then get connection errors, as with a store gone down."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"moto_server exited early with {self._proc.returncode}; see {self.workdir / 'moto.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"moto_server on port {self.port} not listening after {timeout}s")


@contextmanager
def moto_s3(workdir: Path, bucket: str = "mlflow") -> Iterator[S3Store]:
    """A started store with `bucket` created; stopped afterwards."""
    store = S3Store(workdir, bucket)
    store.start()
    try:
        yield store
    finally:
        store.stop()
