"""A throwaway PostgreSQL cluster for the benchmarks: `initdb` into a temporary directory, started on a free
loopback port, removed on `stop()`.

Same approach as `tests/conftest.py`'s `PostgresServer`, with one difference that matters for figures:
`fsync` stays on (the test suite turns it off for speed), so a PostgreSQL commit is as durable as a SQLite
commit with `synchronous=FULL` and the two are compared fairly. Needs Debian's `postgresql` package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


class PostgresCluster:
    """A cluster owned by this process; `base` is `postgresql+psycopg://postgres@127.0.0.1:PORT`."""

    def __init__(self, *, fsync: bool = True, max_connections: int = 50) -> None:
        self.bindir = _bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql')")
        self.dir = Path(tempfile.mkdtemp(prefix="hd-bench-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections={max_connections}"
                f" -c fsync={'on' if fsync else 'off'}"
            )
            self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-t", "60", "start")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.base = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], capture_output=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.decode(errors='replace')[-500:]}")

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def base_of(url: str) -> str:
    """`postgresql+psycopg://user@host:port` of a URL that may name a database; refuses a non-loopback host
    (the benchmark sends traffic to loopback only)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("postgresql+psycopg://"):
        raise ValueError(f"expected a postgresql:// URL, got {url!r}")
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"the benchmark talks to loopback only; {host!r} is not a loopback host")
    return url.rsplit("/", 1)[0] if url.count("/") > 2 else url


def _admin(base: str) -> str:
    return base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


def create_database(base: str) -> str:
    """A new empty database on the server at `base`; returns its SQLAlchemy URL."""
    import psycopg

    name = f"hd_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin(base), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(_admin(base), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_database(prefix: str, postgres: bool) -> tuple[Path, str, PostgresCluster | None]:
    """A work directory and the database URL a bench runs on: SQLite in the directory, or (`postgres`) a database
    in a throwaway cluster (fsync off, as the desk benches compare query plans, not commit durability); the
    cluster is returned for the caller to `stop()`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    if not postgres:
        return workdir, f"sqlite:///{workdir}/helpdesk.sqlite3", None
    pg = PostgresCluster(fsync=False)
    return workdir, create_database(pg.base), pg
