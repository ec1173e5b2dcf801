"""The public side of the web channel over HTTP: the report form (IT/EN), its guards (CSRF, honeypot, limits),
and the status page. A real uvicorn server on loopback, a real core on SQLite; httpx as the client."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from tests.test_web_support import build, form_fields, web, web_factory  # noqa: F401  (fixtures)

NUMBER = re.compile(r'id="ticket-number">([A-Z]+-\d{4}-\d+)<')


def get_form(client: httpx.Client, **headers) -> tuple[str, dict]:
    r = client.get("/", headers=headers)
    assert r.status_code == 200
    return r.text, form_fields(r.text)


def report(client: httpx.Client, files=None, **values) -> httpx.Response:
    _, hidden = get_form(client)
    data = {"name": "Mario Rossi", "email": "mario.rossi@regione.example.it", "phone": "", "asset": "stampante tributi",
            "anomaly": "La stampante non stampa da stamattina, luce arancione.", "website": "", **hidden}
    data.update(values)
    return client.post("/", data=data, files=files)


def tickets(core) -> int:
    from ticketing.models import Ticket

    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket))


def test_form_is_italian_by_default_and_english_on_request(web):
    with httpx.Client(base_url=web.url) as c:
        it, _ = get_form(c)
        assert '<html lang="it">' in it and "Segnala un problema" in it
        en, _ = get_form(c, **{"Accept-Language": "en-GB,en;q=0.9,it;q=0.5"})
        assert '<html lang="en">' in en and "Report a problem" in en
        # The visible switch link, remembered by a cookie.
        assert "?lang=en" in it
        c.get("/?lang=en")
        assert "Report a problem" in c.get("/").text
    for label in ("name", "email", "phone", "asset", "anomaly"):
        assert f'<label for="{label}">' in it and f'id="{label}"' in it


def test_submit_shows_the_number_and_makes_one_ticket_with_the_form_fields(web):
    with httpx.Client(base_url=web.url) as c:
        r = report(c)
    assert r.status_code == 200, r.text
    number = NUMBER.search(r.text).group(1)
    t = web.desk.ticket(number)
    assert t.channel == "web" and t.status == "new" and t.level == 1
    assert t.field("reporter_name").value == "Mario Rossi" and t.field("reporter_name").source in ("form", "directory")
    assert t.field("anomaly").value.startswith("La stampante non stampa")
    assert t.field("asset").value  # matched in the inventory, or the typed text
    assert t.messages[0].sender_email == "mario.rossi@regione.example.it"


def test_a_double_submit_is_one_ticket(web):
    with httpx.Client(base_url=web.url) as c:
        _, hidden = get_form(c)
        data = {"name": "Luca Ferrari", "email": "luca.ferrari@regione.example.it", "asset": "PC-0142", "anomaly": "Il PC non si accende", **hidden}
        first = c.post("/", data=data)
        second = c.post("/", data=data)
    assert NUMBER.search(first.text).group(1) == NUMBER.search(second.text).group(1)
    assert tickets(web.core) == 1


def test_without_csrf_token_the_post_is_refused_with_403(web):
    with httpx.Client(base_url=web.url) as c:
        _, hidden = get_form(c)
        data = {"name": "X", "email": "x@example.org", "asset": "pc", "anomaly": "guasto", "sid": hidden["sid"]}
        assert c.post("/", data=data).status_code == 403
        assert c.post("/", data={**data, "csrf": "forged"}).status_code == 403
        # A token is bound to the client's cookie: another client's token does not work here.
    with httpx.Client(base_url=web.url) as other:
        assert other.post("/", data={**data, "csrf": hidden["csrf"]}).status_code == 403
    assert tickets(web.core) == 0


def test_honeypot_makes_no_ticket_but_is_kept_for_review(web):
    from ticketing.models import Rejection

    with httpx.Client(base_url=web.url) as c:
        r = report(c, website="http://spam.example")
    assert r.status_code == 200 and not NUMBER.search(r.text)
    assert tickets(web.core) == 0
    with web.core.sessions() as s:
        assert s.scalar(select(Rejection.reason)).startswith("honeypot")


def test_missing_fields_get_messages_tied_to_them(web):
    with httpx.Client(base_url=web.url) as c:
        r = report(c, name="", email="", phone="", anomaly="   ")
    assert r.status_code == 400
    for field in ("name", "email", "anomaly"):
        assert f'id="{field}-error"' in r.text
        assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error"[^>]*aria-invalid="true"', r.text), field
    assert 'value="stampante tributi"' in r.text  # what was typed is kept
    assert tickets(web.core) == 0


def test_bad_email_and_phone_are_explained(web):
    with httpx.Client(base_url=web.url, headers={"Accept-Language": "en"}) as c:
        r = report(c, email="not-an-address", phone="abc")
    assert r.status_code == 400
    assert "Not a valid email address." in r.text and "Not a valid phone number." in r.text


def test_attachments_are_stored_and_limits_have_clear_messages(web):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    with httpx.Client(base_url=web.url, headers={"Accept-Language": "en"}) as c:
        ok = report(c, files=[("attachments", ("screen.png", png, "image/png"))])
        assert ok.status_code == 200, ok.text
        number = NUMBER.search(ok.text).group(1)
        big = report(c, files=[("attachments", ("big.pdf", b"%PDF" + b"x" * (6 * 1024 * 1024), "application/pdf"))])
        assert big.status_code in (400, 413)
        assert "over the" in big.text or "too large" in big.text
        exe = report(c, files=[("attachments", ("setup.exe", b"MZ...", "application/x-msdownload"))])
        assert exe.status_code == 400 and "setup.exe" in exe.text and "type we do not accept" in exe.text
    a = web.desk.ticket(number).messages[0].attachments[0]
    assert a.filename == "screen.png" and web.ctx.blobs.get(a.sha256) == png
    assert tickets(web.core) == 1


def test_an_oversized_request_is_refused_with_413(sqlite_core, web_factory):
    w = web_factory(sqlite_core, cookie_secure=False, max_request_bytes=64 * 1024)
    with httpx.Client(base_url=w.url) as c:
        r = report(c, anomaly="x" * (100 * 1024))
    assert r.status_code == 413
    assert tickets(sqlite_core) == 0


def lookup(c: httpx.Client, number: str, contact: str) -> httpx.Response:
    hidden = form_fields(c.get("/status").text)
    return c.post("/status", data={"number": number, "contact": contact, **hidden})


def test_status_lookup_needs_the_number_and_the_contact_and_does_not_tell_which_is_wrong(web):
    with httpx.Client(base_url=web.url) as c:
        number = NUMBER.search(report(c, phone="+39 055 438 2290").text).group(1)
        other = number[:-1] + ("9" if number[-1] != "9" else "8")
        right = lookup(c, number, "mario.rossi@regione.example.it")
        by_phone = lookup(c, number.lower(), "055 4382290")
        wrong_contact = lookup(c, number, "someone@example.org")
        wrong_number = lookup(c, other, "mario.rossi@regione.example.it")
    assert right.status_code == 200 and "Ricevuta, in attesa di presa in carico" in right.text
    assert by_phone.status_code == 200 and number in by_phone.text
    assert wrong_contact.status_code == wrong_number.status_code == 404
    # Same page but for what the user typed into the two boxes.
    strip = lambda r, *typed: re.sub("|".join(re.escape(x) for x in typed), "<typed>", r.text)  # noqa: E731
    assert strip(wrong_contact, number, "someone@example.org") == strip(wrong_number, other, "mario.rossi@regione.example.it")


def test_status_lookups_are_rate_limited_per_client(sqlite_core, web_factory):
    w = web_factory(sqlite_core, cookie_secure=False, status_per_minute=3)
    with httpx.Client(base_url=w.url) as c:
        codes = [lookup(c, "HD-2026-000001", "a@example.org").status_code for _ in range(5)]
    assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]


def test_form_submissions_are_rate_limited_per_client(sqlite_core, web_factory):
    w = web_factory(sqlite_core, cookie_secure=False, submit_per_minute=2)
    with httpx.Client(base_url=w.url) as c:
        codes = [report(c).status_code for _ in range(3)]
        last = report(c)
    assert codes == [200, 200, 429] and "retry-after" in last.headers
    assert tickets(sqlite_core) == 2


def test_asset_suggestions_come_from_the_inventory(web):
    with httpx.Client(base_url=web.url) as c:
        found = c.get("/assets/suggest", params={"q": "protoc"}).json()
        assert any(a["tag"] == "PROT-01" for a in found)
        assert c.get("/assets/suggest", params={"q": "%_"}).json() == []


def test_pages_forbid_inline_script(web):
    with httpx.Client(base_url=web.url) as c:
        csp = c.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
