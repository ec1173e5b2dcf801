"""The SMTP receiver spoken to over real SMTP (smtplib and swaks) on loopback, on SQLite and a real PostgreSQL:
250 only with the intake committed; 451 while the database is unavailable (PostgreSQL refusing connections,
SQLite write-locked by another process), then success on retry with no duplicate; 550 5.1.1 for a foreign
recipient, 552 for oversize (SIZE at MAIL FROM and at the end of DATA), 452 past the recipient limit,
bounces recorded without a ticket, concurrent sessions batched. STARTTLS and AUTH: test_email_smtp_access.py."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.email.plugin import load
from channels.email.settings import EmailSettings
from gateway.app import channel_context
from ticketing.models import Message, Rejection, Ticket
from tests.conftest import free_port, missing

DATA = Path(__file__).parent / "data" / "email"
SUPPORT = "assistenza@example.org"


def start_gateway(core, **smtp):
    from channels.email.receiver import run_in_thread

    smtp.setdefault("port", free_port())
    settings = EmailSettings(enabled=True, smtp=smtp, ack={"enabled": False})
    channel, stop = run_in_thread(lambda: load(channel_context(core, settings)))
    return settings.smtp.port, stop


@pytest.fixture
def gateway(core):
    port, stop = start_gateway(core, parse_workers=1)
    yield port
    stop()


def count(core, model) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # SMTP lines end in CRLF (RFC 5321 §2.3.8)


def send(port: int, data: bytes, rcpt=(SUPPORT,), sender="giulia.bianchi@regione.example.it"):
    """One SMTP transaction: returns the (code, text) answered to the end of DATA."""
    data = crlf(data)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        assert code == 250, text
        for r in rcpt:
            code, text = s.rcpt(r)
            assert code == 250, text
        return s.data(data)


def test_250_comes_with_the_ticket_committed(core, gateway):
    data = (DATA / "it_attachment.eml").read_bytes()
    code, text = send(gateway, data)
    assert code == 250, text
    # No waiting: by the time 250 arrived the ticket was in the database, with the raw message stored.
    with core.sessions() as s:
        (t,) = s.scalars(select(Ticket)).all()
        assert text.decode().endswith(core.intake.number(t))
        m = t.messages[0]
        assert core.blobs.get(m.raw_sha256) == crlf(data)  # the raw message as it came over the wire
        assert t.value("reporter_name") == "Giulia Bianchi"
    code, _ = send(gateway, data)  # the sending server retries (it lost our 250): one ticket still
    assert code == 250 and count(core, Ticket) == 1 and count(core, Message) == 1


def test_foreign_recipient_is_refused_at_rcpt_with_550_5_1_1(core, gateway):
    with smtplib.SMTP("127.0.0.1", gateway, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("someone@example.net")
        code, text = s.rcpt("someone.else@example.com")
        assert code == 550 and text.startswith(b"5.1.1")
        assert s.rcpt(SUPPORT.upper())[0] == 250  # addresses compare without case
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtplib.SMTP("127.0.0.1", gateway, timeout=30).sendmail("a@example.net", ["relay@example.com"], b"Subject: x\r\n\r\nx")
    assert count(core, Ticket) == 0


def test_size_is_advertised_and_oversize_mail_gets_552(sqlite_core):
    port, stop = start_gateway(sqlite_core, max_message_bytes=4096, parse_workers=0)
    try:
        big = crlf(b"Subject: grande\nMessage-ID: <big@x>\n\n" + (b"x" * 70 + b"\n") * 200)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            assert s.has_extn("size") and s.esmtp_features["size"] == "4096"
            with pytest.raises(smtplib.SMTPSenderRefused) as e:  # smtplib declares SIZE=: refused at MAIL FROM
                s.sendmail("a@example.net", [SUPPORT], big)
            assert e.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:  # a client that does not declare the size
            s.ehlo("client.test")
            s.mail("a@example.net")
            s.rcpt(SUPPORT)
            assert s.data(big)[0] == 552
        assert count(sqlite_core, Ticket) == 0
        assert send(port, b"Subject: piccolo\nMessage-ID: <small@x>\n\nIl mouse non va.\n")[0] == 250
    finally:
        stop()


def test_recipient_limit_answers_452(sqlite_core):
    from channels.email.receiver import run_in_thread

    addresses = [f"desk{n}@example.org" for n in range(101)]
    settings = EmailSettings(enabled=True, addresses=addresses, smtp={"port": free_port(), "parse_workers": 0}, ack={"enabled": False})
    _, stop = run_in_thread(lambda: load(channel_context(sqlite_core, settings)))
    try:
        with smtplib.SMTP("127.0.0.1", settings.smtp.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("a@example.net")
            codes = [s.rcpt(a)[0] for a in addresses]
            assert codes[:100] == [250] * 100 and codes[100] == 452
            assert s.data(crlf(b"Subject: tanti\nMessage-ID: <many@x>\n\nciao\n"))[0] == 250
        assert count(sqlite_core, Ticket) == 1
    finally:
        stop()


def test_a_bounce_with_the_null_sender_is_recorded_and_opens_no_ticket(core, gateway):
    code, text = send(gateway, (DATA / "ack_bounce.eml").read_bytes(), sender="<>")
    assert code == 250 and b"bounce" in text
    assert count(core, Ticket) == 0 and count(core, Rejection) == 1


def _set_connections(base: str, url: str, allow: bool) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
        if not allow:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.mark.postgres
def test_451_while_the_database_is_unreachable_then_250_on_retry_without_duplicate(tmp_path, postgres_base):
    from gateway.app import build_core, seed_directory
    from tests.conftest import _new_pg_database, make_config

    url = _new_pg_database(postgres_base)
    core = build_core(make_config(tmp_path, url))
    seed_directory(core)
    port, stop = start_gateway(core, parse_workers=1)
    data = (DATA / "html_only.eml").read_bytes()
    try:
        _set_connections(postgres_base, url, allow=False)
        try:
            code, text = send(port, data)
            assert code == 451 and text.startswith(b"4.3.0"), (code, text)
            code, _ = send(port, data)  # the sending server retries while we are still down
            assert code == 451
        finally:
            _set_connections(postgres_base, url, allow=True)
        code, text = send(port, data)
        assert code == 250, text
        code, _ = send(port, data)
        assert code == 250
        assert count(core, Ticket) == 1 and count(core, Message) == 1
    finally:
        stop()
        core.close()


def test_451_while_sqlite_is_locked_by_another_process_then_250_on_retry_without_duplicate(sqlite_core):
    """SQLite's "unavailable": another connection holds the write lock (a backup, a long maintenance job)
    longer than the busy timeout."""
    import sqlite3

    from sqlalchemy import event

    core = sqlite_core

    @event.listens_for(core.engine, "connect")
    def _short_wait(dbapi_conn, _record):  # after the core's own pragmas: wait 0.3 s for the lock, not 30 s
        dbapi_conn.execute("PRAGMA busy_timeout=300")

    core.engine.dispose()
    port, stop = start_gateway(core, parse_workers=0)
    data = (DATA / "html_only.eml").read_bytes()
    holder = sqlite3.connect(core.engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        try:
            code, text = send(port, data)
            assert code == 451 and text.startswith(b"4.3.0"), (code, text)
            assert send(port, data)[0] == 451  # the sending server retries while the lock is still held
        finally:
            holder.execute("ROLLBACK")
        code, text = send(port, data)
        assert code == 250 and b"HD-" in text, text
        assert send(port, data)[0] == 250
        assert count(core, Ticket) == 1 and count(core, Message) == 1
    finally:
        holder.close()
        stop()


def test_swaks_delivers_and_is_refused_for_a_foreign_recipient(core, gateway):
    swaks = shutil.which("swaks")
    if swaks is None:
        missing("swaks is not installed (Debian package 'swaks')")
    fixture = DATA / "forwarded_tnef.eml"
    ok = subprocess.run(
        [swaks, "--server", "127.0.0.1", "--port", str(gateway), "--from", "francesca.romano@regione.example.it", "--to", SUPPORT, "--data", f"@{fixture}"],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0 and "<-  250 2.0.0 OK HD-" in ok.stdout, ok.stdout + ok.stderr
    refused = subprocess.run(
        [swaks, "--server", "127.0.0.1", "--port", str(gateway), "--from", "x@example.net", "--to", "victim@example.com", "--data", f"@{fixture}"],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0 and "<** 550 5.1.1" in refused.stdout, refused.stdout
    assert count(core, Ticket) == 1


def test_concurrent_sessions_all_get_250_and_one_ticket_each(sqlite_core):
    port, stop = start_gateway(sqlite_core, parse_workers=2)
    answers: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for k in range(5):
            body = f"Subject: PC {n}-{k}\nMessage-ID: <c{n}-{k}@x>\nFrom: mario.rossi@regione.example.it\n\nIl PC {n}-{k} non si avvia.\n"
            code, _ = send(port, body.encode())
            with lock:
                answers.append(code)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert answers == [250] * 60
        assert count(sqlite_core, Ticket) == 60
    finally:
        stop()


def test_the_gateway_serves_the_email_channel_from_its_configuration(tmp_path):
    """`helpdesk-gateway serve` with HELPDESK_GATEWAY__EMAIL__ENABLED and __EMAIL__SMTP__PORT: the registry's
    `channels.email.plugin:load` is what answers."""
    import asyncio

    from gateway.app import build_core
    from gateway.service import serve
    from tests.conftest import make_config, wait_for

    port = free_port()
    core = build_core(make_config(tmp_path, None, email__enabled="true", email__smtp__port=str(port), email__smtp__parse_workers="1"))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(serve(core, stop)), daemon=True)
    thread.start()
    try:
        def listening() -> bool:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=30)
        assert send(port, (DATA / "html_only.eml").read_bytes())[0] == 250
        assert count(core, Ticket) == 1
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        core.close()
    assert not thread.is_alive()
