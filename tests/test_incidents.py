"""Linked incidents, merges and the rejected-mail readmit (issue 13 §4, §6), on SQLite and PostgreSQL: a link
recorded on both sides, a merge that moves messages and recordings and keeps the old number working on /status
and by phone, the proposal of an open parent incident on the same asset within the window, the parent's report
reaching every child's reporter through the outbox, a rejected mail readmitted once however often it is asked;
then the API over a real server and the desk pages in it/fr/en."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from ticketing.actions import NotAllowed
from ticketing.contact import Attachment, Channel, Contact, Sender
from ticketing.incidents import Incidents
from ticketing.lifecycle import LifecycleError
from ticketing.models import Message, Ticket
from tests.test_web_support import OPERATOR, web, web_factory  # noqa: F401  (fixtures)
from tests.test_web_ticket_page import desk_login, forbidden_on_screen, visible_text

PROTOCOL = "Il protocollo informatico non registra le pratiche da stamattina"
PEOPLE = [Sender(f"Utente {i}", f"utente{i}@regione.example.it", f"+39 055 100 00{i:02d}") for i in range(6)]


def report(core, key, sender, text=PROTOCOL, **kw):
    return core.intake.submit(Contact(Channel.EMAIL, f"<{key}@example.org>", sender=sender, subject="Guasto", text=text, **kw))


def outbox(core):
    from ticketing.outbox import OutboxMail

    with core.sessions() as s:
        return [(m.recipient, m.subject, m.text) for m in s.scalars(select(OutboxMail).order_by(OutboxMail.id))]


@pytest.fixture
def incidents(core):
    core.desk.accounts.add("capo", "Supervisore", "password lunga 1", role="supervisor")
    core.desk.accounts.add("primo", "Primo Livello", "password lunga 1")
    return Incidents(core.desk, window_minutes=60)


def kinds(core, number):
    return [e.kind for e in core.desk.ticket(number).events]


def test_link_records_both_sides_and_the_parent_resolution_reaches_every_reporter(core, incidents):
    parent, a, b = (report(core, f"l{i}", PEOPLE[i]).ticket_number for i in range(3))
    view = incidents.link(a, parent, "primo")
    assert view.parent.number == parent and view.merged_into is None
    incidents.link(b, a, "primo")  # linking to a child links to its parent: one level
    p = incidents.incident(parent)
    assert [c.number for c in p.children] == [a, b] and p.open_children == 2 and p.parent is None
    assert "child_linked" in kinds(core, parent) and "linked" in kinds(core, a)
    with pytest.raises(LifecycleError, match="parent incident itself"):
        incidents.link(parent, report(core, "l8", PEOPLE[3]).ticket_number, "primo")
    with pytest.raises(LifecycleError, match="own parent"):
        incidents.link(parent, b, "primo")  # b's parent is parent itself
    with pytest.raises(LifecycleError, match="resolve the parent"):
        incidents.resolve_children(parent, "primo")

    core.desk.resolve(parent, "primo", "Riavviato il server del protocollo")
    done = incidents.resolve_children(parent, "primo")
    assert set(done.resolved) == {a, b} and not done.refused
    for n in (a, b):
        t = core.desk.ticket(n)
        assert t.status == "resolved"
        resolved = [e for e in t.events if e.kind == "resolved"]
        assert resolved[-1].data == {"report": "Riavviato il server del protocollo", "parent": parent}
    mails = {to: text for to, subject, text in outbox(core) if "Riavviato il server" in text}
    assert set(mails) == {PEOPLE[0].email, PEOPLE[1].email, PEOPLE[2].email}
    with pytest.raises(LifecycleError, match="no open child"):
        incidents.resolve_children(parent, "primo")

    incidents.link(report(core, "l9", PEOPLE[4]).ticket_number, parent, "primo")
    unlinked = incidents.unlink(a, "primo")
    assert unlinked.parent is None and "child_unlinked" in kinds(core, parent)


def test_merge_moves_messages_and_recordings_and_the_old_number_keeps_working(core, incidents, tmp_path):
    keep = report(core, "m1", PEOPLE[0])
    blob = core.blobs.put(b"RIFF fake audio")
    dup = core.intake.submit(Contact(
        Channel.VOICE, "call-merge-1", sender=Sender("Utente 1", None, PEOPLE[1].phone), text=PROTOCOL,
        attachments=(Attachment("answer-anomaly.wav", "audio/wav", blob=blob, kind="recording", question="anomaly"),),
    ))
    assert dup.pin
    view = incidents.merge(dup.ticket_number, keep.ticket_number, "primo")
    assert view.number == keep.ticket_number and view.merged == (dup.ticket_number,)
    survivor = core.desk.ticket(keep.ticket_number)
    assert {m.channel for m in survivor.messages} == {"email", "voice"}
    assert any(a.kind == "recording" and a.sha256 == blob.sha256 for m in survivor.messages for a in m.attachments)
    assert "merged_in" in kinds(core, keep.ticket_number)
    old = core.desk.ticket(dup.ticket_number)
    assert old.status == "closed" and not old.messages and old.events[-1].kind == "merged"
    assert old.events[-1].data["into"] == keep.ticket_number
    assert incidents.incident(dup.ticket_number).merged_into == keep.ticket_number
    with core.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.ticket_id == keep.ticket_id, Message.direction == "in")) == 2

    # The merged reporter's number, with their PIN or their caller id, answers with the survivor's status.
    digits = dup.ticket_number.split("-", 1)[1].replace("-", "")
    assert core.desk.phone_status(digits, None, dup.pin) == ("new", 1)
    assert core.desk.phone_status(digits, PEOPLE[1].phone, None) == ("new", 1)
    assert core.desk.phone_status(digits, None, "0000" if dup.pin != "0000" else "1111") is None
    core.desk.take(keep.ticket_number, "primo")
    assert core.desk.phone_status(digits, None, dup.pin) == ("in_progress", 1)
    status = core.desk.status_lookup(dup.ticket_number, PEOPLE[1].phone)
    assert status is not None and status.number == keep.ticket_number and status.status == "in_progress"
    assert core.desk.status_lookup(dup.ticket_number, "nessuno@altrove.example.net") is None

    # Writing about the old number (its tag in the subject) adds to the survivor, not a new ticket.
    back = core.intake.submit(Contact(Channel.EMAIL, "<m-back@example.org>", sender=PEOPLE[1], subject=f"Re: [{dup.ticket_number}]", text="Ancora guasto"))
    assert (back.ticket_number, str(back.outcome)) == (keep.ticket_number, "appended")

    with pytest.raises(LifecycleError, match="closed"):
        incidents.merge(dup.ticket_number, keep.ticket_number, "primo")
    with pytest.raises(LifecycleError, match="itself"):
        incidents.merge(keep.ticket_number, dup.ticket_number, "primo")  # the old number means the survivor

    # A third ticket merged into the merged number lands on the survivor; its resolution reaches both reporters.
    third = report(core, "m3", PEOPLE[2])
    assert incidents.merge(third.ticket_number, dup.ticket_number, "primo").number == keep.ticket_number
    core.desk.resolve(keep.ticket_number, "primo", "Sostituito il disco")
    assert {to for to, _, text in outbox(core) if "Sostituito il disco" in text} == {PEOPLE[0].email, PEOPLE[2].email}
    status = core.desk.status_lookup(third.ticket_number, PEOPLE[2].email)
    assert status.status == "resolved" and status.report == "Sostituito il disco"


def test_a_level_one_operator_cannot_link_a_level_two_ticket(core, incidents):
    parent, child = (report(core, f"r{i}", PEOPLE[i]).ticket_number for i in range(2))
    core.desk.escalate(child, "capo", "serve il sistemista")
    with pytest.raises(NotAllowed):
        incidents.link(child, parent, "primo")
    assert incidents.link(child, parent, "capo").parent.number == parent


def test_a_new_contact_on_the_asset_of_an_open_parent_incident_is_proposed_within_the_window(core, incidents):
    parent, child = (report(core, f"p{i}", PEOPLE[i]) for i in range(2))
    with core.sessions() as s:
        asset = s.get(Ticket, parent.ticket_id).asset_id
    assert asset is not None, "the sample inventory names the protocol application"
    assert incidents.incident(report(core, "p2", PEOPLE[2]).ticket_number).proposals == ()  # no parent incident yet
    incidents.link(child.ticket_number, parent.ticket_number, "primo")
    new = report(core, "p3", PEOPLE[3])
    proposals = incidents.incident(new.ticket_number).proposals
    assert [p.number for p in proposals] == [parent.ticket_number] and proposals[0].children == 1
    other = report(core, "p4", PEOPLE[4], text="La stampante non stampa")
    assert incidents.incident(other.ticket_number).proposals == ()  # another asset
    # Outside the window: the same contact an hour and a half later is not proposed.
    with core.sessions() as s, s.begin():
        s.get(Ticket, new.ticket_id).created_at += timedelta(minutes=90)
    assert incidents.incident(new.ticket_number).proposals == ()
    assert incidents.incident(child.ticket_number).proposals == ()  # already linked
    incidents.link(new.ticket_number, parent.ticket_number, "primo")
    core.desk.resolve(parent.ticket_number, "primo", "ok")
    assert incidents.incident(report(core, "p5", PEOPLE[5]).ticket_number).proposals == ()  # the parent is no longer open


AUTO_REPLY = (
    b"From: Mario Rossi <mario.rossi@regione.example.it>\r\nTo: helpdesk@example.it\r\nSubject: Stampante guasta\r\n"
    b"Message-ID: <readmit-1@regione.example.it>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0100\r\nAuto-Submitted: auto-replied\r\n"
    b"\r\nLa stampante dell'ufficio tributi non stampa.\r\n"
)


def rejected_mail(core, raw=AUTO_REPLY):
    from channels.email.process import commit, prepare

    handled = commit([prepare(raw, core.blobs)], core.intake)[0]
    assert handled.rejection_id is not None and handled.result is None
    return handled.rejection_id


def ticket_count(core) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Ticket))


def test_readmitting_a_rejected_mail_makes_exactly_one_ticket(core):
    from gateway.app import channel_context

    readmit = channel_context(core, core.config.web).readmit
    rejection = rejected_mail(core)
    before = ticket_count(core)
    first = readmit.readmit(rejection, "primo")
    assert first.outcome == "created"
    again = readmit.readmit(rejection, "primo")
    assert (again.number, again.outcome) == (first.number, "duplicate")
    assert rejected_mail(core) == rejection  # the sender sends the same mail again: the same rejection, no ticket
    assert ticket_count(core) == before + 1
    assert readmit.readmitted([rejection, rejection + 1000]) == {rejection: first.number}
    t = core.desk.ticket(first.number)
    assert t.messages[0].text.startswith("La stampante") and t.messages[0].sender_email == "mario.rossi@regione.example.it"
    assert [e.kind for e in t.events].count("readmitted") == 1
    assert readmit.readmit(rejection + 1000, "primo") is None

    # A rejection whose bytes are gone, or of a channel that cannot read its input again, is refused.
    from ticketing.readmit import CannotReadmit

    from ticketing.contact import BlobRef

    lost = core.intake.reject(Contact(Channel.EMAIL, "sha256:lost", raw=BlobRef("0" * 64, 10)), "unreadable", fault="ours")
    with pytest.raises(CannotReadmit, match="not in this gateway's blob store"):
        readmit.readmit(lost, "primo")
    honeypot = core.intake.reject(Contact(Channel.WEB, "form:honeypot-1", raw=core.blobs.put(b"name=bot")), "honeypot")
    with pytest.raises(CannotReadmit, match="web contact cannot be read again"):
        readmit.readmit(honeypot, "primo")
    assert ticket_count(core) == before + 1


# -- the API and the desk over a real server --------------------------------------------------------------------
def api(w) -> httpx.Client:
    return httpx.Client(base_url=w.url, headers={"authorization": f"Bearer {w.token}"})


def csrf_of(html: str, action: str) -> str:
    form = re.search(rf'(?s)<form[^>]*action="{re.escape(action)}".*?</form>', html).group(0)
    return re.search(r'name="csrf" value="([^"]+)"', form).group(1)


def test_the_api_links_merges_resolves_children_and_readmits(web):
    core = web.core
    parent, child, dup = (report(core, f"a{i}", PEOPLE[i]).ticket_number for i in range(3))
    with api(web) as c:
        r = c.post(f"/api/v1/tickets/{child}/incident", json={"action": "link", "target": parent})
        assert r.status_code == 200 and r.json()["parent"]["number"] == parent
        proposed = c.get(f"/api/v1/tickets/{dup}/incident").json()
        assert [p["number"] for p in proposed["proposals"]] == [parent]
        r = c.post(f"/api/v1/tickets/{dup}/incident", json={"action": "merge", "target": parent})
        assert r.status_code == 200 and r.json()["number"] == parent and r.json()["merged"] == [dup]
        assert c.get(f"/api/v1/tickets/{dup}/incident").json()["merged_into"] == parent
    with httpx.Client(base_url=web.url) as public:  # the merged reporter asks /status with their old number
        from tests.test_web_public import lookup

        page = lookup(public, dup, PEOPLE[2].email)
        assert page.status_code == 200 and parent in page.text
        assert lookup(public, dup, "qualcuno@altrove.example.net").status_code == 404
    with api(web) as c:
        refused = c.post(f"/api/v1/tickets/{parent}/incident", json={"action": "resolve_children"})
        assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
        c.post(f"/api/v1/tickets/{parent}/actions", json={"action": "resolve", "text": "Server riavviato"})
        r = c.post(f"/api/v1/tickets/{parent}/incident", json={"action": "resolve_children"})
        assert r.status_code == 200 and r.json()["resolved"] == [child]
        assert c.post(f"/api/v1/tickets/{child}/incident", json={"action": "link"}).status_code == 422  # no target
        assert c.get("/api/v1/tickets/HD-1999-000042/incident").status_code == 404

        rejection = rejected_mail(core)
        first = c.post(f"/api/v1/rejections/{rejection}/readmit")
        assert first.status_code == 201 and first.json()["outcome"] == "created"
        second = c.post(f"/api/v1/rejections/{rejection}/readmit")
        assert second.status_code == 200 and second.json()["number"] == first.json()["number"]
        listed = c.get("/api/v1/rejections").json()["items"]
        assert [i["readmitted"] for i in listed if i["id"] == rejection] == [first.json()["number"]]
        assert c.post("/api/v1/rejections/999999/readmit").status_code == 404


@pytest.mark.parametrize("lang", ["it", "fr", "en"])
def test_the_desk_shows_the_incident_proposes_the_link_and_readmits_in_every_language(web, lang):
    from channels.web.i18n import TEXTS

    core, texts = web.core, TEXTS[lang]
    parent, child, new = (report(core, f"d{lang}{i}", PEOPLE[i]).ticket_number for i in range(3))
    web.ctx.incidents.link(child, parent, OPERATOR)
    rejection = rejected_mail(core, AUTO_REPLY.replace(b"readmit-1", f"readmit-{lang}".encode()))
    with httpx.Client(base_url=web.url) as c:
        desk_login(c)
        page = c.get(f"/desk/tickets/{new}?lang={lang}")
        assert page.status_code == 200
        seen = visible_text(page.text)
        assert texts["inc_proposed"].split("{")[0].strip() in seen and parent in seen
        action = f"/desk/tickets/{new}/incident/link"
        r = c.post(action, data={"csrf": csrf_of(page.text, action), "target": parent})
        assert r.status_code == 303
        page = c.get(f"/desk/tickets/{parent}?lang={lang}")
        seen = visible_text(page.text)
        assert texts["inc_children"] in seen and child in seen and new in seen
        for word in forbidden_on_screen(lang):
            assert not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", seen, re.I if "_" in word else 0), (lang, word)
        assert not re.search(r"\binc_\w+|\bevs_\w+|\brj_\w+", seen), seen
        child_page = visible_text(c.get(f"/desk/tickets/{child}?lang={lang}").text)
        assert texts["inc_parent"] in child_page and parent in child_page

        rejections = c.get(f"/desk/rejections?lang={lang}")
        action = f"/desk/rejections/{rejection}/readmit"
        assert texts["rj_readmit"] in visible_text(rejections.text)
        token = csrf_of(rejections.text, action)
        for _ in range(2):
            r = c.post(action, data={"csrf": token})
            assert r.status_code == 303 and r.headers["location"].startswith("/desk/tickets/")
        number = r.headers["location"].rsplit("/", 1)[1]
        assert number in visible_text(c.get(f"/desk/rejections?lang={lang}").text)
    with core.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.external_id.like(f"<readmit-{lang}%"))) == 1


def test_tickets_show_of_a_merged_number_says_where_it_went(tmp_path):
    import json

    from click.testing import CliRunner

    from gateway.app import build_core, seed_directory
    from gateway.cli import main
    from tests.conftest import make_config

    url = f"sqlite:///{tmp_path / 'helpdesk.sqlite3'}"
    core = build_core(make_config(tmp_path, url))
    seed_directory(core)
    keep, dup = (report(core, f"s{i}", PEOPLE[i]).ticket_number for i in range(2))
    Incidents(core.desk).merge(dup, keep, "admin")
    core.close()
    env = {"HELPDESK_GATEWAY__STORAGE__URL": url, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    shown = CliRunner().invoke(main, ["tickets", "show", dup], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"merged into {keep}" in shown.output
    data = json.loads(CliRunner().invoke(main, ["tickets", "show", dup, "--json"], env=env).output)
    assert data["merged_into"] == keep and data["status"] == "closed"
    assert json.loads(CliRunner().invoke(main, ["tickets", "show", keep, "--json"], env=env).output)["merged_into"] is None


def test_after_a_merge_the_survivor_is_found_by_the_duplicates_words(core, incidents):
    from ticketing import suggestions
    from ticketing.search import Search, SearchQuery

    keep = report(core, "s1", PEOPLE[0])
    dup = report(core, "s2", PEOPLE[1], text="Lo scanner del piano terra non acquisisce i documenti in pdf")
    suggestions.run_once(core.sessions)
    search = Search(core.sessions)
    found = lambda words: {h.number for h in search.search(SearchQuery(words=words)).items}  # noqa: E731
    assert found("scanner") == {dup.ticket_number}
    incidents.merge(dup.ticket_number, keep.ticket_number, "primo")
    suggestions.run_once(core.sessions)  # the worker follows the merge's events, as it follows intake's
    assert keep.ticket_number in found("scanner")  # the messages moved, and their words with them


PARTNER_AUTO_REPLY = (
    b"From: Bruno Neri <bruno@partner.example.com>\r\nTo: helpdesk@example.it\r\nSubject: Portale SUAP\r\n"
    b"Message-ID: <readmit-partner@partner.example.com>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0100\r\nAuto-Submitted: auto-replied\r\n"
    b"%s\r\nIl portale SUAP non accetta le pratiche da stamattina.\r\n"
)


@pytest.mark.parametrize("results, acknowledged", [
    (b"Authentication-Results: mx.desk.example.org; dmarc=pass header.from=partner.example.com\r\n", True),
    (b"Authentication-Results: evil.example.net; dmarc=pass header.from=partner.example.com\r\n", False),  # forged
])
def test_a_readmitted_mail_is_acknowledged_as_its_authenticated_sender_would_have_been(tmp_path, database_url, results, acknowledged):
    # The sender is nobody the directory knows: only the mail's authentication vouches for the address
    # (issue 14 §6, no backscatter), checked again on the stored mail when an operator readmits it.
    from tests.conftest import make_config
    from gateway.app import build_core, channel_context, seed_directory
    from ticketing.outbox import OutboxMail

    core = build_core(make_config(tmp_path, database_url, email__ack__trusted_authserv_ids='["mx.desk.example.org"]'))
    try:
        seed_directory(core)
        rejection = rejected_mail(core, PARTNER_AUTO_REPLY % results)
        first = channel_context(core, core.config.web).readmit.readmit(rejection, "primo")
        assert first.outcome == "created"
        with core.sessions() as s:
            sent_to = s.scalars(select(OutboxMail.recipient)).all()  # a fresh database: this ticket's, if any
        assert sent_to == (["bruno@partner.example.com"] if acknowledged else [])
    finally:
        core.close()
