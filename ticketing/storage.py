"""Storage: the database engine (SQLite in WAL mode or PostgreSQL), its migrations, and the blob store.

SQLite is the embedded default. Each connection is put in WAL mode with `synchronous=FULL` so a commit is on
disk when it returns: the channels answer "accepted" (SMTP 250, HTTP 201) only after the commit, so a commit
must survive a power cut, not only a crash of the process.

Only write transactions take SQLite's write lock at BEGIN (`BEGIN IMMEDIATE`), so two writers never fail
upgrading a read snapshot, and wait for the lock (busy timeout) rather than fail. A write transaction is one
opened explicitly (`with sessions() as s, s.begin():`, `transaction(sessions)`); a session that only reads
(autobegin) opens a deferred `BEGIN` and reads its WAL snapshot beside the writers: the desk's poll, the
pollers of webhooks and outbox and a held-open report never queue behind intake, nor make it wait.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransactionOrigin, sessionmaker

from .contact import BlobRef

MIGRATIONS = Path(__file__).with_name("migrations")


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'helpdesk.sqlite3'}"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> Engine:
    """Build the engine for `url`, with the SQLite pragmas that make it durable and multi-process safe."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # pysqlite's own transaction handling is off (isolation_level=None): SQLAlchemy's BEGIN is ours. Deferred:
        # a reader takes no lock; `make_sessionmaker` turns an explicit (write) transaction into BEGIN IMMEDIATE.
        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions on `engine`. On SQLite, `session.begin()` (a write transaction) takes the write lock at once."""
    maker = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        event.listen(maker, "after_begin", _write_lock_for_explicit_begin)
    return maker


def _write_lock_for_explicit_begin(session: Session, transaction, connection) -> None:
    root = transaction
    while root.parent is not None:
        root = root.parent
    if root.origin is SessionTransactionOrigin.BEGIN:
        # The deferred BEGIN just emitted has read nothing yet: trading it for BEGIN IMMEDIATE costs no I/O.
        connection.exec_driver_sql("ROLLBACK")
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (Alembic)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    """The newest migration, read from the version files' `revision` / `down_revision` lines (loading
    Alembic's script directory costs half a second, paid by every CLI command otherwise)."""
    import re

    revisions, parents = set(), set()
    for f in (MIGRATIONS / "versions").glob("*.py"):
        text = f.read_text(encoding="utf-8")
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)", text, re.M)
        down = re.search(r"^down_revision\s*=\s*['\"]([^'\"]+)", text, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, session.begin():
        yield session


class BlobStore:
    """Content-addressed files under `root`: `ab/cd/abcd…` named by the SHA-256 of their bytes.

    A write goes to a temporary file in the same directory, is fsynced, then renamed into place and the
    directory fsynced: a blob either exists whole or not at all. Writing the same bytes twice is a no-op.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, sync: bool = True) -> BlobRef:
        """Store `data`; durable on return, or with `sync=False` once `flush()` returned (a group flush: the
        intake's committer flushes once per batch before it commits, instead of two fsyncs per blob)."""
        digest = hashlib.sha256(data).hexdigest()
        self._store(digest, lambda dst: dst.write(data), sync=sync)
        return BlobRef(digest, len(data))

    def flush(self) -> None:
        """Make every blob written so far durable, by any process: syncfs(2) of the store's filesystem."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs({self.root}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def put_file(self, path: Path) -> BlobRef:
        """Store a file's bytes (a finished recording, an upload) reading a chunk at a time."""
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)

        def copy(dst):
            with open(path, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)

        self._store(h.hexdigest(), copy)
        return BlobRef(h.hexdigest(), size)

    def _store(self, digest: str, write, sync: bool = True) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as dst:
                write(dst)
                dst.flush()
                if sync:
                    os.fsync(dst.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync:
            _fsync_dir(target.parent)

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syncfs = _libc.syncfs
_syncfs.argtypes = [ctypes.c_int]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
