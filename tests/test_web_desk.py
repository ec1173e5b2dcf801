"""The operator desk over HTTP: login (argon2, lockout, cookie flags), guarded pages, the queue's order and
filters, refused actions, files; the `operators add` command; and the Big List of Naughty Strings sent
through the form and rendered in the operator pages of a real browser, where no script may run."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import missing
from tests.test_web_support import OPERATOR, PASSWORD, chromium, form_fields, login, page, web, web_factory  # noqa: F401

NUMBER = re.compile(r'id="ticket-number">([A-Z]+-\d{4}-\d+)<')


def desk_login(c: httpx.Client, username=OPERATOR, password=PASSWORD) -> httpx.Response:
    hidden = form_fields(c.get("/desk/login").text)
    return c.post("/desk/login", data={"username": username, "password": password, **hidden})


def submit(web, external_id, channel="email", text="La stampante non stampa", sender=None):
    from ticketing.contact import Channel, Contact, Sender

    return web.ctx.intake.deliver(Contact(Channel(channel), external_id, sender=Sender(**(sender or {})), subject="Guasto", text=text))


def test_desk_pages_need_a_login(web):
    with httpx.Client(base_url=web.url) as c:
        for path in ("/desk/", "/desk/tickets/HD-2026-000001", "/desk/poll"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/desk/login?next=")
        forged = c.get("/desk/", headers={"cookie": "hd_session=anna.verdi|9999999999|forged"})
        assert forged.status_code == 303


def test_login_sets_a_hardened_cookie_and_passwords_are_argon2(sqlite_core, web_factory):
    from ticketing.operators import Operator

    w = web_factory(sqlite_core)  # Secure cookies on: read the header, httpx would not send them back over http
    with httpx.Client(base_url=w.url) as c:
        first = c.get("/desk/login")
        csrf_cookie = first.cookies["hd_csrf"]  # Secure: httpx keeps it for https, so it is sent by hand here
        r = c.post("/desk/login", data={"username": OPERATOR, "password": PASSWORD, **form_fields(first.text)},
                   headers={"cookie": f"hd_csrf={csrf_cookie}"})
    assert r.status_code == 303 and r.headers["location"] == "/desk/"
    cookie = r.headers["set-cookie"].lower()
    assert "hd_session=" in cookie and "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    with sqlite_core.sessions() as s:
        assert s.scalar(select(Operator.password_hash)).startswith("$argon2id$")


def test_wrong_logins_slow_down_one_username_from_one_address_and_never_lock_the_account(web):
    """Issue 14 §5: a throttle per (username, source), the same words and time for unknown usernames."""
    from ticketing.audit import recent

    with httpx.Client(base_url=web.url) as c:
        for _ in range(2):  # the fixture's throttle: the 3rd failure in a row makes this pair wait 2 s
            r = desk_login(c, password="wrong password!")
            assert r.status_code == 401 and "Nome utente o password errati" in r.text
        third = desk_login(c, password="wrong password!")
        assert third.status_code == 401 and "Riprovi tra 2 s" in third.text
        waiting = desk_login(c)  # the right password, but this pair must wait
        assert waiting.status_code == 401 and "Riprovi tra" in waiting.text
        # An unknown username gets the same words, and the same wait after as many failures.
        unknown = [desk_login(c, username="nobody", password="wrong password!") for _ in range(3)]
        assert [r.status_code for r in unknown] == [401] * 3
        assert "Nome utente o password errati" in unknown[0].text and "Riprovi tra 2 s" in unknown[2].text
    # From another address the operator is not locked out: the account itself is never locked.
    assert web.desk.accounts.authenticate(OPERATOR, PASSWORD, "10.9.9.9").ok
    # Known and unknown usernames cost one argon2 verification each: the same order of time.
    t0 = time.perf_counter(); web.desk.accounts.authenticate(OPERATOR, "nope nope nope", "10.1.1.1"); known = time.perf_counter() - t0
    t0 = time.perf_counter(); web.desk.accounts.authenticate("nobody-at-all", "nope nope nope", "10.1.1.1"); stranger = time.perf_counter() - t0
    assert stranger > known / 3 and known > stranger / 3
    kinds = [e.kind for e in recent(web.desk.sessions)]
    assert "login.failed" in kinds and "login.throttled" in kinds and "login" in kinds
    with httpx.Client(base_url=web.url) as c:
        time.sleep(2.2)
        assert desk_login(c).status_code == 303


def test_open_redirects_are_refused_after_login(web):
    with httpx.Client(base_url=web.url) as c:
        hidden = form_fields(c.get("/desk/login?next=https://evil.example/").text)
        r = c.post("/desk/login", data={"username": OPERATOR, "password": PASSWORD, **hidden})
    assert r.headers["location"] == "/desk/"


def test_queue_is_most_urgent_and_newest_first_and_filters(web):
    a = submit(web, "q1@x", sender={"name": "Mario Rossi", "email": "mario.rossi@regione.example.it"}, text="Il protocollo informatico è bloccato, urgente")
    b = submit(web, "q2@x", sender={"name": "Luca Ferrari", "email": "luca.ferrari@regione.example.it"}, text="La stampante tributi non stampa")
    c_ = submit(web, "q3@x", channel="voice", sender={"phone": "+39 055 438 2144"}, text="sono giulia bianchi il pc non si accende")
    web.desk.take(b.ticket_number, "anna.verdi")
    web.desk.escalate(c_.ticket_number, "anna.verdi", "hardware")
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        html = c.get("/desk/").text
        numbers = re.findall(r'href="/desk/tickets/([^"]+)"', html)
        assert set(numbers) == {a.ticket_number, b.ticket_number, c_.ticket_number}
        expected = [r.number for r in web.desk.queue().items]
        assert numbers == expected
        assert re.findall(r'href="/desk/tickets/([^"]+)"', c.get("/desk/?channel=voice").text) == [c_.ticket_number]
        assert re.findall(r'href="/desk/tickets/([^"]+)"', c.get("/desk/?level=2").text) == [c_.ticket_number]
        assert re.findall(r'href="/desk/tickets/([^"]+)"', c.get("/desk/?assignee=anna.verdi").text) == [b.ticket_number]
        assert re.findall(r'href="/desk/tickets/([^"]+)"', c.get("/desk/?status=in_progress").text) == [b.ticket_number]
        assert b.ticket_number in c.get("/desk/?asset=stampante").text
        assert a.ticket_number not in c.get("/desk/?asset=stampante").text
        assert c.get("/desk/?level=<script>&page=abc").status_code == 200  # junk filters are ignored
    order = [(r.priority, -r.created_at.timestamp()) for r in web.desk.queue().items]
    assert order == sorted(order)


def test_an_invalid_action_is_refused_with_a_clear_message(web):
    r = submit(web, "act@x", sender={"email": "mario.rossi@regione.example.it"})
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        hidden = form_fields(c.get(f"/desk/tickets/{r.ticket_number}").text)
        refused = c.post(f"/desk/tickets/{r.ticket_number}/close", data={"csrf": hidden["csrf"]})
        assert refused.status_code == 409 and "a new ticket cannot become closed" in refused.text
        no_reason = c.post(f"/desk/tickets/{r.ticket_number}/escalate", data={"csrf": hidden["csrf"], "text": " "})
        assert no_reason.status_code == 409 and "an escalation needs a reason" in no_reason.text
        no_csrf = c.post(f"/desk/tickets/{r.ticket_number}/take", data={})
        assert no_csrf.status_code == 403
        ok = c.post(f"/desk/tickets/{r.ticket_number}/field", data={"csrf": hidden["csrf"], "name": "asset", "text": "PRN-TRIB-02"})
        assert ok.status_code == 303
    t = web.desk.ticket(r.ticket_number)
    assert t.status == "new" and t.assignee is None and t.level == 1
    assert t.field("asset").value == "PRN-TRIB-02" and t.field("asset").source == "operator"


def test_files_are_served_only_for_their_ticket(web):
    png = b"\x89PNG\r\n\x1a\n" + b"1" * 50
    with httpx.Client(base_url=web.url) as c:
        hidden = form_fields(c.get("/").text)
        r = c.post("/", data={"name": "Mario Rossi", "email": "mario.rossi@regione.example.it", "asset": "pc", "anomaly": "schermo rotto", **hidden},
                   files=[("attachments", ("foto.png", png, "image/png"))])
        number = NUMBER.search(r.text).group(1)
        other = submit(web, "other@x", sender={"email": "x@example.org"}).ticket_number
        sha = web.desk.ticket(number).messages[0].attachments[0].sha256
        assert c.get(f"/desk/tickets/{number}/files/{sha}").status_code == 303  # login first
        desk_login(c)
        got = c.get(f"/desk/tickets/{number}/files/{sha}")
        assert got.status_code == 200 and got.content == png and got.headers["content-type"] == "image/png"
        assert c.get(f"/desk/tickets/{other}/files/{sha}").status_code == 404


def test_operators_add_command(sqlite_core, tmp_path):
    import click
    from click.testing import CliRunner

    from channels.web.cli import operators
    from gateway.cli import State
    from ticketing.operators import Accounts

    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.obj = State(None)

    root.add_command(operators)
    env = {"HELPDESK_GATEWAY__STORAGE__URL": str(sqlite_core.engine.url), "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    r = runner.invoke(root, ["operators", "add", "Paolo.Neri", "--name", "Paolo Neri", "--password-stdin"], input="una password lunga\n", env=env)
    assert r.exit_code == 0, r.output
    assert "operator paolo.neri (Paolo Neri, operator) created" in r.output
    again = runner.invoke(root, ["operators", "add", "paolo.neri", "--password-stdin"], input="una password lunga\n", env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(root, ["operators", "add", "x", "--password-stdin"], input="corta\n", env=env)
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert Accounts(sqlite_core.sessions).authenticate("paolo.neri", "una password lunga").ok
    # Roles, groups and tokens from the command line (issue 12 §3, issue 14 §5), each in the audit trail.
    r = runner.invoke(root, ["operators", "role", "paolo.neri", "specialist", "--group", "Sistemi"], env=env)
    assert r.exit_code == 0 and "paolo.neri: specialist" in r.output, r.output
    assert Accounts(sqlite_core.sessions).get("paolo.neri").groups == ("Sistemi",)
    token = runner.invoke(root, ["operators", "token", "paolo-cli", "--operator", "paolo.neri", "--scope", "read"], env=env).output.strip()
    identity = Accounts(sqlite_core.sessions).identity(token)
    assert identity.name == "paolo.neri" and identity.scopes == {"read"} and identity.role == "specialist"
    listed = runner.invoke(root, ["operators", "tokens", "list"], env=env).output
    assert "paolo-cli\tpaolo.neri\tread\tnever\tactive" in listed
    runner.invoke(root, ["operators", "deactivate", "paolo.neri"], env=env)
    assert Accounts(sqlite_core.sessions).identity(token) is None  # a token dies with its operator
    assert "paolo-cli\tpaolo.neri\tread\tnever\trevoked" in runner.invoke(root, ["operators", "tokens", "list"], env=env).output
    assert runner.invoke(root, ["operators", "tokens", "revoke", "nope"], env=env).exit_code == 1


def blns() -> list[str]:
    root = os.environ.get("HELPDESK_CORPORA")
    path = Path(root) / "xss" / "blns.txt" if root else None
    if path is None or not path.exists():
        missing("the Big List of Naughty Strings ($HELPDESK_CORPORA/xss/blns.txt) is not available")
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_naughty_strings_come_back_escaped_in_the_operator_pages(web, page):
    strings = blns()
    numbers: list[tuple[str, list[str]]] = []
    with httpx.Client(base_url=web.url) as c:
        # Eight strings a report (name, asset, and all eight in the anomaly), to keep the test quick.
        for i in range(0, len(strings), 8):
            group = strings[i : i + 8]
            hidden = form_fields(c.get("/").text)
            data = {"name": group[0][:200], "email": "mario.rossi@regione.example.it", "asset": group[-1][:200],
                    "anomaly": f"[{i}]\n" + "\n".join(group), **hidden}
            r = c.post("/", data=data)
            m = NUMBER.search(r.text)
            if r.status_code == 400:  # a string that is blank once cleaned: the form says so, escaped too
                assert 'id="name-error"' in r.text or 'id="asset-error"' in r.text, group
                data.update(name="Mario Rossi", asset="pc")
                r = c.post("/", data=data)
                m = NUMBER.search(r.text)
            assert r.status_code == 200 and m, (group, r.status_code)
            numbers.append((m.group(1), group))
    login(page, web.url)
    # No element may carry an event handler or a script we did not write, and no dialog may open.
    injected = "() => [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length + document.querySelectorAll('script:not([src^=\"/static/\"]), iframe, object, embed').length"
    for n in range(1, len(numbers) // 50 + 2):
        page.goto(f"{web.url}/desk/?status=all&page={n}")
        assert page.evaluate(injected) == 0
    for number, group in numbers:
        page.goto(f"{web.url}/desk/tickets/{number}")
        assert page.evaluate(injected) == 0, group
        stored = web.desk.ticket(number).messages[0].text
        assert page.locator("article.message pre.text").inner_text() == stored, group
        assert web.desk.ticket(number).field("reporter_name").value in page.locator("table.fields").inner_text()
    assert page.dialogs == []


def test_form_queue_actions_and_status_on_each_database(core, web_factory):
    """The same path on SQLite and on a real PostgreSQL: the Desk's queries and actions are portable."""
    w = web_factory(core, cookie_secure=False)
    w.desk.accounts.set_role(OPERATOR, "supervisor")  # acts at level II too
    with httpx.Client(base_url=w.url) as c:
        hidden = form_fields(c.get("/").text)
        r = c.post("/", data={"name": "Giulia Bianchi", "phone": "055 438 2144", "asset": "protocollo", "anomaly": "errore 500\x00 al salvataggio", **hidden})
        number = NUMBER.search(r.text).group(1)
        desk_login(c)
        assert number in c.get("/desk/?asset=protocollo&status=all&level=1").text
        page_html = c.get(f"/desk/tickets/{number}").text
        csrf = form_fields(page_html)["csrf"]
        assert c.post(f"/desk/tickets/{number}/take", data={"csrf": csrf}).status_code == 303
        assert c.post(f"/desk/tickets/{number}/escalate", data={"csrf": csrf, "text": "serve il fornitore"}).status_code == 303
        assert c.post(f"/desk/tickets/{number}/resolve", data={"csrf": csrf, "text": "patch applicata"}).status_code == 303
        status = c.post("/status", data={"number": number, "contact": "+39 055 4382144", **form_fields(c.get("/status").text)})
    assert status.status_code == 200 and "Risolta" in status.text
    t = w.desk.ticket(number)
    assert (t.status, t.level) == ("resolved", 2) and "\x00" not in t.messages[0].text


def test_logging_out_ends_the_session_on_the_server(web):
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        copied = c.cookies["hd_session"]  # a copy of the cookie: another tab, or one that was stolen
        queue = c.get("/desk/")
        assert queue.status_code == 200
        csrf = re.search(r'action="/desk/logout".*?name="csrf" value="([^"]+)"', queue.text, re.S).group(1)
        assert c.post("/desk/logout", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=web.url) as other:
        r = other.get("/desk/", headers={"cookie": f"hd_session={copied}"})
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/login")


def test_a_deactivated_operator_loses_their_sessions(web):
    from ticketing.operators import Operator

    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        assert c.get("/desk/").status_code == 200
        web.core.desk.accounts.set_active(OPERATOR, False)  # what `helpdesk-gateway operators deactivate` does
        with web.core.sessions() as s:
            assert not s.scalars(select(Operator).where(Operator.username == OPERATOR)).one().active
        r = c.get("/desk/")
        assert r.status_code == 303 and r.headers["location"].startswith("/desk/login")
        assert desk_login(c).status_code == 401  # and cannot log in again
        web.core.desk.accounts.set_active(OPERATOR, True)
        assert desk_login(c).status_code in (200, 303)  # reactivated: a fresh login, the old session stays ended


def test_assigning_from_the_desk_names_an_active_operator_and_a_specialist_is_refused_other_groups(web):
    """Issue 12 §3 through the desk pages: 422 for someone who is no active operator, 403 for a role that may not."""
    from ticketing.groups import set_member

    web.desk.accounts.set_role(OPERATOR, "supervisor")
    web.desk.accounts.add("reti", "Reti", "password lunga 1", role="specialist")
    set_member(web.core.sessions, "Reti", "reti")
    number = submit(web, "<assign-1@x>", text="Il protocollo informatico è fermo").ticket_number
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        csrf = form_fields(c.get(f"/desk/tickets/{number}").text)["csrf"]
        nobody = c.post(f"/desk/tickets/{number}/assign", data={"csrf": csrf, "assignee": "someone-who-does-not-exist"})
        assert nobody.status_code == 422 and "not an active operator" in nobody.text
        ok = c.post(f"/desk/tickets/{number}/assign", data={"csrf": csrf, "group": "Applicativi"})
        assert ok.status_code == 303
        assert web.desk.ticket(number).group == "Applicativi"
    with httpx.Client(base_url=web.url) as c:
        desk_login(c, "reti", "password lunga 1")
        page_html = c.get(f"/desk/tickets/{number}").text
        assert 'id="cannot-act"' in page_html and "their groups" in page_html
        assert number not in c.get("/desk/").text  # not in a specialist's queue: not their group
        csrf = form_fields(page_html)["csrf"]
        refused = c.post(f"/desk/tickets/{number}/take", data={"csrf": csrf})
        assert refused.status_code == 403 and "their groups" in refused.text


def test_the_audit_page_shows_logins_and_account_changes_to_administrators_only(web):
    web.desk.accounts.add("capo", "Capo", "password lunga 1", role="admin")
    web.desk.accounts.create_token("audit-tool", operator="capo", actor="capo")
    with httpx.Client(base_url=web.url) as c:
        desk_login(c, password="wrong password!")
        desk_login(c)
        assert c.get("/desk/audit").status_code == 403  # a level I operator
    with httpx.Client(base_url=web.url) as c:
        desk_login(c, "capo", "password lunga 1")
        page_html = c.get("/desk/audit").text
        for kind in ("login.failed", "login", "operator.added", "token.created"):
            assert f'data-kind="{kind}"' in page_html
        assert "audit-tool" in page_html and "127.0.0.1" in page_html
