"""The service desk after intake (issue 12), on SQLite and PostgreSQL: organisations inherited, routing by asset to
internal and external groups with the vendor's notice in the outbox and its reply threading back, assignment
refusals, roles, SLA recomputation, working-time arithmetic across a weekend and a holiday, the pause while
waiting, warnings and breaches with an injected clock (no sleeping), the resolution report to the user."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ticketing.actions import NotAllowed, UnknownAssignee
from ticketing.contact import Channel, Contact, Sender, ThreadHints
from ticketing.groups import set_member
from ticketing.lifecycle import LifecycleError
from ticketing.models import Ticket
from ticketing.sla import Calendar, Contract
from ticketing.slawatch import check
from tests.test_web_support import web_factory  # noqa: F401  (fixture)

MARIO = Sender("Mario Rossi", "mario.rossi@regione.example.it")


def report(core, n, text="Il protocollo informatico non registra le pratiche", sender=MARIO, **kw):
    return core.intake.submit(Contact(Channel.EMAIL, f"<{n}@example.org>", sender=sender, subject="Guasto", text=text, **kw))


def outbox(core):
    from ticketing.outbox import OutboxMail

    with core.sessions() as s:
        return [(m.kind, m.recipient, m.subject, m.text, m.rfc_message_id) for m in s.scalars(select(OutboxMail).order_by(OutboxMail.id))]


@pytest.fixture
def desk(core):
    d = core.desk
    d.accounts.add("primo", "Primo Livello", "password lunga 1")
    d.accounts.add("appl", "Specialista Applicativi", "password lunga 1", role="specialist")
    d.accounts.add("reti", "Specialista Reti", "password lunga 1", role="specialist")
    d.accounts.add("capo", "Supervisore", "password lunga 1", role="supervisor")
    set_member(core.sessions, "Applicativi", "appl")
    set_member(core.sessions, "Reti", "reti")
    return d


def test_a_group_reads_the_notice_in_the_tickets_language(core, desk):
    r = report(core, 91, text="Le protocole informatique n'enregistre plus les dossiers, c'est urgent")
    t = desk.ticket(r.ticket_number)
    desk.escalate(r.ticket_number, "primo", "il faut l'administrateur de l'application")
    mail = [m for m in outbox(core) if m[1] == "applicativi@helpdesk.example.it"][-1]
    kind, to, subject, text, _ = mail
    assert t.language == "fr" and "Signalement attribué" in subject, subject
    assert "Utilisateur: Mario Rossi" in text and "Urgence:" in text and "Répondre avant" in text
    assert "Urgency" not in text and "urgency" not in text


def test_organisation_is_inherited_and_routing_follows_the_asset(core, desk):
    r = report(core, 1)
    t = desk.ticket(r.ticket_number)
    assert t.organisation == "Regione" and t.group is None and t.level == 1
    t = desk.escalate(r.ticket_number, "primo", "serve l'amministratore dell'applicativo")
    assert (t.level, t.group, t.assignee, t.status) == (2, "Applicativi", None, "new")
    internal = [m for m in outbox(core) if m[1] == "applicativi@helpdesk.example.it"]
    assert internal and f"[{r.ticket_number}]" in internal[0][2]
    t = desk.escalate(r.ticket_number, "appl", "errore del fornitore")
    assert (t.level, t.group) == (3, "Fornitore Protocollo")
    vendor = [m for m in outbox(core) if m[1] == "supporto@protocollo-fornitore.example.com"]
    assert len(vendor) == 1
    kind, to, subject, text, message_id = vendor[0]
    assert f"[{r.ticket_number}]" in subject and "Mario Rossi" in text and "Rispondere entro" in text and "Regione" in text
    assert "registra le pratiche" in text and "Urgenza:" in text and "Richiesta di intervento" in subject  # in the ticket's language
    # The vendor's answer threads back (on In-Reply-To) as a message: it resolves nothing by itself.
    back = core.intake.submit(Contact(Channel.EMAIL, "<vendor-1@example.com>", sender=Sender("Supporto", to),
                                      subject=f"Re: {subject}", text="Patch 4.2.1 rilasciata", thread=ThreadHints(in_reply_to=message_id)))
    assert back.ticket_number == r.ticket_number and str(back.outcome) == "appended"
    t = desk.ticket(r.ticket_number)
    assert t.status == "new" and t.messages[-1].text == "Patch 4.2.1 rilasciata"


def test_an_asset_without_a_group_goes_to_the_default_group_or_none(core, desk):
    desk.default_groups = {2: "Sistemi"}
    r = report(core, 2, text="Il proiettore della sala giunta non si accende")  # PROJ-0115: II Postazioni di lavoro only
    t = desk.escalate(r.ticket_number, "primo", "hardware")
    assert t.group == "Postazioni di lavoro"
    t = desk.escalate(r.ticket_number, "capo", "guasto grave")  # no level III group for it, no default: none
    assert t.level == 3 and t.group is None
    r = report(core, 3, text="Qualcosa non va", sender=Sender("Ignoto", "ignoto@altrove.example.net"))
    assert desk.escalate(r.ticket_number, "primo", "boh").group == "Sistemi"


def test_roles_allow_and_refuse(core, desk):
    r = report(core, 4)
    n = r.ticket_number
    desk.escalate(n, "primo", "al livello II")  # -> Applicativi
    with pytest.raises(NotAllowed, match="level I"):
        desk.take(n, "primo")
    with pytest.raises(NotAllowed, match="their groups"):
        desk.take(n, "reti")
    assert desk.take(n, "appl").assignee == "appl"
    with pytest.raises(NotAllowed, match="supervisor"):
        desk.assign(n, "appl", "reti")
    # Only existing, active operators are assigned.
    with pytest.raises(UnknownAssignee):
        desk.assign(n, "capo", "someone-who-does-not-exist")
    desk.accounts.set_active("reti", False)
    with pytest.raises(UnknownAssignee):
        desk.assign(n, "capo", "reti")
    assert desk.assign(n, "capo", "appl", "Reti").group == "Reti"
    with pytest.raises(NotAllowed):  # no longer appl's group
        desk.note(n, "appl", "provo")
    assert desk.note(n, "capo", "ok").events[-1].kind == "note"
    # The specialist's queue is their groups' tickets.
    from ticketing.desk import QueueFilters

    assert [row.number for row in desk.queue(QueueFilters(mine="appl")).items] == []
    assert [row.number for row in desk.queue(QueueFilters(group="Reti")).items] == [n]
    assert [row.number for row in desk.queue(QueueFilters(organisation="Regione")).items] == [n]


def test_sla_is_recomputed_after_each_kind_of_change(core, desk):
    lc = core.lifecycle
    r = report(core, 5, text="La stampante del piano 2 non stampa")  # PRN-0210, Regione (business hours)
    n = r.ticket_number
    first = desk.ticket(n)
    cal, contract = lc.organisations.terms(lc.organisations.inherit(None, None, "x@regione.example.it"))

    def expect(view, start_respond=None):
        target = contract.target(view.priority)
        with core.sessions() as s:
            t = s.get(Ticket, core.intake.ticket_by_number(s, n).id)
            created, since, paused = t.created_at, t.level_since or t.created_at, t.paused_minutes
        assert view.resolve_by == cal.add(created, target.resolve_minutes + paused)
        assert view.respond_by == cal.add(since, target.respond_minutes + paused)

    expect(first)
    edited = desk.set_field(n, "primo", "urgency", "critical")  # a field edit
    assert edited.priority < first.priority and edited.resolve_by < first.resolve_by
    expect(edited)
    escalated = desk.escalate(n, "primo", "serve il II")  # escalation: the respond clock restarts for the level
    assert escalated.respond_by >= edited.respond_by
    expect(escalated)
    done = desk.resolve(n, "capo", "toner sostituito")
    reopened = desk.reopen(n, "capo", "di nuovo")  # reopening
    expect(reopened)
    assert done.status == "resolved" and reopened.status == "new"


def test_business_hours_skip_a_weekend_and_a_holiday():
    aosta = Calendar.parse("mon-fri 08:00-13:00,14:00-17:00", "09-07")
    friday_4pm = datetime(2026, 9, 4, 14, 0, tzinfo=timezone.utc)  # 16:00 in Rome
    # 1 h left on Friday; Saturday, Sunday and Monday 7 September (Aosta's patron saint) are not worked.
    assert aosta.add(friday_4pm, 120) == datetime(2026, 9, 8, 7, 0, tzinfo=timezone.utc)  # Tuesday 09:00
    assert aosta.between(friday_4pm, datetime(2026, 9, 8, 7, 0, tzinfo=timezone.utc)) == 120
    # The lunch break does not count; a national holiday (2 June) does not either.
    assert aosta.add(datetime(2026, 6, 1, 10, 30, tzinfo=timezone.utc), 60) == datetime(2026, 6, 1, 12, 30, tzinfo=timezone.utc)  # 12:30-13 + 14-14:30
    assert aosta.add(datetime(2026, 6, 1, 14, 30, tzinfo=timezone.utc), 60) == datetime(2026, 6, 3, 6, 30, tzinfo=timezone.utc)  # 2 June skipped
    assert Calendar.parse("24x7").add(friday_4pm, 120) == friday_4pm + timedelta(hours=2)
    with pytest.raises(ValueError):
        Calendar.parse("lun-ven 8-18")
    assert Contract.parse("P1=1/2|P2=3/4|P3=5/6|P4=7/8").target(4).resolve_minutes == 8


def test_waiting_pauses_the_clock_and_the_users_answer_resumes_it(core, desk):
    lc = core.lifecycle
    base = datetime.now(timezone.utc)
    lc.clock = lambda: base
    r = report(core, 6, text="Ho un problema con il mio account", sender=Sender("Ignoto", "someone@usl.example.it"))  # USL by domain: 24x7
    n = r.ticket_number
    before = desk.take(n, "capo")
    lc.clock = lambda: base + timedelta(minutes=5)
    waiting = desk.wait(n, "capo", "Da quale rete si collega?")
    assert waiting.status == "waiting" and waiting.waiting and waiting.sla["paused"]
    question = [m for m in outbox(core) if m[1] == "someone@usl.example.it" and "Da quale rete" in m[3]]
    assert question, outbox(core)
    lc.clock = lambda: base + timedelta(minutes=65)  # an hour of waiting
    core.intake.submit(Contact(Channel.EMAIL, "<answer-6@x>", sender=Sender("Ignoto", "someone@usl.example.it"),
                               subject=f"Re: [{n}]", text="Da casa, con la fibra"))
    after = desk.ticket(n)
    assert after.status == "in_progress" and not after.waiting and not after.sla["paused"]
    assert after.resolve_by - before.resolve_by == timedelta(minutes=60)  # the hour waited is given back
    with pytest.raises(LifecycleError):
        desk.resume(n, "capo")  # not waiting any more


def test_warning_and_breach_events_with_an_injected_clock(core, desk):
    lc = core.lifecycle
    base = datetime.now(timezone.utc)
    lc.clock = lambda: base
    r = report(core, 7, text="Il wifi non funziona", sender=Sender("Ignoto", "x@usl.example.it"))  # USL: 24x7
    n = r.ticket_number
    desk.escalate(n, "capo", "reti")  # -> Reti, whose address gets the alerts
    t = desk.ticket(n)
    respond = t.respond_by - base
    assert check(core.sessions, lc, now=base) == 0
    warn_at = base + respond * 0.8 + timedelta(seconds=1)
    lc.clock = lambda: warn_at
    breaches = []
    assert check(core.sessions, lc, now=warn_at, on_breach=breaches.append) == 1
    assert desk.ticket(n).events[-1].kind == "sla.warning" and desk.ticket(n).sla["warning"]
    assert check(core.sessions, lc, now=warn_at) == 0  # raised once
    late = t.respond_by + timedelta(seconds=1)
    assert check(core.sessions, lc, now=late, on_breach=breaches.append) == 1
    view = desk.ticket(n)
    assert view.events[-1].kind == "sla.breached" and view.events[-1].data["target"] == "respond" and view.sla["breached"]
    assert breaches == [1]
    assert any(m[1] == "reti@helpdesk.example.it" and "SLA scaduto" in m[2] for m in outbox(core))
    lc.clock = lambda: late
    assert desk.take(n, "capo").first_response_at == late  # first response recorded


def test_the_resolution_report_reaches_the_user_and_the_status(core, desk):
    r = report(core, 8)
    desk.resolve(r.ticket_number, "primo", "Riavviato il servizio di protocollo")
    mails = [m for m in outbox(core) if m[1] == "mario.rossi@regione.example.it" and "Riavviato il servizio" in m[3]]
    assert mails and f"[{r.ticket_number}]" in mails[0][2]
    status = desk.status_lookup(r.ticket_number, "mario.rossi@regione.example.it")
    assert status.status == "resolved" and status.report == "Riavviato il servizio di protocollo"


def test_tickets_show_json_has_the_service_desk_fields(core, desk, tmp_path):
    import json

    from click.testing import CliRunner

    from gateway.cli import main

    r = report(core, 9)
    desk.escalate(r.ticket_number, "primo", "II")
    env = {"HELPDESK_GATEWAY__STORAGE__URL": core.engine.url.render_as_string(hide_password=False),
           "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    out = CliRunner().invoke(main, ["tickets", "show", r.ticket_number, "--json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["organisation"] == "Regione" and data["group"] == "Applicativi" and data["waiting"] is False
    assert set(data["sla"]) == {"respond_by", "resolve_by", "paused", "breached"} and data["sla"]["breached"] is False


def test_the_pin_on_the_confirmation_page_and_the_report_on_status(sqlite_core, web_factory):
    import re

    import httpx

    from tests.test_web_support import form_fields

    w = web_factory(sqlite_core, cookie_secure=False)
    with httpx.Client(base_url=w.url) as c:
        hidden = form_fields(c.get("/").text)
        r = c.post("/", data={"name": "Mario Rossi", "email": "mario.rossi@regione.example.it", "asset": "stampante",
                              "anomaly": "Non stampa", **hidden})
        number = re.search(r'id="ticket-number">([A-Z]+-\d{4}-\d+)<', r.text).group(1)
        pin = re.search(r'id="ticket-pin">[^<]*?(\d{4})', r.text).group(1)
        assert w.desk.pin(number) == pin
        w.desk.accounts.set_role("anna.verdi", "supervisor")
        w.desk.wait(number, "anna.verdi", "Che modello di stampante?")
        page = c.post("/status", data={"number": number, "contact": "mario.rossi@regione.example.it", **form_fields(c.get("/status").text)}).text
        assert "Che modello di stampante?" in page
        w.desk.resolve(number, "anna.verdi", "Driver aggiornato")
        page = c.post("/status", data={"number": number, "contact": "mario.rossi@regione.example.it", **form_fields(c.get("/status").text)}).text
        assert 'id="status-report">Driver aggiornato<' in page


def test_the_vendors_notice_reaches_an_smtp_sink_and_its_reply_threads_back(core, desk):
    """The external group's mail leaves through the outbox to a real SMTP relay (the shipped MailSink); the
    vendor's answer to it, parsed as the email channel parses mail, lands on the ticket and resolves nothing."""
    from email.message import EmailMessage

    from channels.email.ack import OutboxSender
    from channels.email.parse import load, to_contact
    from channels.email.settings import AckSettings
    from channels.email.sink import MailSink
    from tests.conftest import wait_for

    r = report(core, 20)
    n = r.ticket_number
    desk.escalate(n, "primo", "al livello II")
    desk.escalate(n, "appl", "difetto del prodotto: serve il fornitore")
    with MailSink() as sink:
        sender = OutboxSender(AckSettings(relay_host="127.0.0.1", relay_port=sink.port, poll_seconds=0.05), core.outbox, owner="t")
        sender.start_thread()
        try:
            wait_for(lambda: any("supporto@protocollo-fornitore.example.com" in m.rcpt_tos for m in sink.received), timeout=20)
        finally:
            sender.stop_thread()
        notice = next(m.message for m in sink.received if "supporto@protocollo-fornitore.example.com" in m.rcpt_tos)
    assert f"[{n}]" in notice["Subject"] and "Mario Rossi" in notice.get_content()
    reply = EmailMessage()
    reply["From"] = "Supporto Protocollo <supporto@protocollo-fornitore.example.com>"
    reply["To"] = notice["From"]
    reply["Subject"] = "Re: " + notice["Subject"]
    reply["Message-ID"] = "<vendor-answer-20@protocollo-fornitore.example.com>"
    reply["In-Reply-To"] = notice["Message-ID"]
    reply.set_content("Corretto nella versione 4.2.1, installabile da subito.")
    raw = reply.as_bytes()
    result = core.intake.submit(to_contact(load(raw), raw))
    assert result.ticket_number == n and str(result.outcome) == "appended"
    t = desk.ticket(n)
    assert t.status == "new" and t.group == "Fornitore Protocollo"  # only an operator resolves it
    assert "4.2.1" in t.messages[-1].text and t.messages[-1].sender_email == "supporto@protocollo-fornitore.example.com"


def test_sla_alerts_are_webhooks(sqlite_core, web_factory):
    from channels.web.testing import WebhookReceiver

    fast = dict(webhook_poll_seconds=0.05, webhook_retry_seconds=0.1, webhook_max_retry_seconds=0.5, webhook_timeout_seconds=5)
    with WebhookReceiver() as sla_only:
        w = web_factory(sqlite_core, webhooks=[{"url": sla_only.url, "secret": "s3cret-for-the-hooks-0123456789",
                                                 "events": ["sla.warning", "sla.breached"]}], **fast)
        lc = sqlite_core.lifecycle
        base = datetime.now(timezone.utc)
        lc.clock = lambda: base
        n = report(sqlite_core, 30, text="Il wifi non funziona", sender=Sender("Ignoto", "x@usl.example.it")).ticket_number  # USL: 24x7
        due = w.desk.ticket(n).respond_by
        assert check(sqlite_core.sessions, lc, now=due + timedelta(seconds=1)) == 2  # the warning passed unseen, and the breach
        got = sla_only.wait(2)
        assert [h.json["event"] for h in got] == ["ticket.sla.warning", "ticket.sla.breached"]
        assert got[1].json["data"]["target"] == "respond" and got[1].json["ticket"]["sla"]["breached"] is True


def test_the_acknowledgement_carries_the_status_pin(core):
    """Issue 12 §5: the acknowledgement queued in the intake transaction tells the ticket's PIN."""
    r = report(core, 40, sender=MARIO)
    mails = [m for m in outbox(core) if m[0] == "confirmation" and m[1] == "mario.rossi@regione.example.it"]
    assert len(mails) == 1 and f"[{r.ticket_number}]" in mails[0][2]
    assert r.pin and f"PIN {r.pin}" in mails[0][3]
