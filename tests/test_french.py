"""French, end to end, on the channels that take text: a French mail over real SMTP, the web form in French
(chosen by `?lang=fr`, by the browser's Accept-Language, and in Chromium with a French locale). Each ends in a
ticket whose fields are right and whose acknowledgement (by email, through the shipped `MailSink` relay) and
pages are French. The call in French is in tests/test_voice_confirm.py.
"""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import wait_for
from tests.test_web_mail import NUMBER, mail_core, sink, smtp_send  # noqa: F401  (fixtures)
from tests.test_web_support import chromium, form_fields, web_factory  # noqa: F401  (fixtures)

FRENCH_MAIL = """From: Giulia Bianchi <giulia.bianchi@regione.example.it>
To: assistenza@example.org
Subject: L'imprimante du deuxième étage n'imprime plus
Message-ID: <fr-imprimante-1@regione.example.it>
Date: Mon, 30 Nov 2026 09:12:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Bonjour,

depuis ce matin l'imprimante du deuxième étage n'imprime plus : les feuilles sortent blanches et
l'écran affiche « erreur 0x51 ». Ce n'est pas urgent, nous utilisons celle du rez-de-chaussée.

Cordialement,
Giulia Bianchi
"""


def fields(core, number: str) -> dict:
    t = core.desk.ticket(number)
    return {"language": t.language, **{n: t.field(n) for n in ("reporter_name", "reporter_email", "asset", "anomaly", "urgency")}}


def test_a_french_mail_over_smtp_makes_a_french_ticket_acknowledged_in_french(mail_core, sink):
    number = smtp_send(mail_core, FRENCH_MAIL).rsplit(" ", 1)[1]
    f = fields(mail_core, number)
    assert f["language"] == "fr"
    assert f["reporter_name"].value == "Giulia Bianchi" and f["reporter_email"].value == "giulia.bianchi@regione.example.it"
    assert f["asset"].value.startswith("PRN-0210")  # "l'imprimante du deuxième étage": the printer on floor 2
    assert "feuilles sortent blanches" in f["anomaly"].value
    assert f["urgency"].value not in ("high", "critical")  # "ce n'est pas urgent"
    (ack,) = sink.wait(1)
    assert ack.rcpt_tos == ["giulia.bianchi@regione.example.it"]
    assert ack.message["Subject"] == f"[{number}] Nous avons reçu votre demande"
    body = ack.message.get_content()
    assert body.startswith("Bonjour,") and number in body and "(message automatique)" in body


def french_report(c: httpx.Client, headers=None, **values) -> httpx.Response:
    page = c.get("/", headers=headers)
    data = {"name": "Giulia Bianchi", "email": "giulia.bianchi@regione.example.it", "phone": "",
            "asset": "l'imprimante du deuxième étage",
            "anomaly": "Les pages sortent blanches depuis ce matin, même après avoir changé le toner.",
            **form_fields(page.text), **values}
    return c.post("/", data=data, headers=headers)


def test_the_web_form_in_french_by_address_and_by_browser_language(mail_core, sink, web_factory):
    web = web_factory(mail_core, cookie_secure=False)
    with httpx.Client(base_url=web.url) as c:  # ?lang=fr, the visible switch: remembered in a cookie
        page = c.get("/?lang=fr")
        assert '<html lang="fr">' in page.text and "Signaler un problème" in html.unescape(page.text)
        switch = dict((code, name) for code, name in re.findall(r'href="/\?lang=(\w+)" hreflang="\w+" lang="\w+">([^<]+)<', page.text))
        assert switch == {"it": "Italiano", "en": "English"}
        assert c.cookies.get("hd_lang") == "fr"
        assert "Signaler un problème" in html.unescape(c.get("/").text)
    with httpx.Client(base_url=web.url) as c:  # a browser that prefers French (Swiss French first)
        fr = {"accept-language": "fr-CH, fr;q=0.9, en;q=0.8, it;q=0.5"}
        thanks = french_report(c, headers=fr)
        text = html.unescape(thanks.text)
        number = NUMBER.search(thanks.text).group(1)
        assert "Le numéro de votre signalement est" in text
        assert "Une confirmation sera envoyée à giulia.bianchi@regione.example.it" in text

        f = fields(mail_core, number)
        assert f["language"] == "fr" and f["reporter_name"].value == "Giulia Bianchi"
        assert f["asset"].value.startswith("PRN-0210")
        assert f["anomaly"].value.startswith("Les pages sortent blanches")
        (ack,) = sink.wait(1)
        assert ack.message["Subject"] == f"[{number}] Nous avons reçu votre demande"

        status = c.get("/status", headers=fr)
        assert "État d'un signalement" in html.unescape(status.text)
        found = c.post("/status", headers=fr, data={"number": number, "contact": "giulia.bianchi@regione.example.it",
                                                    **form_fields(status.text)})
        assert "Reçu, en attente de prise en charge" in html.unescape(found.text)
    wait_for(lambda: len(mail_core.desk.ticket(number).messages) == 2)  # the acknowledgement is on the ticket


def test_the_web_form_in_french_in_chromium(sqlite_core, web_factory, chromium):
    web = web_factory(sqlite_core)
    context = chromium.new_context(locale="fr-FR", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.goto(web.url + "/")
        assert page.locator("h1").inner_text() == "Signaler un problème"
        page.get_by_label(re.compile(r"^Prénom et nom")).fill("Jean Dupont")
        page.get_by_label(re.compile(r"^Courriel")).fill("jean.dupont@example.org")
        page.get_by_label(re.compile(r"^Appareil ou logiciel concerné")).fill("le registre du protocole")
        page.get_by_label(re.compile(r"^Décrivez le problème")).fill("Le protocole affiche une erreur 500 à l'enregistrement.")
        page.get_by_role("button", name="Envoyer le signalement").click()
        number = page.locator("#ticket-number").inner_text()
        assert "Le numéro de votre signalement est" in page.content()
        assert web.desk.ticket(number).language == "fr"
        page.get_by_role("link", name="Italiano").click()
        assert page.locator("h1").inner_text() == "Segnala un problema"
    finally:
        context.close()


def test_the_api_takes_a_report_in_french(web_factory, sqlite_core):
    """The third channel's intake by API says its language as the form and mail do: `fr` is one of them."""
    w = web_factory(sqlite_core)
    with httpx.Client(base_url=w.url, headers={"authorization": f"Bearer {w.token}"}) as c:
        r = c.post("/api/v1/tickets", json={"external_id": "fr-1", "name": "Giulia Bianchi", "email": "giulia.bianchi@regione.example.it",
                                            "asset": "imprimante", "anomaly": "L'imprimante du bureau n'imprime plus.", "language": "fr"})
        assert r.status_code == 201, r.text
        t = c.get(f"/api/v1/tickets/{r.json()['number']}").json()
    assert t["language"] == "fr"
