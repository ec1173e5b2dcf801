"""Suggestions where operators and integrations see them (issue 13 §2): the desk's ticket page lists the
nearest articles and resolved tickets, one button mails the workaround to the reporter through the durable
outbox (to the shipped collecting sink), and `GET /api/v1/tickets/{number}` carries them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx

from tests.test_web_mail import desk_login, mail_core, sink  # noqa: F401  (fixtures)
from tests.test_web_support import form_fields, web, web_factory  # noqa: F401  (fixtures)
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


# -- articles written in the desk and through the API (issue 13 §1), on SQLite and PostgreSQL ----------------
SUPERVISOR = "sara.capo"
FORM = re.compile(r'<form method="post" action="([^"]+)" class="report article-form" id="kb-form">(.*?)</form>', re.S)


def login_as(c: httpx.Client, username: str, password: str = "correct horse battery") -> None:
    hidden = form_fields(c.get("/desk/login").text)
    assert c.post("/desk/login", data={"username": username, "password": password, **hidden}).status_code == 303


def editor(c: httpx.Client, url: str) -> tuple[str, dict]:
    """The editor's form action and its fields as the page fills them (hidden ones, inputs, textareas, choices)."""
    page = c.get(url)
    assert page.status_code == 200, page.text
    action, form = FORM.search(page.text).groups()
    fields = {k: html.unescape(v) for k, v in re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form)}
    fields.update({k: html.unescape(v) for k, v in re.findall(r'<textarea[^>]*name="(\w+)"[^>]*>(.*?)</textarea>', form, re.S)})
    for name, options in re.findall(r'<select[^>]*name="(\w+)">(.*?)</select>', form, re.S):
        fields[name] = re.search(r'<option value="(\w+)" selected>', options).group(1)
    fields["kinds"] = re.findall(r'name="kinds" value="(\w+)"[^>]*checked', form)
    fields.pop("kinds") if not fields["kinds"] else None
    return html.unescape(action), fields


def article_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    return int(re.match(r"/desk/articles/(\d+)\?", response.headers["location"]).group(1))


def test_operators_draft_supervisors_publish_every_save_is_a_version(core, web_factory):
    from ticketing import kbindex

    web = web_factory(core, cookie_secure=False)
    web.desk.accounts.add(SUPERVISOR, "Sara Capo", "correct horse battery", role="supervisor")
    with httpx.Client(base_url=web.url) as op, httpx.Client(base_url=web.url) as sup:
        desk_login(op)
        login_as(sup, SUPERVISOR)
        action, fields = editor(op, "/desk/articles/new?lang=fr")
        assert action == "/desk/articles" and fields["language"] == "fr" and "status" not in re.findall(r'<select[^>]*name="(\w+)"', op.get("/desk/articles/new").text)
        fields.update(title="L'imprimante bourre le papier", symptom="Voyant orange, feuille coincée", solution="Ouvrir le volet avant et retirer la feuille.",
                      assets="prn-0210, PRN-0210", kinds=["hardware"])
        first = article_id(op.post(action, data=fields))
        view = op.get(f"/desk/articles/{first}?lang=en").text
        assert 'data-status="draft"' in view and 'id="kb-version">1<' in view and "PRN-0210" in view and 'id="kb-publish-note"' in view
        assert 'id="kb-publish"' not in view  # an operator does not publish

        # The operator may not publish; the supervisor may.
        csrf = editor(op, "/desk/articles/new")[1]["csrf"]  # the desk's article forms' token, valid for this operator
        refused = op.post(f"/desk/articles/{first}/published", data={"csrf": csrf})
        assert refused.status_code == 403 and "CSRF" not in refused.text  # refused for the role
        assert op.post(f"/desk/articles/{first}/published", data={"csrf": "forged"}).status_code == 403

        # An edit is the next version; a save over a version someone else changed meanwhile is refused.
        action, fields = editor(op, f"/desk/articles/{first}/edit")
        assert fields["version"] == "1" and fields["kinds"] == ["hardware"]
        stale = dict(fields)
        fields["solution"] += " Puis relancer l'impression."
        assert op.post(action, data=fields).headers["location"] == f"/desk/articles/{first}?done=saved"
        refused = op.post(action, data={**stale, "title": "Autre titre"})
        assert refused.status_code == 409 and 'id="kb-error"' in refused.text and 'value="Autre titre"' in refused.text
        assert op.post(action, data={**fields, "version": "2"}).headers["location"].endswith("done=unchanged")

        page = sup.get(f"/desk/articles/{first}").text
        assert 'id="kb-publish"' in page
        published = sup.post(f"/desk/articles/{first}/published", data={"csrf": form_fields(page)["csrf"]})
        assert published.headers["location"] == f"/desk/articles/{first}?done=published"
        page = sup.get(f"/desk/articles/{first}?lang=it").text
        assert 'data-status="published"' in page and [int(v) for v in re.findall(r'<tr data-version="(\d+)">', page)] == [3, 2, 1]
        assert "sara.capo" in page and "anna.verdi" in page
        with core.sessions() as s:
            hits = kbindex.rank(s, "feuille coincée dans l'imprimante", "fr", kbindex.ARTICLE)
        assert [h.ref for h in hits] == [first]  # published: in the index the suggestions read

        # A published article is the supervisors' to edit.
        assert op.get(f"/desk/articles/{first}/edit").status_code == 403
        action, fields = editor(sup, f"/desk/articles/{first}/edit")
        refused = op.post(action, data={**fields, "csrf": csrf, "title": "Changé"})
        assert refused.status_code == 403 and 'id="kb-error"' in refused.text  # the role, not the CSRF token
        # An unknown asset is named, and nothing is written.
        action, fields = editor(op, "/desk/articles/new")
        fields.update(title="Un titolo", solution="Qualcosa", assets="NOPE-404")
        bad = op.post(action, data=fields)
        assert bad.status_code == 422 and "NOPE-404" in bad.text
        assert 'value="Un titolo"' in bad.text  # the operator's words are kept in the form

        unpublished = sup.post(f"/desk/articles/{first}/draft", data={"csrf": form_fields(page)["csrf"]})
        assert unpublished.headers["location"].endswith("done=draft")
        with core.sessions() as s:
            assert kbindex.rank(s, "feuille coincée dans l'imprimante", "fr", kbindex.ARTICLE) == []


def test_the_list_filters_by_language_status_and_asset_and_pages(core, web_factory):
    from ticketing.knowledge import ArticleData, save

    with core.sessions() as s, s.begin():
        for i in range(27):
            save(s, ArticleData(f"bulk-{i:02d}", f"Articolo {i:02d}", "sintomo", "soluzione", ("PRN-0210",) if i % 3 == 0 else (),
                                ("software",) if i % 3 == 1 else (), ("it", "fr", "en")[i % 3], "published" if i % 2 else "draft"), "test")
    web = web_factory(core, cookie_secure=False)
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        rows = lambda r: re.findall(r'<tr data-article="(\d+)" data-status="(\w+)">', r.text)  # noqa: E731
        first = c.get("/desk/articles")
        assert len(rows(first)) == 25 and 'rel="next"' in first.text
        assert len(rows(c.get("/desk/articles?page=2"))) == 2
        assert len(rows(c.get("/desk/articles?language=fr"))) == 9
        assert {s for _, s in rows(c.get("/desk/articles?status=published"))} == {"published"} and len(rows(c.get("/desk/articles?status=published"))) == 13
        assert len(rows(c.get("/desk/articles?asset=prn-0210"))) == 9
        assert len(rows(c.get("/desk/articles?asset=software&status=draft"))) == 4
        assert len(rows(c.get("/desk/articles?asset=PRN-02"))) == 0  # a whole tag, not a prefix
        assert len(rows(c.get("/desk/articles?q=articolo 1"))) == 10


def test_turn_a_resolution_into_an_article(core, web_factory):
    web = web_factory(core, cookie_secure=False)
    r = core.intake.submit(Contact(Channel.EMAIL, "<kb-turn@example.org>", sender=Sender("Mario Rossi", "mario.rossi@example.org"),
                                   subject="Stampante", text="La stampante PRN-0210 stampa tutte le pagine bianche da stamattina.", language="it"))
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        assert 'id="to-article"' not in c.get(f"/desk/tickets/{r.ticket_number}").text  # open: nothing to turn yet
        assert c.get(f"/desk/articles/new?ticket={r.ticket_number}").status_code == 409
        web.desk.resolve(r.ticket_number, "anna.verdi", "Sostituito il toner esaurito; stampa di prova corretta.")
        page = c.get(f"/desk/tickets/{r.ticket_number}?lang=en").text
        link = re.search(r'<a href="([^"]+)" id="to-article"', page).group(1)
        action, fields = editor(c, html.unescape(link))
        ticket = web.desk.ticket(r.ticket_number)
        asset = ticket.field("asset").value.split()[0]
        assert fields["title"] and fields["title"] in ticket.field("anomaly").value
        assert fields["symptom"] == ticket.field("anomaly").value
        assert fields["solution"] == "Sostituito il toner esaurito; stampa di prova corretta."
        assert fields["assets"] == asset and fields["kinds"] == ["hardware"] and fields["language"] == "it"
        assert fields["source_ticket"] == r.ticket_number and fields["status"] == "draft"
        made = article_id(c.post(action, data=fields))
        view = c.get(f"/desk/articles/{made}").text
        assert 'data-status="draft"' in view and f'href="/desk/tickets/{r.ticket_number}" id="kb-source"' in view
        assert c.get("/desk/articles/new?ticket=HD-2020-999999").status_code == 404


def test_articles_api_scopes_roles_and_versions(core, web_factory):
    web = web_factory(core, cookie_secure=False)
    accounts = web.desk.accounts
    accounts.add(SUPERVISOR, "Sara Capo", "correct horse battery", role="supervisor")
    boss = accounts.create_token("boss-tool", operator=SUPERVISOR)
    reader = accounts.create_token("kb-reader", scopes=("read",))
    auth = lambda token: {"authorization": f"Bearer {token}"}  # noqa: E731
    body = {"title": "Outlook chiede la password", "symptom": "Finestra di accesso ripetuta", "solution": "Rimuovere le credenziali salvate.",
            "assets": [], "kinds": ["software"], "language": "it"}
    with httpx.Client(base_url=web.url + "/api/v1") as c:
        assert c.get("/articles").status_code == 401
        made = c.post("/articles", json=body, headers=auth(web.token))
        assert made.status_code == 201 and made.json()["status"] == "draft" and made.json()["version"] == 1
        n = made.json()["id"]
        assert made.headers["location"] == f"/api/v1/articles/{n}"
        assert c.post("/articles", json={**body, "status": "published"}, headers=auth(web.token)).status_code == 403  # a service token drafts
        assert c.post("/articles", json=body, headers=auth(reader)).status_code == 403  # read scope
        assert c.post("/articles", json={**body, "symptom": "", "solution": " "}, headers=auth(web.token)).status_code == 422
        unknown = c.post("/articles", json={**body, "assets": ["NOPE-1"]}, headers=auth(web.token))
        assert unknown.status_code == 409 and "NOPE-1" in unknown.json()["detail"]

        up = c.put(f"/articles/{n}", json={**body, "status": "published", "version": 1}, headers=auth(boss))
        assert up.status_code == 200 and up.json()["status"] == "published" and up.json()["version"] == 2
        assert [v["version"] for v in up.json()["versions"]] == [2, 1] and up.json()["versions"][0]["actor"] == SUPERVISOR
        stale = c.put(f"/articles/{n}", json={**body, "title": "Altro", "status": "published", "version": 1}, headers=auth(boss))
        assert stale.status_code == 409 and "version 2" in stale.json()["detail"]
        assert c.put(f"/articles/{n}", json={**body, "title": "Altro"}, headers=auth(web.token)).status_code == 403  # published

        got = c.get(f"/articles/{n}", headers=auth(reader)).json()
        assert got["title"] == body["title"] and got["asset_kinds"] == ["software"] and got["solution"] == body["solution"]
        listed = c.get("/articles", params={"status": "published", "asset": "software"}, headers=auth(reader)).json()
        assert [a["id"] for a in listed["items"]] == [n] and listed["total"] == 1
        assert c.get("/articles", params={"language": "fr"}, headers=auth(reader)).json()["total"] == 0
        assert c.get("/articles/999999", headers=auth(reader)).status_code == 404


def test_every_article_page_in_every_language_shows_no_raw_key(web):
    from tests.test_web_ticket_page import visible_text

    with web.core.sessions() as s, s.begin():
        from ticketing.knowledge import ArticleData, save

        a, _ = save(s, ArticleData("x-1", "Titolo", "Sintomo", "Soluzione", ("PRN-0210",), ("hardware",), "it", "draft"), "test")
        n = a.id
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        for lang in ("it", "fr", "en"):
            for url in ("/desk/articles", "/desk/articles/new", f"/desk/articles/{n}", f"/desk/articles/{n}/edit", "/desk/articles/424242"):
                r = c.get(f"{url}?lang={lang}")
                assert r.status_code == (404 if url.endswith("424242") else 200) and f'<html lang="{lang}">' in r.text, (lang, url)
                seen = visible_text(r.text)
                assert not re.search(r"\bkbs?_\w+", seen), (lang, url)  # no text key
                if lang != "en":  # the coded values, in the language's own words
                    assert not re.search(r"\b(published|draft|hardware)\b", seen), (lang, url)
