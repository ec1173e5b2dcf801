"""The web channel with the real email channel loaded (`load_channel(core, "email")` publishes `shared.mail`),
its SMTP receiver on a free port and its relay pointed at the shipped collecting sink: a form report with an
email address is acknowledged by email in the form's language; an operator replies to the reporter by email
from the desk page or the API, the reply is in the ticket's messages, and the user's answer threads back;
every way a reply cannot go says why; without the email channel the form still shows the number."""

from __future__ import annotations

import html
import re
import smtplib
import time

import httpx
import pytest
from sqlalchemy import func, select

from channels.email.sink import MailSink
from tests.conftest import free_port, make_config, wait_for
from tests.test_web_support import OPERATOR, PASSWORD, form_fields, web_factory  # noqa: F401  (fixtures)

NUMBER = re.compile(r'id="ticket-number">([A-Z]+-\d{4}-\d+)<')


@pytest.fixture
def sink():
    with MailSink() as s:
        yield s


@pytest.fixture
def mail_core(tmp_path, sink):
    """A core whose email channel runs (receiver on a free port, acknowledgements through the sink)."""
    from channels.email.receiver import run_in_thread
    from gateway.app import build_core, seed_directory
    from gateway.service import load_channel

    config = make_config(
        tmp_path, f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}",
        email__smtp__port=str(free_port()), email__smtp__parse_workers="0", email__ack__relay_port=str(sink.port),
        email__ack__relay_host="127.0.0.1", email__ack__known_domains='["example.org"]', email__ack__retry_seconds="0.2",
        email__ack__poll_seconds="0.1",
    )
    core = build_core(config)
    seed_directory(core)
    channel, stop = run_in_thread(lambda: load_channel(core, "email"))
    core.shared.offer(channel)  # what `serve` does with each loaded channel
    assert core.shared.mail is not None
    yield core
    stop()
    core.close()


def report(c: httpx.Client, headers=None, **values) -> httpx.Response:
    hidden = form_fields(c.get("/", headers=headers).text)
    data = {"name": "Mario Rossi", "email": "", "phone": "", "asset": "stampante tributi",
            "anomaly": "La stampante non stampa da stamattina.", **hidden, **values}
    return c.post("/", data=data, headers=headers)


def smtp_send(core, raw: str) -> str:
    """Mail to the gateway's receiver, as the user's server would; returns the 250 text (ends with the number)."""
    with smtplib.SMTP("127.0.0.1", core.config.email.smtp.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("giulia.bianchi@regione.example.it")
        s.rcpt("assistenza@example.org")
        code, text = s.data(raw.replace("\n", "\r\n").encode())
    assert code == 250, text
    return text.decode()


def desk_login(c: httpx.Client) -> None:
    hidden = form_fields(c.get("/desk/login").text)
    assert c.post("/desk/login", data={"username": OPERATOR, "password": PASSWORD, **hidden}).status_code == 303


def outbound(core) -> int:
    from ticketing.models import Message

    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))


def test_a_form_report_is_acknowledged_by_email_in_the_form_language(mail_core, sink, web_factory):
    web = web_factory(mail_core, cookie_secure=False)
    with httpx.Client(base_url=web.url) as c:
        it = report(c, email="mario.rossi@regione.example.it")
        number_it = NUMBER.search(it.text).group(1)
        assert "Riceverai una conferma all'indirizzo mario.rossi@regione.example.it" in html.unescape(it.text)
        (ack_it,) = sink.wait(1)
        assert ack_it.rcpt_tos == ["mario.rossi@regione.example.it"]
        assert ack_it.message["Subject"] == f"[{number_it}] Abbiamo ricevuto la sua richiesta"
        assert number_it in ack_it.message.get_content()

        en = report(c, headers={"accept-language": "en-GB,en;q=0.9"}, name="John Smith", email="john.smith@example.org",
                    anomaly="The tax office printer prints blank pages.")
        number_en = NUMBER.search(en.text).group(1)
        assert "A confirmation will be sent to john.smith@example.org" in en.text
        ack_en = sink.wait(2)[1]
        assert ack_en.rcpt_tos == ["john.smith@example.org"]
        assert ack_en.message["Subject"] == f"[{number_en}] We have received your request"

        # An address nobody knows, typed into the form, is not mailed: that would be backscatter on demand.
        stranger = report(c, email="someone@elsewhere.example.net")
        assert NUMBER.search(stranger.text) and 'id="ack-note"' not in stranger.text

        phone_only = report(c, phone="055 438 2144")
        assert NUMBER.search(phone_only.text) and 'id="ack-note"' not in phone_only.text
    time.sleep(0.3)
    assert len(sink.received) == 2  # nothing to send without an address
    wait_for(lambda: outbound(mail_core) == 2)  # each acknowledgement is a message of its ticket
    assert [m.direction for m in web.desk.ticket(number_it).messages] == ["in", "out"]


def test_mail_trouble_never_fails_the_form(mail_core, sink, web_factory, sqlite_core):
    sink.refuse("554 5.7.1 relay says no")
    web = web_factory(mail_core, cookie_secure=False)
    with httpx.Client(base_url=web.url) as c:
        r = report(c, email="mario.rossi@regione.example.it")
    assert r.status_code == 200 and NUMBER.search(r.text)

    off = web_factory(sqlite_core, cookie_secure=False)  # no email channel: the number on screen only
    assert sqlite_core.shared.mail is None
    with httpx.Client(base_url=off.url) as c:
        r = report(c, email="mario.rossi@regione.example.it")
    assert r.status_code == 200 and NUMBER.search(r.text) and 'id="ack-note"' not in r.text


def test_an_operator_replies_by_email_and_the_answer_threads_back(mail_core, sink, web_factory):
    web = web_factory(mail_core, cookie_secure=False)
    text = smtp_send(mail_core, "From: Giulia Bianchi <giulia.bianchi@regione.example.it>\nTo: assistenza@example.org\n"
                                "Subject: Stampante guasta\nMessage-ID: <user-1@regione.example.it>\n\nLa stampante tributi non stampa.\n")
    number = text.rsplit(" ", 1)[1]
    sink.wait(1)  # the acknowledgement
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        page = c.get(f"/desk/tickets/{number}").text
        assert 'id="reply-to">giulia.bianchi@regione.example.it<' in page
        sent = c.post(f"/desk/tickets/{number}/reply", data={"csrf": form_fields(page)["csrf"], "text": "Abbiamo sostituito il toner: ora stampa?"})
        assert sent.status_code == 303
        page = c.get(sent.headers["location"]).text
        assert "Risposta inviata per email." in page
        assert re.search(r'<article class="message out">.*?Abbiamo sostituito il toner: ora stampa\?', page, re.S)

    reply = sink.wait(2)[1]
    m = reply.message
    assert reply.rcpt_tos == ["giulia.bianchi@regione.example.it"]
    assert m["Subject"] == f"[{number}] Re: Stampante guasta"
    assert m["In-Reply-To"] == "<user-1@regione.example.it>"
    assert "Abbiamo sostituito il toner" in m.get_content()

    # The user answers the reply (no number in the subject): In-Reply-To alone brings it to the ticket.
    answer = smtp_send(mail_core, f"From: Giulia Bianchi <giulia.bianchi@regione.example.it>\nTo: assistenza@example.org\n"
                                  f"Subject: grazie\nMessage-ID: <user-2@regione.example.it>\nIn-Reply-To: {m['Message-ID']}\n\nSi, ora funziona.\n")
    assert answer.endswith(number)
    texts = [(x.direction, x.text.strip()) for x in web.desk.ticket(number).messages]
    assert texts[-2][0] == "out" and texts[-1] == ("in", "Si, ora funziona.")

    # The API: the same reply, and its errors as problem documents.
    with httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"}) as api:
        r = api.post(f"/api/v1/tickets/{number}/replies", json={"text": "Chiudiamo la segnalazione."})
        assert r.status_code == 201 and r.json()["to"] == "giulia.bianchi@regione.example.it"
        assert sink.wait(3)[2].message["Message-ID"].strip() == r.json()["message_id"]
        assert api.post("/api/v1/tickets/HD-1999-000001/replies", json={"text": "x"}).status_code == 404


def test_a_reply_that_cannot_go_says_why(mail_core, sink, web_factory, sqlite_core):
    from ticketing.contact import Channel, Contact, Sender

    web = web_factory(mail_core, cookie_secure=False)
    by_phone = mail_core.intake.submit(Contact(Channel.VOICE, "call-1", sender=Sender(None, None, "+39 333 000 1111"), text="il pc non parte")).ticket_number
    by_form = web.ctx.intake.deliver(Contact(Channel.WEB, "form:x1", sender=Sender("Mario Rossi", "mario.rossi@regione.example.it"), text="non stampa")).ticket_number
    sink.refuse("550 5.1.1 mailbox unavailable")
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        page = c.get(f"/desk/tickets/{by_phone}").text
        assert 'id="reply-none"' in page
        r = c.post(f"/desk/tickets/{by_phone}/reply", data={"csrf": form_fields(page)["csrf"], "text": "ciao"})
        assert r.status_code == 409 and "no email address is known for the reporter" in r.text

        page = c.get(f"/desk/tickets/{by_form}").text
        r = c.post(f"/desk/tickets/{by_form}/reply", data={"csrf": form_fields(page)["csrf"], "text": "Il tecnico passa alle 15."})
        assert r.status_code == 303  # queued in the outbox; the relay's refusal lands on the ticket
        failed = wait_for(lambda: [e for e in web.desk.ticket(by_form).events if e.kind == "mail_failed"])
        assert "550 5.1.1 mailbox unavailable" in failed[0].data["reason"]
        assert "550 5.1.1 mailbox unavailable" in c.get(f"/desk/tickets/{by_form}").text
        r = c.post(f"/desk/tickets/{by_form}/reply", data={"csrf": form_fields(page)["csrf"], "text": "  "})
        assert r.status_code == 422 and "Scrivi il testo della risposta." in r.text
    with httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"}) as api:
        r = api.post(f"/api/v1/tickets/{by_phone}/replies", json={"text": "ciao"})
        assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
        r = api.post(f"/api/v1/tickets/{by_form}/replies", json={"text": "ciao"})
        assert r.status_code == 201
    wait_for(lambda: len([e for e in web.desk.ticket(by_form).events if e.kind == "mail_failed"]) == 2)
    assert [m.direction for m in web.desk.ticket(by_form).messages] == ["in", "out", "out"]  # recorded when queued

    off = web_factory(sqlite_core, cookie_secure=False)  # the email channel is off
    number = off.ctx.intake.deliver(Contact(Channel.WEB, "form:x2", sender=Sender("Mario Rossi", "mario.rossi@regione.example.it"), text="non stampa")).ticket_number
    with httpx.Client(base_url=off.url) as c:
        desk_login(c)
        page = c.get(f"/desk/tickets/{number}").text
        assert 'id="reply-off"' in page
        r = c.post(f"/desk/tickets/{number}/reply", data={"csrf": form_fields(page)["csrf"], "text": "ciao"})
        assert r.status_code == 503 and "the email channel is off" in r.text


def test_with_no_relay_the_desk_shows_what_waits(tmp_path, web_factory):
    """The embedded default: no relay. The acknowledgement waits in the outbox; the desk's header counts it and
    /desk/outbox lists it with the reason, and the ticket's history says "not sent yet"."""
    from channels.email.receiver import run_in_thread
    from gateway.app import build_core, seed_directory
    from gateway.service import load_channel

    core = build_core(make_config(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite3'}", email__smtp__port=str(free_port()),
                                  email__smtp__parse_workers="0", email__ack__poll_seconds="0.1"))
    seed_directory(core)
    channel, stop = run_in_thread(lambda: load_channel(core, "email"))
    core.shared.offer(channel)
    try:
        web = web_factory(core, cookie_secure=False)
        with httpx.Client(base_url=web.url) as c:
            number = NUMBER.search(report(c, email="mario.rossi@regione.example.it").text).group(1)
            desk_login(c)
            assert re.search(r'id="outbox-link">[^<]*\(1\)</a>', c.get("/desk/").text)
            page = c.get("/desk/outbox").text
            assert 'id="no-relay"' in page and 'id="outbox-waiting">1<' in page and "mario.rossi@regione.example.it" in page
            wait_for(lambda: [e for e in web.desk.ticket(number).events if e.kind == "mail_waiting"])
            assert "no mail relay is configured" in c.get(f"/desk/tickets/{number}").text
            c.cookies.clear()
            assert c.get("/desk/outbox").status_code in (302, 303)  # operators only
    finally:
        stop()
        core.close()
