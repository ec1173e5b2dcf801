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
queue (status `new`, no assignee). A user who writes again to a resolved ticket reopens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import object_session

from .models import Asset, Event, Ticket, TicketField, utcnow

STATUSES = ("new", "in_progress", "waiting", "resolved", "closed")
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"in_progress", "waiting", "resolved"}),
    "in_progress": frozenset({"waiting", "resolved"}),
    "waiting": frozenset({"in_progress", "resolved"}),
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


class Lifecycle:
    """Applies changes to tickets by the rules. One instance is shared; it holds only the SLA table."""

    def __init__(self, sla: dict[str, SlaTarget] | None = None):
        self.sla = dict(DEFAULT_SLA if sla is None else sla)

    # -- creation -----------------------------------------------------------------------------------------
    def due_times(self, urgency: str, start: datetime) -> tuple[datetime, datetime]:
        target = self.sla.get(urgency) or self.sla["normal"]
        return start + timedelta(minutes=target.respond_minutes), start + timedelta(minutes=target.resolve_minutes)

    # -- derived values -------------------------------------------------------------------------------------
    def recompute(self, ticket: Ticket, now: datetime | None = None, *, criticality: str | None = None) -> bool:
        """Set the ticket's priority and its respond/resolve due times from what the ticket says now.

        The one function that computes them: every change that can move them calls it (intake, a field edit,
        a transcription's result, escalation, reopening), so a stale priority or due time cannot stay.
        Inputs: the urgency and the criticality (impact) of the ticket's asset; the clock starts when the
        ticket was created (`now` for a ticket not stored yet). `criticality` is for a caller that holds the
        asset and a ticket that is in no session yet (intake); otherwise the asset is read through the
        ticket's session. Returns True when a value changed.
        """
        if criticality is None:
            criticality = _criticality(ticket)
        urgency = ticket.urgency if ticket.urgency in URGENCIES else "normal"
        start = ticket.created_at or now or utcnow()
        priority = priority_for(urgency, criticality)
        respond_by, resolve_by = self.due_times(urgency, start)
        changed = (ticket.priority, ticket.respond_by, ticket.resolve_by) != (priority, respond_by, resolve_by)
        ticket.priority, ticket.respond_by, ticket.resolve_by = priority, respond_by, resolve_by
        return changed

    # -- operator actions -----------------------------------------------------------------------------------
    def take(self, ticket: Ticket, operator: str) -> Event:
        if ticket.status not in OPEN_STATUSES:
            raise LifecycleError(f"ticket is {ticket.status}: reopen it before taking it")
        old = ticket.assignee
        ticket.assignee = operator
        if ticket.status != "in_progress":
            self._set_status(ticket, "in_progress")
        return self._event(ticket, "taken", operator, {"old": old, "new": operator})

    def wait(self, ticket: Ticket, operator: str, reason: str = "") -> Event:
        self._set_status(ticket, "waiting")
        return self._event(ticket, "status_changed", operator, {"new": "waiting", "reason": reason})

    def escalate(self, ticket: Ticket, operator: str, reason: str) -> Event:
        if not reason or not reason.strip():
            raise LifecycleError("an escalation needs a reason")
        if ticket.status not in OPEN_STATUSES:
            raise LifecycleError(f"a {ticket.status} ticket cannot be escalated")
        if ticket.level >= LEVELS[-1]:
            raise LifecycleError(f"ticket is already at level {LEVEL_NAMES[LEVELS[-1]]}, the last one")
        old = ticket.level
        ticket.level = old + 1
        ticket.assignee = None
        ticket.status = "new"
        self.recompute(ticket)
        return self._event(
            ticket,
            "escalated",
            operator,
            {"from": LEVEL_NAMES[old], "to": LEVEL_NAMES[ticket.level], "reason": reason.strip()},
        )

    def resolve(self, ticket: Ticket, operator: str, report: str) -> Event:
        if not report or not report.strip():
            raise LifecycleError("resolving a ticket needs a report of what was done")
        self._check(ticket, "resolved")
        ticket.status = "resolved"
        return self._event(ticket, "resolved", operator, {"report": report.strip()})

    def close(self, ticket: Ticket, operator: str) -> Event:
        self._check(ticket, "closed")
        ticket.status = "closed"
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

    @staticmethod
    def _event(ticket: Ticket, kind: str, actor: str, data: dict) -> Event:
        now = utcnow()
        ticket.updated_at = now
        event = Event(kind=kind, actor=actor, data=data, at=now)
        ticket.events.append(event)
        return event


def _criticality(ticket: Ticket) -> str | None:
    """The criticality of the ticket's asset, read through the ticket's session (None without one)."""
    session = object_session(ticket)
    if ticket.asset_id is None or session is None:
        return None
    asset = session.get(Asset, ticket.asset_id)
    return asset.criticality if asset is not None else None
