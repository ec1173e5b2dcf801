"""Suggestions where operators and integrations see them (issue 13 §2): the desk's ticket page lists the
nearest articles and resolved tickets, one button mails the workaround to the reporter through the durable
outbox (to the shipped collecting sink), and `GET /api/v1/tickets/{number}` carries them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from tests.test_web_mail import desk_login, mail_core, sink  # noqa: F401  (fixtures)
from tests.test_web_support import form_fields, web_factory  # noqa: F401  (fixtures)
from ticketing.contact import Channel, Contact, Sender
from ticketing.knowledge import import_dir
from ticketing.suggestions import run_once

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "kb"
SEND = re.compile(r'<form method="post" action="(/desk/tickets/[^"]+/reply)" class="action kb-send">(.*?)</form>', re.S)


def test_the_operator_sends_the_suggested_workaround_and_the_api_lists_it(mail_core, sink, web_factory):
    import_dir(mail_core.sessions, SAMPLE)
    r = mail_core.intake.submit(Contact(Channel.EMAIL, "<kb-web-1@example.org>", sender=Sender("Mario Rossi", "mario.rossi@example.org"),
                                        subject="VPN", text="Lavoro da casa e la VPN non si collega, resta su connessione in corso", language="it"))
    sink.wait(1)  # the acknowledgement
    run_once(mail_core.sessions, "HD")
    web = web_factory(mail_core, cookie_secure=False)
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        page = c.get(f"/desk/tickets/{r.ticket_number}").text
        assert 'id="suggestions"' in page and "La VPN non si connette da casa" in html.unescape(page)
        action, form = SEND.search(page).groups()
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        sent = c.post(action, data={k: html.unescape(v) for k, v in fields.items()})
        assert sent.status_code == 303
        mails = sink.wait(2)
        body = mails[1].message.get_content()
        assert mails[1].rcpt_tos == ["mario.rossi@example.org"] and "codice OTP" in body

    with httpx.Client(base_url=web.url, headers={"authorization": f"Bearer {web.token}"}) as api:
        got = api.get(f"/api/v1/tickets/{r.ticket_number}").json()
        first = got["suggestions"][0]
        assert first["kind"] == "article" and first["title"] == "La VPN non si connette da casa" and "OTP" in first["detail"]
        assert all(s["score"] >= t["score"] for s, t in zip(got["suggestions"], got["suggestions"][1:]))
