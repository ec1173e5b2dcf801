"""/healthz, /readyz and /metrics on the web port of a real `serve` (in a thread): ready when the database answers
and every enabled channel listens, 503 naming what is not (PostgreSQL stopped then back, the SMTP port taken by
someone else); the counters move after real contacts by SMTP and by the web form."""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
import subprocess
import threading

import httpx
import pytest

from tests.conftest import PostgresServer, free_port, make_config, missing, wait_for
from tests.test_web_support import form_fields
from tests.test_voice_twilio import gateway, prompts, recordings  # noqa: F401  (fixtures)


class Serving:
    def __init__(self, core):
        from gateway.service import serve

        self.core, self.stop = core, None
        self.error: BaseException | None = None
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            self.stop = asyncio.Event()
            task = loop.create_task(serve(core, self.stop))
            ready.set()
            try:
                loop.run_until_complete(task)
            except BaseException as e:  # noqa: BLE001
                self.error = e
            loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        wait_for(lambda: core.health is not None and "web" in core.health.channels or self.error, timeout=30)
        if self.error:
            raise self.error
        self.url = f"http://127.0.0.1:{core.health.channels['web'].port}"

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        self.core.close()


def build(tmp_path, url, **env):
    from gateway.app import build_core

    env = {"web__port": "0", "web__cookie_secure": "false", "email__smtp__port": str(free_port()),
           "email__smtp__parse_workers": "0", "voice__enabled": "false", **env}
    return build_core(make_config(tmp_path, url, **env))


def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def test_ready_and_metrics_move_with_real_contacts(tmp_path):
    s = Serving(build(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}"))
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            r = c.get("/readyz")
            assert r.status_code == 200 and r.json()["ready"] is True, r.text
            assert set(r.json()["checks"]) >= {"database", "email.smtp", "web"}
            before = c.get("/metrics").text
            assert metric(before, "helpdesk_contacts_total", channel="email", outcome="created") == 0

            with smtplib.SMTP("127.0.0.1", s.core.config.email.smtp.port, timeout=30) as smtp:
                smtp.sendmail("giulia.bianchi@regione.example.it", ["assistenza@example.org"],
                              b"From: giulia.bianchi@regione.example.it\r\nSubject: stampante\r\nMessage-ID: <h-1@x>\r\n\r\nLa stampante non va.\r\n")
                smtp.sendmail("giulia.bianchi@regione.example.it", ["assistenza@example.org"],
                              b"From: giulia.bianchi@regione.example.it\r\nSubject: stampante\r\nMessage-ID: <h-1@x>\r\n\r\nLa stampante non va.\r\n")
            hidden = form_fields(c.get("/").text)
            r = c.post("/", data={"name": "Mario Rossi", "email": "mario.rossi@regione.example.it", "phone": "",
                                  "asset": "stampante tributi", "anomaly": "La stampante non stampa.", **hidden})
            assert r.status_code == 200

            after = c.get("/metrics")
            assert after.headers["content-type"].startswith("text/plain")
            text = after.text
            assert metric(text, "helpdesk_contacts_total", channel="email", outcome="created") == 1
            assert metric(text, "helpdesk_contacts_total", channel="email", outcome="duplicate") == 1
            assert metric(text, "helpdesk_contacts_total", channel="web", outcome="created") == 1
            assert metric(text, "helpdesk_intake_seconds_count", channel="email") == 2
            assert metric(text, "helpdesk_smtp_replies_total", **{"class": "2xx"}) >= 6
            assert metric(text, "helpdesk_outbox_depth") == 2  # two acknowledgements, no relay configured
            assert metric(text, "helpdesk_outbox_oldest_age_seconds") > 0
            assert metric(text, "helpdesk_tickets", channel="email", status="new") == 1
            names = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
            assert names and all(n.startswith("helpdesk_") for n in names), names
    finally:
        s.close()


def test_not_ready_while_the_smtp_port_is_taken(tmp_path):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        s = Serving(build(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}", email__smtp__port=str(port)))
        try:
            r = httpx.get(f"{s.url}/readyz", timeout=30)
            assert r.status_code == 503 and r.json()["ready"] is False
            assert "did not start" in r.json()["checks"]["email"] and r.json()["checks"]["database"] == "ok"
            assert httpx.get(f"{s.url}/healthz").status_code == 200  # the process answers all the same
        finally:
            s.close()
    finally:
        squatter.close()


@pytest.mark.postgres
def test_not_ready_while_postgresql_is_stopped_and_ready_again_when_it_returns(tmp_path):
    try:
        pg = PostgresServer()
    except Exception as e:  # noqa: BLE001
        missing(f"no PostgreSQL to test against: {e}")
    import psycopg

    with psycopg.connect(pg.base.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True) as conn:
        conn.execute('CREATE DATABASE "ready"')
    s = Serving(build(tmp_path, pg.base + "/ready"))
    data = pg.dir / "data"
    ctl = [*pg.as_user, str(pg.bindir / "pg_ctl"), "-D", str(data)]
    opts = f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.dir} -c fsync=off"
    try:
        assert httpx.get(f"{s.url}/readyz", timeout=30).status_code == 200
        subprocess.run([*ctl, "-m", "fast", "stop"], check=True, capture_output=True)
        r = httpx.get(f"{s.url}/readyz", timeout=30)
        assert r.status_code == 503 and r.json()["checks"]["database"] != "ok", r.text
        subprocess.run([*ctl, "-o", opts, "-l", str(pg.dir / "log"), "-w", "start"], check=True, capture_output=True)
        wait_for(lambda: httpx.get(f"{s.url}/readyz", timeout=30).status_code == 200, timeout=30, interval=0.5)
    finally:
        s.close()
        pg.stop()


def test_not_ready_while_an_imap_mailbox_is_not_connected(tmp_path):
    dead = free_port()  # no IMAP server there
    mailbox = f'[{{host = "127.0.0.1", port = {dead}, tls = false, user = "desk", password = "x", poll_seconds = 1}}]'
    s = Serving(build(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}", email__imap=mailbox))
    try:
        r = httpx.get(f"{s.url}/readyz", timeout=30)
        assert r.status_code == 503 and r.json()["checks"][f"email.imap.desk@127.0.0.1"] == "not connected to the IMAP server"
    finally:
        s.close()


def test_a_call_moves_the_voice_counters_and_the_transcription_queue(sqlite_core, gateway):
    """A real call through the Twilio webhooks (the caller hangs up after their name): the voice channel's
    contact is counted through the port `gateway/` wraps, and its recording's job shows in the queue gauge."""
    from gateway.metrics import Metrics
    from tests.test_voice_twilio import SOUNDS, SPEECH, ticket_of

    sqlite_core.metrics.watch_state(sqlite_core.sessions, sqlite_core.config.storage.data_dir)
    gw = gateway(sqlite_core)
    call = gw.call()
    call.start()
    call.press("1")
    call.press("1")
    call.answer(gw.recordings.add(SOUNDS / SPEECH["name"]))
    call.end("completed")
    assert ticket_of(sqlite_core, call.sid) is not None
    text = sqlite_core.metrics.exposition()[0].decode()
    assert metric(text, "helpdesk_contacts_total", channel="voice", outcome="created") == 1
    assert metric(text, "helpdesk_intake_seconds_count", channel="voice") == 1
    assert metric(text, "helpdesk_transcription_queue_depth", status="pending") == 1
    assert metric(text, "helpdesk_tickets", channel="voice", status="new") == 1
    assert isinstance(sqlite_core.metrics, Metrics)
