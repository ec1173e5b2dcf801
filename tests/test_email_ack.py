"""Outgoing mail through the durable outbox, over real SMTP: a mail to the receiver opens a ticket and its sender
gets, through a local relay (the shipped `MailSink`), an acknowledgement with the number in the subject,
`Auto-Submitted`, in their language; its Message-ID is recorded so a reply-all from a colleague threads back.
The relay refusing (4xx) then accepting, a 5xx that becomes a ticket event, no relay at all (mails wait, then
go when one is configured), per-address limits kept in the database, two senders on one database sending each
mail once, and no backscatter: forged senders get nothing, authenticated (DKIM, Authentication-Results) and
known ones get one."""

from __future__ import annotations

import base64
import smtplib
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.email.ack import NO_RELAY, OutboxSender
from channels.email.receiver import run_in_thread
from channels.email.sink import MailSink
from ticketing.models import Event, Message, Ticket
from ticketing.outbox import OutboxMail
from tests.conftest import free_port, make_config, wait_for

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


def gateway(tmp_path, url: str, relay: int | None, **ack):
    """A core and its email channel (receiver on a free port, parse in threads), the relay at `relay`."""
    from gateway.app import build_core, seed_directory
    from gateway.service import load_channel

    env = {"email__smtp__port": str(free_port()), "email__smtp__parse_workers": "0", "email__ack__retry_seconds": "0.2",
           "email__ack__poll_seconds": "0.1"}
    if relay is not None:
        env |= {"email__ack__relay_host": "127.0.0.1", "email__ack__relay_port": str(relay)}
    env |= {f"email__ack__{k}": v for k, v in ack.items()}
    core = build_core(make_config(tmp_path, url, **env))
    seed_directory(core)
    channel, stop = run_in_thread(lambda: load_channel(core, "email"))

    def close():
        stop()
        core.close()

    return core, core.config.email.smtp.port, close


@pytest.fixture
def running(tmp_path, database_url, sink):
    made = []

    def start(relay="sink", **ack):
        made.append(gateway(tmp_path, database_url, sink.port if relay == "sink" else relay, **ack))
        return made[-1][:2]

    yield start
    for _, _, close in reversed(made):
        close()


def count(core, model, *where) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def events(core, kind: str) -> list[dict]:
    with core.sessions() as s:
        return [e.data for e in s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))]


def mail(n: int, sender: str = "giulia.bianchi@regione.example.it", extra: str = "") -> bytes:
    return f"From: {sender}\nTo: assistenza@example.org\n{extra}Subject: Problema {n}\nMessage-ID: <m-{n}-{sender}>\n\nIl sistema {n} non va.\n".encode()


def test_a_new_ticket_is_acknowledged_in_italian_and_a_reply_all_threads_back(running, sink):
    core, port = running()
    code, text = send(port, (DATA / "it_attachment.eml").read_bytes())
    number = text.decode().rsplit(" ", 1)[1]
    (ack,) = sink.wait(1)
    m = ack.message
    assert ack.rcpt_tos == ["giulia.bianchi@regione.example.it"] and ack.mail_from == "assistenza@example.org"
    assert m["Subject"] == f"[{number}] Abbiamo ricevuto la sua richiesta"
    assert m["Auto-Submitted"] == "auto-replied" and m["In-Reply-To"] == "<it-attach-1@regione.example.it>"
    assert number in m.get_content() and "Gentile utente" in m.get_content()
    wait_for(lambda: count(core, Message, Message.direction == "out") == 1)
    assert wait_for(lambda: events(core, "mail_sent"))[0]["mail"] == "confirmation"  # "confirmation sent"
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


def test_english_mail_gets_an_english_acknowledgement_and_auto_replies_get_none(running, sink):
    core, port = running(known_domains='["partner.example.com"]')
    english = b"From: John Smith <john.smith@partner.example.com>\nSubject: Printer not working\nMessage-ID: <en-1@x>\n\nHello, the printer on the second floor is not working and we cannot print. Thanks\n"
    assert send(port, english)[0] == 250
    assert send(port, (DATA / "out_of_office.eml").read_bytes())[0] == 250
    (ack,) = sink.wait(1)
    assert ack.message["Subject"].endswith("] We have received your request")
    time.sleep(0.3)
    assert len(sink.received) == 1


def test_limits_per_address_and_in_all_live_in_the_database(running, sink):
    core, port = running(per_address_per_hour="2", global_per_hour="3", known_domains='["robot.example.com"]')
    for n in range(4):
        assert send(port, mail(n, "loop@robot.example.com"))[0] == 250
    for n in range(3):
        assert send(port, mail(10 + n, f"other{n}@robot.example.com"))[0] == 250
    sink.wait(3)
    time.sleep(0.5)
    assert len(sink.received) == 3 and count(core, Ticket) == 7
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["loop@robot.example.com"] * 2 + ["other0@robot.example.com"]
    # The counts are rows of the outbox: another gateway on the database (or this one restarted) sees them.
    assert count(core, OutboxMail, OutboxMail.recipient == "loop@robot.example.com") == 2


def test_a_relay_that_refuses_then_accepts_sends_each_mail_once(running, sink):
    sink.refuse("451 4.3.0 try again later")
    core, port = running()
    numbers = [send(port, mail(n, sender))[1].decode().rsplit(" ", 1)[1]
               for n, sender in enumerate(["giulia.bianchi@regione.example.it", "mario.rossi@regione.example.it"])]
    waiting = wait_for(lambda: len(events(core, "mail_waiting")) >= 2 and events(core, "mail_waiting"))
    assert all(e["reason"] == "451 4.3.0 try again later" for e in waiting)  # "not sent yet: <reason>"
    time.sleep(0.8)  # several retries: the history says it once per reason, not once per try
    assert len(events(core, "mail_waiting")) == 2 and not sink.received
    sink.refuse("250 2.0.0 OK")
    sink.wait(2)
    wait_for(lambda: len(events(core, "mail_sent")) == 2)
    time.sleep(0.5)
    assert len(sink.received) == 2 and len({r.message["Message-ID"] for r in sink.received}) == 2
    assert sorted(r.message["Subject"].split("]")[0][1:] for r in sink.received) == sorted(numbers)


def test_a_relay_that_is_down_is_retried_and_intake_never_waits(running, sink):
    dead = free_port()  # nothing listens there: connection refused
    core, port = running(relay=dead)
    t0 = time.monotonic()
    assert send(port, mail(1))[0] == 250
    assert time.monotonic() - t0 < 5
    waiting = wait_for(lambda: events(core, "mail_waiting"))
    assert "could not be reached" in waiting[0]["reason"] and "ConnectionRefusedError" in waiting[0]["reason"]
    with core.sessions() as s:
        assert s.scalar(select(OutboxMail.attempts)) >= 1


def test_a_permanent_refusal_becomes_a_ticket_event_with_the_relays_words(running, sink):
    sink.refuse("550 5.1.1 mailbox unavailable")
    core, port = running()
    assert send(port, mail(1))[0] == 250
    (failed,) = wait_for(lambda: events(core, "mail_failed"))
    assert failed["reason"] == "550 5.1.1 mailbox unavailable" and failed["to"] == "giulia.bianchi@regione.example.it"
    with core.sessions() as s:
        assert s.scalar(select(OutboxMail.status)) == "failed"
    attempts = len(events(core, "mail_failed"))
    time.sleep(0.6)
    assert len(events(core, "mail_failed")) == attempts == 1  # never retried


def test_with_no_relay_mails_wait_and_go_when_one_is_configured(tmp_path, sink):
    url = f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"
    core, port, close = gateway(tmp_path, url, None)
    try:
        assert core.config.email.ack.relay_host is None  # the embedded default
        for n in range(3):
            assert send(port, mail(n))[0] == 250
        waiting = wait_for(lambda: len(events(core, "mail_waiting")) == 3 and events(core, "mail_waiting"))
        assert {e["reason"] for e in waiting} == {NO_RELAY}
        assert core.outbox.stats().waiting == 3 and not sink.received
    finally:
        close()
    core, port, close = gateway(tmp_path, url, sink.port)  # a relay is configured: the backlog goes
    try:
        sink.wait(3)
        wait_for(lambda: core.outbox.stats().waiting == 0)
        assert len(events(core, "mail_sent")) == 3
    finally:
        close()


def test_two_senders_on_one_database_send_every_mail_once(core, sink):
    from channels.email.settings import AckSettings
    from ticketing.outbox import enqueue

    with core.sessions() as s, s.begin():
        for n in range(120):
            enqueue(s, kind="notification", to=f"group{n % 7}@example.org", subject=f"n{n}", text="x")
    settings = AckSettings(relay_host="127.0.0.1", relay_port=sink.port, poll_seconds=0.05, batch=10)
    senders = [OutboxSender(settings, core.outbox, owner=f"gw{i}") for i in range(2)]
    for s in senders:
        s.start_thread()
    try:
        sink.wait(120, timeout=60)
        wait_for(lambda: core.outbox.stats().waiting == 0, timeout=30)
        time.sleep(0.3)
    finally:
        for s in senders:
            s.stop_thread()
    subjects = [r.message["Subject"] for r in sink.received]
    assert len(subjects) == 120 and len(set(subjects)) == 120
    assert all(s.sent > 0 for s in senders)  # both took part


# -- no backscatter ----------------------------------------------------------------------------------------
def test_forged_senders_get_no_acknowledgement_and_a_directory_user_gets_one(running, sink):
    core, port = running(global_per_hour="10000")
    from concurrent.futures import ThreadPoolExecutor

    def client(k: int) -> None:  # 10 connections at once, as MTAs deliver: their mails share commits
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for n in range(k, 300, 10):
                s.sendmail(f"x{n}@forged{n % 17}.example.net", ["assistenza@example.org"],
                           crlf(mail(n, f"victim{n}@forged{n % 17}.example.net")))

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(client, range(10)))
    assert count(core, Ticket) == 300
    assert send(port, mail(1000, "mario.rossi@regione.example.it"))[0] == 250
    (ack,) = sink.wait(1)
    assert ack.rcpt_tos == ["mario.rossi@regione.example.it"]
    time.sleep(0.5)
    assert len(sink.received) == 1 and count(core, OutboxMail) == 1


def _dkim_key(tmp_path):
    """A fresh RSA key pair (openssl), and the DNS TXT record that would publish its public half."""
    import subprocess

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "1024"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    return key.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def test_authenticated_senders_are_acknowledged_by_dkim_or_by_a_trusted_mta(running, sink, monkeypatch, tmp_path):
    import dkim

    private, record = _dkim_key(tmp_path)
    monkeypatch.setattr(dkim.dnsplug, "get_txt", lambda name, timeout=5: record if name == b"sel._domainkey.partner.example.com." else None)
    core, port = running(trusted_authserv_ids='["mx.desk.example.org"]')
    body = crlf(mail(1, "anna@partner.example.com"))
    signed = dkim.sign(body, b"sel", b"partner.example.com", private, include_headers=[b"from", b"subject", b"message-id"])
    assert send(port, signed + body)[0] == 250  # a real DKIM signature, its key "published" through dnsplug
    sink.wait(1)
    tampered = (signed + body).replace(b"Il sistema 1", b"Il sistema 9")
    assert send(port, tampered.replace(b"<m-1-", b"<m-2-"))[0] == 250  # signature broken: not authenticated

    trusted = "Authentication-Results: mx.desk.example.org; dmarc=pass header.from=partner.example.com\n"
    assert send(port, mail(3, "bruno@partner.example.com", trusted))[0] == 250
    sink.wait(2)
    forged_results = "Authentication-Results: evil.example.net; dmarc=pass header.from=partner.example.com\n"
    assert send(port, mail(4, "carla@partner.example.com", forged_results))[0] == 250
    misaligned = "Authentication-Results: mx.desk.example.org; dkim=pass header.d=other.example.net\n"
    assert send(port, mail(5, "dario@partner.example.com", misaligned))[0] == 250
    time.sleep(0.5)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["anna@partner.example.com", "bruno@partner.example.com"]
    assert count(core, Ticket) == 5


def test_a_sender_whose_server_passes_spf_is_acknowledged_when_the_gateway_is_the_mx(running, sink, monkeypatch):
    """The gateway as the MX: the SMTP client is the sender's own server. Its address passes the SPF record of
    the envelope sender's domain (published here through pyspf's DNS hook), aligned with From: -> acknowledged;
    the same mail from a domain whose record does not list the client is not."""
    import spf

    records = {"partner.example.com": b"v=spf1 ip4:127.0.0.1 -all", "elsewhere.example.net": b"v=spf1 ip4:192.0.2.1 -all"}

    def lookup(name, qtype, tcpfallback=True, timeout=30):
        name = name.rstrip(".").lower()
        return [((name, qtype), (records[name],))] if qtype == "TXT" and name in records else []

    monkeypatch.setattr(spf, "DNSLookup", lookup)
    from channels.email import auth

    monkeypatch.setattr(auth, "_SPF_SEEN", {})
    core, port = running()
    assert send(port, mail(1, "anna@partner.example.com"), sender="bounce@partner.example.com")[0] == 250
    assert send(port, mail(2, "bob@elsewhere.example.net"), sender="bob@elsewhere.example.net")[0] == 250
    assert send(port, mail(3, "carl@partner.example.com"), sender="carl@elsewhere.example.net")[0] == 250  # not aligned
    sink.wait(1)
    time.sleep(0.5)
    assert [r.rcpt_tos[0] for r in sink.received] == ["anna@partner.example.com"]


def test_a_sender_at_an_organisations_domain_counts_as_known(running, sink):
    core, port = running()  # config/organisations.csv: Regione is regione.example.it (and its sub-domains)
    assert send(port, mail(1, "nuovo.collega@uffici.regione.example.it"))[0] == 250  # not in the directory
    assert send(port, mail(2, "someone@regione.example.org"))[0] == 250  # a look-alike domain: not known
    sink.wait(1)
    time.sleep(0.5)
    assert [r.rcpt_tos[0] for r in sink.received] == ["nuovo.collega@uffici.regione.example.it"]


def test_a_mail_the_relay_never_takes_is_given_up_after_its_lifetime(running, sink):
    sink.refuse("451 4.7.1 greylisted")
    core, port = running(give_up_hours="0.0003")  # about a second
    assert send(port, mail(1))[0] == 250
    (failed,) = wait_for(lambda: events(core, "mail_failed"), timeout=20)
    assert failed["reason"].startswith("given up after") and "451 4.7.1 greylisted" in failed["reason"]
