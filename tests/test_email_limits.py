"""The SMTP receiver's limits, each with its clear answer, spoken to over real sockets on loopback (issue 14 §2):
connections per client address and in total (421 4.7.0), the idle timeout under pressure, DATA bytes in flight
across sessions (451 4.3.1), bare-LF mail with long lines accepted as Postfix does, a mail nested 1,000 MIME
levels deep made a ticket, and aiosmtpd's per-command lines kept out of the INFO log."""

from __future__ import annotations

import logging
import smtplib
import socket
import time

import pytest
from sqlalchemy import func, select

from channels.email.plugin import load
from channels.email.settings import EmailSettings
from gateway.app import channel_context
from ticketing.models import Message, Ticket
from tests.conftest import free_port

SUPPORT = "assistenza@example.org"


@pytest.fixture
def start(sqlite_core):
    stops = []

    def start(**smtp):
        from channels.email.receiver import run_in_thread

        smtp.setdefault("port", free_port())
        smtp.setdefault("parse_workers", 0)
        settings = EmailSettings(enabled=True, smtp=smtp, ack={"enabled": False})
        _, stop = run_in_thread(lambda: load(channel_context(sqlite_core, settings)))
        stops.append(stop)
        return settings.smtp.port

    yield start
    for stop in stops:
        stop()


def connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return s, s.recv(1024)


def transaction(port: int, body: bytes, source: str = "127.0.0.1", finish: bool = True) -> tuple[socket.socket, bytes]:
    """EHLO, MAIL, RCPT, DATA and `body` sent as given (bare LF or CRLF); returns the socket and the answer
    to the end of DATA (b"" when `finish` is False: the message is left open)."""
    s, greeting = connect(port, source)
    assert greeting.startswith(b"220"), greeting
    f = s.makefile("rb")
    for cmd, want in ((b"EHLO client.test", b"250 "), (b"MAIL FROM:<giulia.bianchi@regione.example.it>", b"250"),
                      (f"RCPT TO:<{SUPPORT}>".encode(), b"250"), (b"DATA", b"354")):
        s.sendall(cmd + b"\r\n")
        while True:
            line = f.readline()
            if line.startswith(want):
                break
            assert line.startswith(b"250-"), (cmd, line)
    s.sendall(body)
    if not finish:
        return s, b""
    s.sendall(b".\r\n")
    return s, f.readline()


def count(core, model) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_connections_beyond_the_per_address_cap_get_421_and_other_addresses_are_served(start):
    port = start(max_connections_per_ip=3)
    held = [connect(port) for _ in range(3)]
    assert all(g.startswith(b"220") for _, g in held)
    extra, greeting = connect(port)
    assert greeting.startswith(b"421 4.7.0"), greeting
    assert extra.recv(100) == b""  # and the connection is closed
    other, greeting = connect(port, source="127.0.0.2")
    assert greeting.startswith(b"220"), greeting
    held[0][0].close()
    time.sleep(0.2)
    again, greeting = connect(port)  # a slot freed is a slot taken again
    assert greeting.startswith(b"220"), greeting
    for s in [*(s for s, _ in held), extra, other, again]:
        s.close()


def test_connections_beyond_the_total_cap_get_421(start):
    port = start(max_connections=4, max_connections_per_ip=10)
    held = [connect(port, source=f"127.0.0.{i + 1}") for i in range(4)]
    extra, greeting = connect(port, source="127.0.0.9")
    assert greeting.startswith(b"421 4.7.0"), greeting
    for s in [*(s for s, _ in held), extra]:
        s.close()


def test_idle_sessions_are_cut_sooner_under_pressure(start):
    port = start(max_connections=4, max_connections_per_ip=10, timeout_seconds=300, stress_timeout_seconds=0.5)
    quiet, _ = connect(port)
    quiet.settimeout(3)
    time.sleep(0.8)
    with pytest.raises(socket.timeout):  # one connection of four: no pressure, the 300 s timeout holds
        quiet.recv(100)
    second, _ = connect(port, source="127.0.0.2")  # half the total: pressure, idle sessions get 0.5 s
    started = time.monotonic()
    data = quiet.recv(200)
    assert data.startswith(b"421") or data == b"", data  # aiosmtpd says so, then closes
    assert time.monotonic() - started < 2.5
    for s in (quiet, second):
        s.close()


def test_data_beyond_the_bytes_in_flight_answers_451_4_3_1_and_memory_stays_bounded(start, sqlite_core):
    mib = 1024 * 1024
    port = start(max_data_in_flight_bytes=mib, max_message_bytes=mib)
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: big\r\nMessage-ID: <big-%d@test>\r\n\r\n" + line * (700 * 1024 // len(line))
    holder, _ = transaction(port, body % 1, finish=False)  # 700 KiB held, its end not sent yet
    time.sleep(0.3)
    other, answer = transaction(port, body % 2, source="127.0.0.2")
    assert answer.startswith(b"451 4.3.1"), answer
    holder.sendall(b".\r\n")
    assert holder.makefile("rb").readline().startswith(b"250"), "the first mail is taken in"
    retried, answer = transaction(port, body % 2, source="127.0.0.2")  # as the sending server retries
    assert answer.startswith(b"250"), answer
    assert count(sqlite_core, Ticket) == 2
    for s in (holder, other, retried):
        s.close()


def test_bare_lf_mail_with_long_lines_is_accepted_and_normalised(start, sqlite_core):
    port = start()
    long_line = "la stampante " + "molto " * 400 + "fine"  # 2,400+ bytes on one line
    body = f"From: Giulia Bianchi <giulia.bianchi@regione.example.it>\nSubject: bare LF\nMessage-ID: <lf@test>\n\n{long_line}\nriga due\n".encode()
    s, answer = transaction(port, body)
    assert answer.startswith(b"250 2.0.0 OK"), answer
    s.close()
    with sqlite_core.sessions() as session:
        text = session.scalar(select(Message.text))
        sha = session.scalar(select(Message.raw_sha256))
    assert long_line in text and "riga due" in text
    raw = sqlite_core.blobs.get(sha)
    assert b"\r\nriga due\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # every line ends in CRLF


def test_dot_stuffing_is_undone(start, sqlite_core):
    port = start()
    s, answer = transaction(port, b"Subject: dots\r\nMessage-ID: <dots@test>\r\n\r\n..leading dot\r\n")
    assert answer.startswith(b"250"), answer
    s.close()
    with sqlite_core.sessions() as session:
        assert ".leading dot" in session.scalar(select(Message.text))


def test_a_large_mail_is_stored_exactly_as_written_dots_and_line_ends_included(start, sqlite_core):
    """DATA is read in large pieces: dot-stuffed lines anywhere (across the pieces' edges too), a lone dot inside
    a line, bare LF and CRLF mixed, all come back as the sender wrote them, in CRLF."""
    import random

    rnd = random.Random(5)
    lines = [b"From: Giulia Bianchi <giulia.bianchi@regione.example.it>", b"Subject: dots everywhere",
             b"Message-ID: <exact@test>", b""]
    for n in range(6000):
        kind = rnd.random()
        line = b"x" * rnd.randrange(0, 120)
        if kind < 0.15:
            line = b"." + line  # stuffed on the wire
        elif kind < 0.2:
            line = b".."
        elif kind < 0.25:
            line = b"a . b .\r c"
        lines.append(line)
    wanted = b"".join(line + b"\r\n" for line in lines)
    wire = b"".join((b"." + line if line.startswith(b".") else line) + (b"\n" if i % 3 == 0 else b"\r\n") for i, line in enumerate(lines))
    assert len(wire) > 256 * 1024
    port = start()
    s, answer = transaction(port, wire)
    assert answer.startswith(b"250 2.0.0 OK"), answer
    s.close()
    with sqlite_core.sessions() as session:
        sha = session.scalar(select(Message.raw_sha256))
    assert sqlite_core.blobs.get(sha) == wanted


def test_a_mail_nested_a_thousand_mime_levels_deep_makes_a_ticket(start, sqlite_core):
    port = start()
    n = 1000
    head = f"From: a@example.org\r\nTo: {SUPPORT}\r\nSubject: nested\r\nMessage-ID: <deep@test>\r\nMIME-Version: 1.0\r\n".encode()
    levels = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(n))
    tail = b"Content-Type: text/plain\r\n\r\nthe printer is broken\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(n)))
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        code, text = smtp.sendmail("a@example.org", [SUPPORT], head + levels + tail) or (250, b"")
    assert count(sqlite_core, Ticket) == 1
    with sqlite_core.sessions() as session:
        assert session.scalar(select(Ticket.channel)) == "email"


def test_aiosmtpd_command_lines_are_not_info(start, caplog):
    port = start()
    with caplog.at_level(logging.INFO):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("giulia.bianchi@regione.example.it", [SUPPORT], b"Subject: q\r\nMessage-ID: <q@test>\r\n\r\nciao\r\n")
    assert not [r for r in caplog.records if r.name == "mail.log" and r.levelno >= logging.INFO]
