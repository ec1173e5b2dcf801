"""Shared fixtures: a database on SQLite and on a real PostgreSQL, and a core built on it.

PostgreSQL: `HELPDESK_TEST_POSTGRES_URL` names a server to use (its user must be allowed to create
databases); otherwise the suite starts a throwaway cluster of Debian's `postgresql` package on a free
loopback port. When neither is possible the PostgreSQL tests are skipped on a developer's machine and fail
under `CI=true`, where a missing component is an error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """A component the test needs is not here: a failure in CI, a skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing component is a failure)", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql')")
        self.dir = Path(tempfile.mkdtemp(prefix="hd-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run(
            [*self.as_user, str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        self.base = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_base():
    """`postgresql+psycopg://user@host:port` of a server where the tests may create databases."""
    url = os.environ.get("HELPDESK_TEST_POSTGRES_URL")
    if url:
        yield url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    try:
        server = PostgresServer()
    except (RuntimeError, subprocess.CalledProcessError, KeyError) as e:
        detail = getattr(e, "stderr", b"") or b""
        missing(f"no PostgreSQL to test against: {e} {detail.decode(errors='replace')[:300]}")
    yield server.base
    server.stop()


def _new_pg_database(base: str) -> str:
    import psycopg

    name = f"hd_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"
    return _new_pg_database(request.getfixturevalue("postgres_base"))


def make_config(tmp_path: Path, database_url: str | None = None, **sections):
    from gateway.config import load_config

    env = {
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data"),
        "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{CONFIG_DIR / "assets.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{CONFIG_DIR / "users.csv"}"',
    }
    if database_url:
        env["HELPDESK_GATEWAY__STORAGE__URL"] = database_url
    for key, value in sections.items():
        env["HELPDESK_GATEWAY__" + key.upper()] = value
    return load_config(None, environ=env)


@pytest.fixture
def core(tmp_path, database_url):
    """A core on a fresh database of each kind, with the sample inventory and directory imported."""
    from gateway.app import build_core, seed_directory

    c = build_core(make_config(tmp_path, database_url))
    seed_directory(c)
    yield c
    c.close()


@pytest.fixture
def sqlite_core(tmp_path):
    from gateway.app import build_core, seed_directory

    c = build_core(make_config(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"))
    seed_directory(c)
    yield c
    c.close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
