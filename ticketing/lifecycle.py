"""Ticket lifecycle: the allowed status transitions, escalation across the three support levels, SLA due times.

Every change goes through `Lifecycle`, which checks it against the rules, applies it, and appends the event
that records it; an invalid change raises `LifecycleError` with a message an operator can read, and writes
nothing. Statuses:

    new ──take──▶ in_progress ──wait──▶ waiting ──take──▶ in_progress
     │                 │                    │
     └─────resolve─────┴──────resolve───────┴──▶ resolved ──close──▶ closed (final)
                                                    │
                                                    └──reopen──▶ new / in_progress

Escalation moves a ticket from level I to II to III with a reason; it hands the ticket to the next level's
queue (status `new`, no assignee), to the support group the desk routed it to. A user who writes again to a
resolved ticket reopens it.

`recompute` is the one computation of what is derived: the priority (urgency × the asset's criticality), the
organisation (its reporter's, else its asset's, else its email domain's), and the SLA due times counted in
the organisation's working time (`ticketing.sla`) by its contract for that priority: respond from when the
ticket reached its level, resolve from its creation, both moved on by the time spent "waiting" (for the
user or a vendor), which pauses the clock. It also sets `sla_next_check`, the next warning (80 %) or breach
instant that the background check (`check_sla`) raises as an `sla.warning` / `sla.breached` event. Time
comes from an injected clock (`Lifecycle(clock=...)`), so tests move it instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import object_session

from .models import Asset, Event, Ticket, TicketField, utcnow
from .sla import Contract, Deadlines, Target, due_times

STATUSES = ("new", "in_progress", "waiting", "resolved", "closed")
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"in_progress", "waiting", "resolved"}),
    "in_progress": frozenset({"waiting", "resolved"}),
    "waiting": frozenset({"in_progress", "new", "resolved"}),  # back to new when resumed without an assignee
    "resolved": frozenset({"closed", "new", "in_progress"}),  # back to new / in_progress only by reopen
    "closed": frozenset(),
}
OPEN_STATUSES = frozenset({"new", "in_progress", "waiting"})
LEVELS = (1, 2, 3)
LEVEL_NAMES = {1: "I", 2: "II", 3: "III"}
URGENCIES = ("low", "normal", "high", "critical")
CRITICALITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class LifecycleError(ValueError):
    """A change the rules do not allow; the message says why, for the operator."""


@dataclass(frozen=True)
class SlaTarget:
    respond_minutes: int
    resolve_minutes: int


DEFAULT_SLA = {
    "critical": SlaTarget(15, 4 * 60),
    "high": SlaTarget(60, 8 * 60),
    "normal": SlaTarget(4 * 60, 3 * 24 * 60),
    "low": SlaTarget(8 * 60, 10 * 24 * 60),
}


def priority_for(urgency: str, criticality: str | None) -> int:
    """ITIL-style priority, 1 (highest) to 4, from the urgency and the criticality (impact) of the asset."""
    rank = URGENCIES.index(urgency) if urgency in URGENCIES else 1
    impact = CRITICALITY_RANK.get(criticality or "medium", 1)
    score = rank + (1 if impact >= 2 else 0) - (1 if impact == 0 else 0)
    return max(1, min(4, 4 - score))


PRIORITY_URGENCY = {1: "critical", 2: "high", 3: "normal", 4: "low"}  # the SLA row of each priority
WAITING_FOR = ("user", "vendor")
ALERTS = ("respond.warning", "respond.breached", "resolve.warning", "resolve.breached")


class Lifecycle:
    """Applies changes to tickets by the rules. One instance is shared; it holds the default SLA table, the
    organisations' terms (`ticketing.organisations.Organisations`, optional) and the clock."""

    def __init__(self, sla: dict[str, SlaTarget] | None = None, *, organisations=None, clock: Callable[[], datetime] = utcnow):
        self.sla = dict(DEFAULT_SLA if sla is None else sla)
        self.organisations = organisations
        self.clock = clock
        self.default_contract = Contract({
            p: Target((self.sla.get(u) or self.sla["normal"]).respond_minutes, (self.sla.get(u) or self.sla["normal"]).resolve_minutes)
            for p, u in PRIORITY_URGENCY.items()
        })

    # -- creation -----------------------------------------------------------------------------------------
    def due_times(self, urgency: str, start: datetime) -> tuple[datetime, datetime]:
        target = self.sla.get(urgency) or self.sla["normal"]
        return start + timedelta(minutes=target.respond_minutes), start + timedelta(minutes=target.resolve_minutes)

    # -- derived values -------------------------------------------------------------------------------------
    def recompute(self, ticket: Ticket, now: datetime | None = None, *, criticality: str | None = None, reporter_email: str | None = None) -> bool:
        """Set the ticket's priority, organisation and SLA due times from what the ticket says now.

        The one function that computes them: every change that can move them calls it (intake, a field edit,
        a transcription's result, escalation, waiting and resuming, reopening), so a stale priority or due
        time cannot stay. Inputs: the urgency and the criticality (impact) of the ticket's asset; the
        organisation's calendar and contract; the level's start; the time spent waiting. `criticality` and
        `reporter_email` are for a caller that holds them and a ticket that is in no session yet (intake);
        otherwise they are read through the ticket's session. Returns True when a due time or the priority
        changed.
        """
        now = now or self.clock()
        if criticality is None:
            criticality = _criticality(ticket)
        urgency = ticket.urgency if ticket.urgency in URGENCIES else "normal"
        start = ticket.created_at or now
        priority = priority_for(urgency, criticality)
        if ticket.organisation_id is None and self.organisations is not None:
            email = reporter_email if reporter_email is not None else ticket.value("reporter_email") if object_session(ticket) else None
            ticket.organisation_id = self.organisations.inherit(ticket.reporter_user_id, ticket.asset_id, email)
        d = self._deadlines(ticket, priority, start, now)
        changed = (ticket.priority, ticket.respond_by, ticket.resolve_by) != (priority, d.respond_by, d.resolve_by)
        ticket.priority, ticket.respond_by, ticket.resolve_by = priority, d.respond_by, d.resolve_by
        # Alerts that no longer hold (the due time moved on) are forgotten, so they can be raised again.
        pending = self._thresholds(ticket, d)
        alerts = [a for a in (ticket.sla_alerts or []) if a in pending and pending[a] <= now]
        if alerts != list(ticket.sla_alerts or []):
            ticket.sla_alerts = alerts
        ticket.sla_next_check = min((at for kind, at in pending.items() if kind not in alerts), default=None)
        return changed

    def _deadlines(self, ticket: Ticket, priority: int, start: datetime, now: datetime) -> Deadlines:
        calendar, contract = self.organisations.terms(ticket.organisation_id) if self.organisations else (None, self.default_contract)
        from .sla import ALWAYS

        calendar = calendar or ALWAYS
        paused = float(ticket.paused_minutes or 0.0)
        if ticket.waiting_since is not None:  # paused now: the deadlines move on for as long as it lasts
            paused += calendar.between(ticket.waiting_since, now)
        return due_times(calendar, contract.target(priority), start, ticket.level_since or start, paused)

    def _thresholds(self, ticket: Ticket, d: Deadlines) -> dict[str, datetime]:
        """The alert instants still relevant to the ticket: none when it is not open or its clock is paused."""
        if ticket.status not in OPEN_STATUSES or ticket.waiting_since is not None:
            return {}
        out = {"resolve.warning": d.resolve_warn, "resolve.breached": d.resolve_by}
        if ticket.responded_at is None:
            out.update({"respond.warning": d.respond_warn, "respond.breached": d.respond_by})
        return out

    def derived(self, ticket: Ticket) -> dict:
        """The derived columns of a ticket `recompute` set, for intake's plain INSERT of a new ticket."""
        return {k: getattr(ticket, k) for k in ("priority", "organisation_id", "respond_by", "resolve_by", "sla_next_check", "level_since")}

    def due_alerts(self, ticket: Ticket, now: datetime | None = None) -> list[Event]:
        """Raise, as events, the warnings and breaches whose instant has come and that were not raised yet."""
        now = now or self.clock()
        self.recompute(ticket, now)
        start = ticket.created_at or now
        d = self._deadlines(ticket, ticket.priority, start, now)
        raised = []
        alerts = list(ticket.sla_alerts or [])
        for kind, at in sorted(self._thresholds(ticket, d).items(), key=lambda kv: kv[1]):
            if at <= now and kind not in alerts:
                target, level = kind.split(".")
                if level == "warning" and f"{target}.breached" in alerts:
                    continue
                alerts.append(kind)
                due = d.respond_by if target == "respond" else d.resolve_by
                raised.append(self._event(ticket, f"sla.{level}", "system:sla", {"target": target, "due": due.isoformat()}, now))
        ticket.sla_alerts = alerts
        ticket.sla_next_check = min((at for kind, at in self._thresholds(ticket, d).items() if kind not in alerts), default=None)
        return raised

    def _responded(self, ticket: Ticket, now: datetime) -> None:
        if ticket.responded_at is None:
            ticket.responded_at = now
        if ticket.first_response_at is None:
            ticket.first_response_at = now

    # -- operator actions -----------------------------------------------------------------------------------
    def take(self, ticket: Ticket, operator: str, assignee: str | None = None) -> Event:
        """`operator` takes the ticket, for themselves or (an integration acting) for `assignee`."""
        if ticket.status not in OPEN_STATUSES:
            raise LifecycleError(f"ticket is {ticket.status}: reopen it before taking it")
        now = self.clock()
        old = ticket.assignee
        assignee = assignee or operator
        ticket.assignee = assignee
        if ticket.status == "waiting":
            self._unpause(ticket, now)
        if ticket.status != "in_progress":
            self._set_status(ticket, "in_progress")
        self._responded(ticket, now)
        self.recompute(ticket, now)
        return self._event(ticket, "taken", operator, {"old": old, "new": assignee}, now)

    def assign(self, ticket: Ticket, actor: str, assignee: str | None, group: tuple[int, str] | None = None) -> Event:
        """Give the ticket to a person (an active operator the caller has checked) and/or a group (id, name)."""
        if ticket.status not in OPEN_STATUSES:
            raise LifecycleError(f"a {ticket.status} ticket cannot be assigned: reopen it first")
        now = self.clock()
        data = {"old": ticket.assignee, "new": assignee}
        ticket.assignee = assignee
        if group is not None:
            ticket.group_id = group[0]
            data["group"] = group[1]
        self.recompute(ticket, now)
        return self._event(ticket, "assigned", actor, data, now)

    def wait(self, ticket: Ticket, operator: str, reason: str = "", waiting_for: str = "user") -> Event:
        """Set the ticket waiting for the user (`reason` is the question they are asked) or for a vendor: the
        SLA clock stops until `resume`."""
        if waiting_for not in WAITING_FOR:
            raise LifecycleError(f"a ticket waits for {' or '.join(WAITING_FOR)}")
        if waiting_for == "user" and not (reason or "").strip():
            raise LifecycleError("waiting for the user needs the question to ask them")
        now = self.clock()
        self._set_status(ticket, "waiting")
        ticket.waiting_for, ticket.waiting_since = waiting_for, now
        self._responded(ticket, now)
        self.recompute(ticket, now)
        return self._event(ticket, "status_changed", operator, {"new": "waiting", "for": waiting_for, "reason": (reason or "").strip()}, now)

    def resume(self, ticket: Ticket, actor: str, reason: str = "") -> Event:
        """End a wait (the user answered, the vendor replied, or an operator says so): the clock runs again."""
        if ticket.status != "waiting":
            raise LifecycleError(f"only a waiting ticket can be resumed; this one is {ticket.status}")
        now = self.clock()
        self._unpause(ticket, now)
        ticket.status = "in_progress" if ticket.assignee else "new"
        self.recompute(ticket, now)
        return self._event(ticket, "status_changed", actor, {"new": ticket.status, "resumed": True, "reason": (reason or "").strip()}, now)

    def _unpause(self, ticket: Ticket, now: datetime) -> None:
        if ticket.waiting_since is not None:
            calendar = self.organisations.terms(ticket.organisation_id)[0] if self.organisations else None
            from .sla import ALWAYS

            ticket.paused_minutes = float(ticket.paused_minutes or 0.0) + (calendar or ALWAYS).between(ticket.waiting_since, now)
        ticket.waiting_since, ticket.waiting_for = None, None

    def escalate(self, ticket: Ticket, operator: str, reason: str, group: tuple[int, str] | None = None) -> Event:
        """Hand the ticket to the next level's queue, to `group` (id, name) when the desk routed it to one; the
        respond clock starts again for the new level."""
        if not reason or not reason.strip():
            raise LifecycleError("an escalation needs a reason")
        if ticket.status not in OPEN_STATUSES:
            raise LifecycleError(f"a {ticket.status} ticket cannot be escalated")
        if ticket.level >= LEVELS[-1]:
            raise LifecycleError(f"ticket is already at level {LEVEL_NAMES[LEVELS[-1]]}, the last one")
        now = self.clock()
        old = ticket.level
        if ticket.status == "waiting":
            self._unpause(ticket, now)
        ticket.level = old + 1
        ticket.assignee = None
        ticket.status = "new"
        ticket.level_since, ticket.responded_at = now, None
        ticket.group_id = group[0] if group else None
        self.recompute(ticket, now)
        data = {"from": LEVEL_NAMES[old], "to": LEVEL_NAMES[ticket.level], "reason": reason.strip()}
        if group:
            data["group"] = group[1]
        return self._event(ticket, "escalated", operator, data, now)

    def resolve(self, ticket: Ticket, operator: str, report: str) -> Event:
        if not report or not report.strip():
            raise LifecycleError("resolving a ticket needs a report of what was done")
        self._check(ticket, "resolved")
        now = self.clock()
        if ticket.status == "waiting":
            self._unpause(ticket, now)
        ticket.status = "resolved"
        self._responded(ticket, now)
        self.recompute(ticket, now)
        return self._event(ticket, "resolved", operator, {"report": report.strip()}, now)

    def close(self, ticket: Ticket, operator: str) -> Event:
        self._check(ticket, "closed")
        ticket.status = "closed"
        self.recompute(ticket)
        return self._event(ticket, "closed", operator, {})

    def reopen(self, ticket: Ticket, actor: str, reason: str) -> Event:
        if ticket.status != "resolved":
            raise LifecycleError(f"only a resolved ticket can be reopened; this one is {ticket.status}")
        ticket.status = "in_progress" if ticket.assignee else "new"
        self.recompute(ticket)
        return self._event(ticket, "reopened", actor, {"reason": reason})

    def set_field(
        self, ticket: Ticket, name: str, value: str | None, actor: str, *, confidence: float = 1.0, source="operator"
    ) -> Event:
        f = ticket.field(name)
        old = f.value if f else None
        if f is None:
            f = TicketField(name=name)
            ticket.fields.append(f)
        f.value, f.confidence, f.source = value, confidence, source
        if name == "urgency" and value in URGENCIES:
            ticket.urgency = value
        self.recompute(ticket)
        return self._event(ticket, "field_changed", actor, {"field": name, "old": old, "new": value})

    def note(self, ticket: Ticket, operator: str, text: str) -> Event:
        if not text.strip():
            raise LifecycleError("a note needs some text")
        return self._event(ticket, "note", operator, {"text": text.strip()})

    # -- helpers --------------------------------------------------------------------------------------------
    def _check(self, ticket: Ticket, new: str) -> None:
        if new not in TRANSITIONS.get(ticket.status, ()):
            allowed = ", ".join(sorted(TRANSITIONS.get(ticket.status, ()))) or "none: it is final"
            raise LifecycleError(f"a {ticket.status} ticket cannot become {new} (allowed: {allowed})")

    def _set_status(self, ticket: Ticket, new: str) -> None:
        self._check(ticket, new)
        ticket.status = new

    def _event(self, ticket: Ticket, kind: str, actor: str, data: dict, now: datetime | None = None) -> Event:
        now = now or self.clock()
        ticket.updated_at = now
        event = Event(kind=kind, actor=actor, data=data, at=now)
        session = object_session(ticket)
        if session is not None and ticket.id is not None and "events" in sa_inspect(ticket).unloaded:
            event.ticket_id = ticket.id  # appended without loading the whole history first (the SLA check's case)
            session.add(event)
        else:
            ticket.events.append(event)
        return event


def _criticality(ticket: Ticket) -> str | None:
    """The criticality of the ticket's asset, read through the ticket's session (None without one)."""
    session = object_session(ticket)
    if ticket.asset_id is None or session is None:
        return None
    with session.no_autoflush:  # a read: what is pending is written with the change, not before it
        asset = session.get(Asset, ticket.asset_id)
    return asset.criticality if asset is not None else None
