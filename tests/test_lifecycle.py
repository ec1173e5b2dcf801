"""Every lifecycle rule: allowed and refused transitions, escalation I→II→III, resolution reports, SLA times,
priority — on stored tickets in SQLite and PostgreSQL, so what is refused is also not written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ticketing.contact import Channel, Contact, Sender
from ticketing.lifecycle import TRANSITIONS, Lifecycle, LifecycleError, SlaTarget, priority_for
from ticketing.models import Ticket


def new_ticket(core, n: int = 1) -> int:
    c = Contact(channel=Channel.WEB, external_id=f"form-{n}", sender=Sender("Mario Rossi", "mario.rossi@regione.example.it"), text="La stampante non stampa")
    return core.intake.submit(c).ticket_id


def act(core, ticket_id: int, fn):
    with core.sessions() as s, s.begin():
        t = s.get(Ticket, ticket_id)
        fn(t)


def load(core, ticket_id: int) -> Ticket:
    with core.sessions() as s:
        t = s.get(Ticket, ticket_id)
        _ = t.events, t.fields
        return t


def test_take_escalate_twice_resolve_close(core):
    lc = core.lifecycle
    tid = new_ticket(core)
    act(core, tid, lambda t: lc.take(t, "op.primo"))
    act(core, tid, lambda t: lc.escalate(t, "op.primo", "serve l'amministratore del protocollo"))
    t = load(core, tid)
    assert (t.level, t.status, t.assignee) == (2, "new", None)
    act(core, tid, lambda t: lc.take(t, "op.secondo"))
    act(core, tid, lambda t: lc.escalate(t, "op.secondo", "bug del fornitore"))
    act(core, tid, lambda t: lc.take(t, "fornitore"))
    act(core, tid, lambda t: lc.resolve(t, "fornitore", "Applicata la patch 4.2.1"))
    act(core, tid, lambda t: lc.close(t, "op.primo"))
    t = load(core, tid)
    assert (t.level, t.status) == (3, "closed")
    kinds = [e.kind for e in t.events]
    assert kinds == ["created", "taken", "escalated", "taken", "escalated", "taken", "resolved", "closed"]
    escalations = [e.data for e in t.events if e.kind == "escalated"]
    assert escalations == [
        {"from": "I", "to": "II", "reason": "serve l'amministratore del protocollo"},
        {"from": "II", "to": "III", "reason": "bug del fornitore"},
    ]
    assert t.events[6].data == {"report": "Applicata la patch 4.2.1"}


@pytest.mark.parametrize(
    "steps, refused, message",
    [
        ([], lambda lc, t: lc.escalate(t, "op", " "), "needs a reason"),
        ([], lambda lc, t: lc.resolve(t, "op", ""), "needs a report"),
        ([], lambda lc, t: lc.close(t, "op"), "cannot become closed"),
        ([], lambda lc, t: lc.reopen(t, "op", "x"), "only a resolved ticket"),
        ([lambda lc, t: lc.escalate(t, "op", "a"), lambda lc, t: lc.escalate(t, "op", "b")], lambda lc, t: lc.escalate(t, "op", "c"), "already at level III"),
        ([lambda lc, t: lc.resolve(t, "op", "fatto")], lambda lc, t: lc.escalate(t, "op", "x"), "cannot be escalated"),
        ([lambda lc, t: lc.resolve(t, "op", "fatto")], lambda lc, t: lc.take(t, "op"), "reopen it before"),
        ([lambda lc, t: lc.resolve(t, "op", "fatto"), lambda lc, t: lc.close(t, "op")], lambda lc, t: lc.reopen(t, "op", "x"), "only a resolved"),
        ([lambda lc, t: lc.resolve(t, "op", "fatto"), lambda lc, t: lc.close(t, "op")], lambda lc, t: lc.resolve(t, "op", "ancora"), "final"),
        ([], lambda lc, t: lc.note(t, "op", "   "), "needs some text"),
    ],
)
def test_refused_changes_say_why_and_write_nothing(core, steps, refused, message):
    lc = core.lifecycle
    tid = new_ticket(core)
    for step in steps:
        act(core, tid, lambda t, step=step: step(lc, t))
    before = load(core, tid)
    with pytest.raises(LifecycleError, match=message):
        act(core, tid, lambda t: refused(lc, t))
    after = load(core, tid)
    assert (after.status, after.level, len(after.events)) == (before.status, before.level, len(before.events))


def test_reopen_after_resolution_returns_to_the_assignee(core):
    lc = core.lifecycle
    tid = new_ticket(core)
    act(core, tid, lambda t: lc.take(t, "op"))
    act(core, tid, lambda t: lc.wait(t, "op", "attendo il numero di serie"))
    act(core, tid, lambda t: lc.take(t, "op"))
    act(core, tid, lambda t: lc.resolve(t, "op", "fatto"))
    act(core, tid, lambda t: lc.reopen(t, "op", "l'utente dice che non va"))
    t = load(core, tid)
    assert (t.status, t.assignee) == ("in_progress", "op")


def test_an_operator_edit_records_old_and_new_value_and_who(core):
    lc = core.lifecycle
    tid = new_ticket(core)
    act(core, tid, lambda t: lc.set_field(t, "asset", "PRN-0210 Stampante multifunzione piano 2", "op.rossi"))
    t = load(core, tid)
    assert t.field("asset").source == "operator" and t.field("asset").confidence == 1.0
    e = t.events[-1]
    assert e.kind == "field_changed" and e.actor == "op.rossi"
    assert e.data["field"] == "asset" and e.data["new"].startswith("PRN-0210")


def test_every_status_has_its_transitions_declared():
    assert set(TRANSITIONS) == {"new", "in_progress", "waiting", "resolved", "closed"}
    assert TRANSITIONS["closed"] == frozenset()


def test_sla_due_times_follow_the_configured_table():
    lc = Lifecycle({"normal": SlaTarget(60, 600), "critical": SlaTarget(5, 30)})
    from ticketing.models import utcnow

    now = utcnow()
    assert lc.due_times("critical", now) == (now + timedelta(minutes=5), now + timedelta(minutes=30))
    assert lc.due_times("low", now) == (now + timedelta(minutes=60), now + timedelta(minutes=600))  # falls back to normal


def test_stored_sla_comes_from_urgency(core):
    c = Contact(channel=Channel.EMAIL, external_id="<crit@x>", text="Tutti gli uffici sono senza rete, nessuno riesce a lavorare")
    r = core.intake.submit(c)
    t = load(core, r.ticket_id)
    assert t.urgency == "critical" and t.priority == 1
    # The network (NET-01) belongs to an organisation: its contract for P1, counted in its working time.
    calendar, contract = core.lifecycle.organisations.terms(t.organisation_id)
    assert t.organisation_id is not None
    assert t.respond_by == calendar.add(t.created_at, contract.target(1).respond_minutes)
    anonymous = load(core, core.intake.submit(Contact(channel=Channel.EMAIL, external_id="<crit2@x>", text="Tutto bloccato, urgente")).ticket_id)
    assert anonymous.organisation_id is None  # no organisation: the default table, always open
    assert anonymous.respond_by - anonymous.created_at == timedelta(minutes=core.lifecycle.default_contract.target(anonymous.priority).respond_minutes)


@pytest.mark.parametrize(
    "urgency, criticality, priority",
    [("critical", "critical", 1), ("high", "high", 1), ("high", "medium", 2), ("normal", "medium", 3), ("normal", "low", 4), ("low", "critical", 3)],
)
def test_priority_combines_urgency_and_asset_criticality(urgency, criticality, priority):
    assert priority_for(urgency, criticality) == priority


def test_an_urgency_edit_recomputes_priority_and_due_times(core):
    lc = core.lifecycle
    tid = new_ticket(core)
    t = load(core, tid)
    before = t.priority
    assert t.urgency == "normal" and before > 2
    act(core, tid, lambda t: lc.set_field(t, "urgency", "critical", "op.rossi"))
    t = load(core, tid)
    assert t.urgency == "critical" and t.priority == before - 2
    calendar, contract = lc.organisations.terms(t.organisation_id)  # the reporter's organisation's terms
    target = contract.target(t.priority)  # the SLA row is the priority's (P1 critical .. P4 low)
    assert (t.respond_by, t.resolve_by) == (calendar.add(t.created_at, target.respond_minutes), calendar.add(t.created_at, target.resolve_minutes))
