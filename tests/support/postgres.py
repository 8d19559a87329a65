"""A throwaway PostgreSQL cluster on 127.0.0.1: what a team's MLflow server really stores runs in.

The cluster lives in its own temp dir (not pytest's tmp_path: that sits under a 0700
folder the `postgres` user cannot enter) and is stopped and removed afterwards.
`initdb` refuses to run as root, so as root every server command runs as the
`postgres` system user through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.procs import free_port

SERVICE_USER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl, if any."""
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        version = Path(path).parent.name
        if os.access(os.path.join(path, "initdb"), os.X_OK) and os.access(
            os.path.join(path, "pg_ctl"), os.X_OK
        ):
            try:
                found.append((float(version), Path(path)))
            except ValueError:
                continue
    return max(found)[1] if found else None


def missing_reason() -> str | None:
    """Why a cluster cannot start here (for pytest.skip), or None when it can."""
    if postgres_bin_dir() is None:
        return "PostgreSQL binaries not found under /usr/lib/postgresql/<version>/bin (apt-get install postgresql)"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user for initdb"
    return None


def _as_service_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], timeout: float = 120) -> None:
    proc = subprocess.run(_as_service_user(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl cannot stop it: never leave a server behind."""
    import signal

    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


@contextmanager
def postgres_cluster(database: str = "mlflow") -> Iterator[str]:
    """Start a fresh cluster, create `database`, yield its `postgresql+psycopg2://` URI; stop and delete."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = postgres_bin_dir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="mlrepro-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVICE_USER, SERVICE_USER)
    data = root / "data"
    port = free_port()
    started = False
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        # A test database: durability off, it is thrown away anyway.
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
        started = True
        _run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                database,
            ]
        )
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the team extra ships psycopg2.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            try:
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    timeout=60,
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)
