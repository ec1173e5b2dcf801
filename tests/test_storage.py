"""The blob store keeps each content once, whole, under its SHA-256; migrations bring an empty database to
the current schema."""

from __future__ import annotations

import hashlib

from ticketing import storage


def test_blobs_are_content_addressed_and_written_once(tmp_path):
    blobs = storage.BlobStore(tmp_path / "blobs")
    data = b"GIF89a" + bytes(range(256)) * 100
    ref = blobs.put(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert blobs.get(ref.sha256) == data
    mtime = blobs.path(ref.sha256).stat().st_mtime_ns
    assert blobs.put(data) == ref and blobs.path(ref.sha256).stat().st_mtime_ns == mtime
    src = tmp_path / "rec.wav"
    src.write_bytes(data)
    assert blobs.put_file(src) == ref
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))  # no half-written file left behind


def test_upgrade_reaches_head_from_empty(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    engine = storage.make_engine(url)
    assert storage.current_revision(engine) is None
    storage.upgrade(url)
    assert storage.current_revision(engine) == storage.head_revision()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_a_blob_written_without_its_own_fsync_is_there_and_flush_makes_it_durable(tmp_path):
    store = storage.BlobStore(tmp_path / "blobs")
    ref = store.put(b"raw mail", sync=False)
    store.flush()  # syncfs(2) of the store's filesystem: no error, and the bytes are the same
    assert store.get(ref.sha256) == b"raw mail"


def test_on_sqlite_a_reader_takes_no_write_lock_and_a_writer_takes_it_at_begin(tmp_path):
    import sqlite3

    import pytest
    from sqlalchemy import text

    path = tmp_path / "db.sqlite3"
    engine = storage.make_engine(f"sqlite:///{path}")
    sessions = storage.make_sessionmaker(engine)
    with sessions() as s, s.begin():
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)  # another process's writer, never waiting
    reader = sessions()
    try:
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0  # a read transaction, held open
        probe.execute("BEGIN IMMEDIATE")  # the write lock is free: taken at once
        probe.execute("INSERT INTO t VALUES (1)")
        probe.execute("COMMIT")
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0  # still its own snapshot
    finally:
        reader.close()
    with sessions() as writer, writer.begin():  # an explicit transaction writes: the lock is taken at BEGIN
        writer.execute(text("SELECT 1"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
    probe.close()
    engine.dispose()
