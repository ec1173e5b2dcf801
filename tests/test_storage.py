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
