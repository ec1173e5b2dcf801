"""Acknowledgements over real SMTP: a mail to the receiver opens a ticket and the sender gets, through a local
relay (the shipped `MailSink`), an acknowledgement with the number in the subject, `Auto-Submitted`, in their
language; its Message-ID is recorded so a reply-all from a colleague threads back; a per-address rate limit;
no acknowledgement for auto-replies; a relay that is down never fails intake."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.email.ack import RateLimit
from channels.email.plugin import load
from channels.email.receiver import run_in_thread
from channels.email.settings import EmailSettings
from channels.email.sink import MailSink
from gateway.app import channel_context
from ticketing.models import Message, Ticket
from tests.conftest import free_port, wait_for

DATA = Path(__file__).parent / "data" / "email"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send(port: int, data: bytes, sender: str = "someone@regione.example.it") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail(sender)
        s.rcpt("assistenza@example.org")
        return s.data(crlf(data))


@pytest.fixture
def sink():
    with MailSink() as s:
        yield s


def start(core, sink_port: int, **ack):
    settings = EmailSettings(
        enabled=True,
        smtp={"port": free_port(), "parse_workers": 0},
        ack={"enabled": True, "relay_port": sink_port, **ack},
    )
    channel, stop = run_in_thread(lambda: load(channel_context(core, settings)))
    return settings.smtp.port, stop


def count(core, model, *where) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_new_ticket_is_acknowledged_in_italian_and_a_reply_all_threads_back(core, sink):
    port, stop = start(core, sink.port)
    try:
        code, text = send(port, (DATA / "it_attachment.eml").read_bytes())
        number = text.decode().rsplit(" ", 1)[1]
        (ack,) = sink.wait(1)
        m = ack.message
        assert ack.rcpt_tos == ["giulia.bianchi@regione.example.it"] and ack.mail_from == "assistenza@example.org"
        assert m["Subject"] == f"[{number}] Abbiamo ricevuto la sua richiesta"
        assert m["Auto-Submitted"] == "auto-replied" and m["In-Reply-To"] == "<it-attach-1@regione.example.it>"
        assert number in m.get_content() and "Gentile utente" in m.get_content()
        wait_for(lambda: count(core, Message, Message.direction == "out") == 1)
        # A colleague in CC answers the acknowledgement (reply-all): it joins the ticket, no new one.
        reply = (
            f"From: Collega <collega@regione.example.it>\nTo: assistenza@example.org\nSubject: Re: ticket\n"
            f"Message-ID: <cc-on-ack@x>\nIn-Reply-To: {m['Message-ID']}\n\nSuccede anche a me.\n"
        ).encode()
        code, text = send(port, reply)
        assert code == 250 and text.decode().endswith(number)
        assert count(core, Ticket) == 1
        time.sleep(0.3)
        assert len(sink.received) == 1  # an appended message is not acknowledged again
    finally:
        stop()


def test_english_mail_gets_an_english_acknowledgement_and_auto_replies_get_none(sqlite_core, sink):
    port, stop = start(sqlite_core, sink.port)
    try:
        english = b"From: John Smith <john.smith@partner.example.com>\nSubject: Printer not working\nMessage-ID: <en-1@x>\n\nHello, the printer on the second floor is not working and we cannot print. Thanks\n"
        assert send(port, english)[0] == 250
        assert send(port, (DATA / "out_of_office.eml").read_bytes())[0] == 250
        (ack,) = sink.wait(1)
        assert ack.message["Subject"].endswith("] We have received your request")
        time.sleep(0.3)
        assert len(sink.received) == 1
    finally:
        stop()


def test_one_address_gets_at_most_the_limit_per_hour(sqlite_core, sink):
    port, stop = start(sqlite_core, sink.port, per_address_per_hour=2)
    try:
        for n in range(4):
            body = f"From: loop@robot.example.com\nSubject: Problema {n}\nMessage-ID: <loop-{n}@x>\n\nIl sistema {n} non va.\n"
            assert send(port, body.encode())[0] == 250
        sink.wait(2)
        time.sleep(0.5)
        assert len(sink.received) == 2 and count(sqlite_core, Ticket) == 4
    finally:
        stop()


def test_a_relay_that_refuses_or_is_down_never_fails_intake(sqlite_core, sink):
    sink.refuse()
    port, stop = start(sqlite_core, sink.port)
    try:
        assert send(port, (DATA / "html_only.eml").read_bytes())[0] == 250
    finally:
        stop()
    port, stop = start(sqlite_core, free_port())  # nothing listens there
    try:
        assert send(port, (DATA / "no_message_id.eml").read_bytes())[0] == 250
        assert count(sqlite_core, Ticket) == 2
    finally:
        stop()


def test_rate_limit_window_slides():
    now = [0.0]
    rl = RateLimit(2, window=3600, clock=lambda: now[0])
    assert [rl.allow("a"), rl.allow("a"), rl.allow("a"), rl.allow("b")] == [True, True, False, True]
    now[0] = 3600.0
    assert rl.allow("a")
