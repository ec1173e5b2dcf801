"""`helpdesk-gateway backup DEST` while 200 mails are being received over SMTP, then `restore SRC` into an empty
data dir: every ticket answered before the backup began is there, and every raw mail, attachment and call
recording the restored database names is in the restored blob store and verifies by its SHA-256."""

from __future__ import annotations

import hashlib
import os
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from channels.email.receiver import run_in_thread
from tests.conftest import CONFIG_DIR, _new_pg_database, free_port, make_config

CLI = [sys.executable, "-m", "gateway.cli"]


def cli(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(data_dir), "HELPDESK_GATEWAY__STORAGE__URL": url,
           "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{CONFIG_DIR / "users.csv"}"'}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)


def test_backup_during_intake_and_restore(tmp_path, database_url, request):
    from gateway.app import build_core, seed_directory
    from gateway.service import load_channel
    from ticketing.contact import Attachment, Channel, Contact, Sender

    core = build_core(make_config(tmp_path, database_url, email__smtp__port=str(free_port()), email__smtp__parse_workers="0"))
    seed_directory(core)
    recordings = []
    for n in range(5):  # calls: their recordings are blobs too
        ref = core.blobs.put(os.urandom(8000) + f"call {n}".encode())
        recordings.append(ref.sha256)
        core.intake.submit(Contact(Channel.VOICE, f"call-{n}", sender=Sender(phone=f"+39 055 000 {n:04d}"),
                                   attachments=(Attachment(f"answer-{n}.wav", "audio/wav", ref, kind="recording", question="anomaly"),)))
    channel, stop = run_in_thread(lambda: load_channel(core, "email"))
    answered: list[tuple[float, str]] = []

    def send_all():
        with smtplib.SMTP("127.0.0.1", core.config.email.smtp.port, timeout=60) as s:
            for n in range(200):
                body = (f"From: u{n}@regione.example.it\r\nSubject: guasto {n}\r\nMessage-ID: <b-{n}@x>\r\n"
                        f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
                        f"Content-Type: text/plain\r\n\r\nIl pc {n} non parte.\r\n--BB\r\nContent-Type: application/octet-stream\r\n"
                        f"Content-Disposition: attachment; filename=log{n}.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                        f"{hashlib.sha256(str(n).encode()).hexdigest()}\r\n--BB--\r\n")
                s.sendmail(f"u{n}@regione.example.it", ["assistenza@example.org"], body.encode())
                answered.append((time.monotonic(), f"<b-{n}@x>"))

    sender = threading.Thread(target=send_all)
    try:
        sender.start()
        while len(answered) < 40:
            time.sleep(0.01)
        started = time.monotonic()
        dest = tmp_path / "backup"
        r = cli(tmp_path / "data", database_url, "backup", str(dest))
        assert r.returncode == 0, r.stderr
        done_before = {mid for t, mid in answered if t < started}
        assert len(answered) < 200 or done_before  # it ran while mail was arriving
        sender.join(120)
        assert len(answered) == 200
    finally:
        stop()
        core.close()

    restored_url = (f"sqlite:///{tmp_path / 'restored' / 'helpdesk.sqlite3'}" if database_url.startswith("sqlite")
                    else _new_pg_database(request.getfixturevalue("postgres_base")))
    r = cli(tmp_path / "restored", restored_url, "restore", str(dest))
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path / "restored", restored_url, "tickets", "list", "--limit", "1")
    assert r.returncode == 0, r.stderr  # the restored database opens at the current schema

    engine = create_engine(restored_url.replace("postgresql+psycopg", "postgresql+psycopg"))
    with engine.connect() as c:
        ids = {row[0] for row in c.execute(text("SELECT rfc_message_id FROM messages WHERE direction = 'in'"))}
        raws = [row[0] for row in c.execute(text("SELECT raw_sha256 FROM messages WHERE raw_sha256 IS NOT NULL"))]
        atts = [(row[0], row[1]) for row in c.execute(text("SELECT sha256, kind FROM attachments WHERE sha256 IS NOT NULL"))]
        tickets = c.execute(text("SELECT count(*) FROM tickets")).scalar()
    engine.dispose()
    assert done_before <= ids  # every mail answered 250 before the backup began is in it
    assert tickets >= 5 + len(done_before)
    blobs = tmp_path / "restored" / "blobs"
    for digest in [*raws, *(s for s, _ in atts)]:
        path = blobs / digest[:2] / digest[2:4] / digest
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert {s for s, k in atts if k == "recording"} == set(recordings)
    assert sum(1 for _, k in atts if k == "attachment") >= len(done_before)
