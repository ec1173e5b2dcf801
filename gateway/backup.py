"""Backups: `helpdesk-gateway backup DEST` and `helpdesk-gateway restore SRC`, safe while the gateway runs.

A backup is a directory:

    DEST/manifest.json       what is in it: the database kind, and the SHA-256 and size of every file
    DEST/database.sqlite3    SQLite: a consistent snapshot through SQLite's online backup API
    DEST/database.dump       PostgreSQL: `pg_dump --format=custom` (one consistent snapshot)
    DEST/blobs/…             the blob store (raw mails, attachments, recordings), content-addressed
    DEST/files/…             the data dir's own files (the web secret), when present

Order is what makes it consistent without stopping intake: the database snapshot is taken first, the blobs
are copied after it. A blob is written (fsynced) before the transaction that refers to it commits, and blobs
are never changed or removed, so every blob the snapshot names is already on disk when the copy starts
(blobs newer than the snapshot come along too, harmlessly). Each blob is checked against its name (its
SHA-256) as it is copied, so a damaged file is reported, not saved.

`restore SRC` checks every file against the manifest, then puts the database and the blobs into an empty data
dir (and, for PostgreSQL, an empty database). The schema is upgraded by the next `db upgrade` or `serve`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

FORMAT = 1
OWN_FILES = ("web-secret",)


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass
class Report:
    database: str
    blobs: int
    bytes: int
    seconds: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _libpq(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    """pg_dump / pg_restore: on the PATH, else the newest of Debian's versioned installs."""
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian package postgresql-client)")
    return str(found)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, names in os.walk(root):
        for name in names:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def backup(data_dir: Path, url: str, dest: Path) -> Report:
    t0 = time.monotonic()
    data_dir, dest = Path(data_dir), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest}: not empty; a backup goes into a new or empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}
    kind = make_url(url).get_backend_name()
    # 1. the database, one consistent snapshot
    if kind == "sqlite":
        source = make_url(url).database
        if not source or not Path(source).exists():
            raise BackupError(f"no SQLite database at {source}")
        target = dest / "database.sqlite3"
        src = sqlite3.connect(source, timeout=60)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        finally:
            dst.close()
            src.close()
    elif kind == "postgresql":
        target = dest / "database.dump"
        run = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(target), _libpq(url)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise BackupError(f"pg_dump failed: {run.stderr.strip()[-500:]}")
    else:
        raise BackupError(f"cannot back up a {kind} database")
    files[target.name] = {"sha256": _sha256(target), "size": target.stat().st_size}
    # 2. the blobs, after the snapshot (see the module docstring)
    blobs_src, blobs_dst = data_dir / "blobs", dest / "blobs"
    count = size = 0
    damaged = []
    if blobs_src.is_dir():
        for path in sorted(blobs_src.rglob("*")):
            if not path.is_file() or path.name.startswith(".tmp-"):
                continue
            rel = path.relative_to(blobs_src)
            out = blobs_dst / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            digest = _sha256(out)
            if digest != path.name:
                damaged.append(str(rel))
                out.unlink()
                continue
            files[f"blobs/{rel.as_posix()}"] = {"sha256": digest, "size": out.stat().st_size}
            count += 1
            size += out.stat().st_size
    for name in OWN_FILES:
        if (data_dir / name).is_file():
            (dest / "files").mkdir(exist_ok=True)
            shutil.copy2(data_dir / name, dest / "files" / name)
            files[f"files/{name}"] = {"sha256": _sha256(dest / "files" / name), "size": (data_dir / name).stat().st_size}
    manifest = {"format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "database": kind, "blobs": count, "damaged_blobs": damaged, "files": files}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _fsync_tree(dest)
    if damaged:
        raise BackupError(f"{len(damaged)} blob(s) do not match their SHA-256 and were left out: {damaged[:5]}")
    return Report(kind, count, size, time.monotonic() - t0)


def verify(src: Path) -> dict:
    """The manifest of a backup whose every file is there and matches its SHA-256."""
    src = Path(src)
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise BackupError(f"{src}: not a backup ({e})") from None
    bad = [name for name, f in manifest["files"].items() if not (src / name).is_file() or _sha256(src / name) != f["sha256"]]
    if bad:
        raise BackupError(f"{src}: {len(bad)} file(s) missing or damaged: {bad[:5]}")
    return manifest


def restore(src: Path, data_dir: Path, url: str) -> Report:
    t0 = time.monotonic()
    src, data_dir = Path(src), Path(data_dir)
    manifest = verify(src)
    if data_dir.exists() and any(p for p in data_dir.iterdir()):
        raise BackupError(f"{data_dir}: not empty; restore into an empty data directory")
    kind = make_url(url).get_backend_name()
    if kind != manifest["database"]:
        raise BackupError(f"the backup holds a {manifest['database']} database; the configuration names {kind}")
    data_dir.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        target = Path(make_url(url).database)
        if target.exists():
            raise BackupError(f"{target} exists; restore into an empty data directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "database.sqlite3", target)
    else:
        run = subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", _libpq(url), str(src / "database.dump")],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise BackupError(f"pg_restore failed (the database must exist and be empty): {run.stderr.strip()[-500:]}")
    size = 0
    for name, f in manifest["files"].items():
        if name.startswith("blobs/"):
            out = data_dir / name
        elif name.startswith("files/"):
            out = data_dir / name.split("/", 1)[1]
        else:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, out)
        size += f["size"]
    secret = data_dir / "web-secret"
    if secret.exists():
        secret.chmod(0o600)
    _fsync_tree(data_dir)
    return Report(kind, manifest["blobs"], size, time.monotonic() - t0)
