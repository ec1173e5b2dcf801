"""The outbox across a kill -9: a real `helpdesk-gateway serve` with no relay takes 100 mails (it says once that
no relay is configured, and the acknowledgements wait), is killed with SIGKILL, and started again with a relay
(the shipped MailSink): every acknowledgement is sent exactly once, and the sink counts them."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from channels.email.sink import MailSink
from tests.conftest import CONFIG_DIR, ROOT, free_port, wait_for

USERS = ["mario.rossi", "giulia.bianchi", "luca.ferrari", "francesca.romano"]


def start(tmp_path: Path, smtp: int, web: int, log: Path, **env) -> subprocess.Popen:
    base = {
        **os.environ,
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data"),
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{CONFIG_DIR / "users.csv"}"',
        "HELPDESK_GATEWAY__EMAIL__SMTP__PORT": str(smtp), "HELPDESK_GATEWAY__EMAIL__SMTP__PARSE_WORKERS": "0",
        "HELPDESK_GATEWAY__WEB__PORT": str(web), "HELPDESK_GATEWAY__VOICE__ENABLED": "false",
        "HELPDESK_GATEWAY__EMAIL__ACK__PER_ADDRESS_PER_HOUR": "1000",
        "HELPDESK_GATEWAY__EMAIL__ACK__POLL_SECONDS": "0.2",
        **env,
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=base, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def up():
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{web}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, interval=0.3)
    return proc


def outbox(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "data" / "helpdesk.sqlite3") as db:
        return dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())


def test_a_kill_9_with_100_mails_waiting_then_each_is_sent_exactly_once(tmp_path):
    smtp, web, log = free_port(), free_port(), tmp_path / "serve.log"
    proc = start(tmp_path, smtp, web, log)
    try:
        with smtplib.SMTP("127.0.0.1", smtp, timeout=60) as s:
            for n in range(100):
                user = USERS[n % len(USERS)]
                s.sendmail(f"{user}@regione.example.it", ["assistenza@example.org"],
                           f"From: {user}@regione.example.it\r\nSubject: guasto {n}\r\nMessage-ID: <k-{n}@x>\r\n\r\nNon va {n}.\r\n".encode())
        assert outbox(tmp_path) == {"pending": 100}
        metrics = httpx.get(f"http://127.0.0.1:{web}/metrics").text
        assert "helpdesk_outbox_depth 100.0" in metrics
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert log.read_text().count("no mail relay is configured") == 1  # said once, at start
    listed = subprocess.run([sys.executable, "-m", "gateway.cli", "outbox", "list", "--limit", "3"], cwd=ROOT,
                            env={**os.environ, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")},
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "waiting 100" in listed.stdout and "relay: none configured" in listed.stdout

    with MailSink() as sink:
        proc = start(tmp_path, smtp, web, log, HELPDESK_GATEWAY__EMAIL__ACK__RELAY_HOST="127.0.0.1",
                     HELPDESK_GATEWAY__EMAIL__ACK__RELAY_PORT=str(sink.port))
        try:
            sink.wait(100, timeout=60)
            wait_for(lambda: outbox(tmp_path) == {"sent": 100}, timeout=30)
            time.sleep(1.0)  # nothing more comes
            got = sink.received
            assert len(got) == 100 and len({r.message["Message-ID"] for r in got}) == 100
            assert sorted(r.message["Subject"].split("]")[0] for r in got) == sorted({r.message["Subject"].split("]")[0] for r in got})
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
