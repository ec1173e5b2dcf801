"""Linked incidents and merged tickets (issue 13 §4).

When the registry server goes down and twenty people call, the desk gets twenty tickets about one fault. Two
relations put them together, both rows of `ticket_links` (one per ticket: a ticket has at most one target):

- **child → parent incident** (`kind="child"`): the tickets stay open, each with its reporter; the parent is
  the one the operators work on. Resolving the parent offers to resolve its open children with the same report
  (`resolve_children`), each child's reporter told through the outbox as by a normal resolution. One level
  only: a parent is never a child, a child never a parent (linking to a child links to its parent).
- **duplicate → survivor** (`kind="merged"`): the duplicate's messages (with their attachments and
  recordings), its transcription jobs and its transcripts go to the survivor, an event says so on both, and
  the duplicate is closed as merged. Its reporter keeps their number working: the status lookups (web and
  phone, `ticketing/lookup.py`) follow `survivor()` to the ticket that holds their messages now, and resolving
  the survivor mails them the report too (`notify_merged`, called by `Actions.resolve`).

A new ticket that names the same asset as an open parent incident, within `window` of the parent's or one of
its children's creation, is **proposed** for a link (`proposals`): computed when the ticket is read, with two
indexed reads (the tickets of one asset, `ix_tickets_asset`; the links of those parents, `ix_ticket_links_target`),
so intake never waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased, object_session, selectinload

from .actions import NotAllowed, may_act
from .lifecycle import OPEN_STATUSES, LifecycleError
from .links import CHILD, MERGED, TicketLink, notify_merged, survivor
from .models import Event, Message, Ticket, TicketField
from .notices import notify_user
from .numbering import format_number, parse_number
from .transcription import TranscriptionJob
from .views import TicketNotFound

if TYPE_CHECKING:
    from .desk import Desk

DEFAULT_WINDOW_MINUTES = 120


@dataclass(frozen=True)
class LinkedTicket:
    number: str
    status: str
    asset: str | None
    anomaly: str | None
    reporter: str | None


@dataclass(frozen=True)
class Proposal:
    number: str  # the open parent incident
    asset: str | None
    anomaly: str | None
    children: int


@dataclass(frozen=True)
class IncidentView:
    number: str
    parent: LinkedTicket | None  # the parent incident this ticket is linked to
    children: tuple[LinkedTicket, ...]  # the tickets linked to this one, oldest first
    merged_into: str | None  # the survivor, when this ticket was merged
    merged: tuple[str, ...]  # the tickets merged into this one
    proposals: tuple[Proposal, ...]  # open parent incidents on the same asset, within the window
    open_children: int
    report: str | None  # this ticket's latest resolution report: what "resolve the children" sends

    @property
    def is_parent(self) -> bool:
        return bool(self.children)


@dataclass(frozen=True)
class ChildrenResolved:
    resolved: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]  # (number, why)


class Incidents:
    """Links, merges, proposals and the children's resolution, on the desk's sessions, lifecycle and roles."""

    def __init__(self, desk: Desk, window_minutes: int = DEFAULT_WINDOW_MINUTES):
        self.desk = desk
        self.window = timedelta(minutes=max(0, int(window_minutes)))

    # -- reading ------------------------------------------------------------------------------------------------
    def _load(self, s: Session, number: str) -> Ticket:
        parsed = parse_number((number or "")[:40], self.desk.prefix)
        t = s.scalars(select(Ticket).where(Ticket.id == parsed[1]).options(selectinload(Ticket.fields))).first() if parsed else None
        if t is None or t.created_at.year != parsed[0]:
            raise TicketNotFound(number)
        return t

    def _number(self, t: Ticket) -> str:
        return format_number(self.desk.prefix, t.created_at, t.id)

    def _linked(self, t: Ticket) -> LinkedTicket:
        return LinkedTicket(self._number(t), t.status, t.value("asset"), t.value("anomaly"), t.value("reporter_name") or t.value("reporter_email"))

    def _targets(self, s: Session, target_id: int, kind: str) -> list[Ticket]:
        return list(s.scalars(
            select(Ticket).join(TicketLink, TicketLink.ticket_id == Ticket.id)
            .where(TicketLink.target_id == target_id, TicketLink.kind == kind).order_by(Ticket.id).options(selectinload(Ticket.fields))
        ))

    def incident(self, number: str) -> IncidentView:
        with self.desk.sessions() as s:
            t = self._load(s, number)
            link = s.get(TicketLink, t.id)
            parent = s.get(Ticket, link.target_id) if link is not None and link.kind == CHILD else None
            merged_into = s.get(Ticket, link.target_id) if link is not None and link.kind == MERGED else None
            children = self._targets(s, t.id, CHILD)
            merged = self._targets(s, t.id, MERGED)
            report = s.scalar(select(Event.data).where(Event.ticket_id == t.id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1))
            return IncidentView(
                self._number(t), self._linked(parent) if parent is not None else None, tuple(self._linked(c) for c in children),
                self._number(survivor(s, merged_into)) if merged_into is not None else None, tuple(self._number(m) for m in merged),
                self._proposals(s, t) if link is None and not children else (),
                sum(c.status in OPEN_STATUSES for c in children), (report or {}).get("report"),
            )

    def _proposals(self, s: Session, t: Ticket) -> tuple[Proposal, ...]:
        """Open parent incidents on the ticket's asset whose parent or a child was created within the window."""
        if t.asset_id is None or t.status not in OPEN_STATUSES:
            return ()
        low, high = t.created_at - self.window, t.created_at + self.window
        # The open tickets of the asset (ix_tickets_asset) that have children (ix_ticket_links_target): only the
        # parents are loaded, with their children's count and newest creation.
        same_asset = select(Ticket.id).where(Ticket.asset_id == t.asset_id, Ticket.status.in_(OPEN_STATUSES), Ticket.id != t.id)
        child = aliased(Ticket)
        parents = (
            select(TicketLink.target_id.label("pid"), func.count().label("n"), func.max(child.created_at).label("latest"))
            .join(child, child.id == TicketLink.ticket_id)
            .where(TicketLink.kind == CHILD, TicketLink.target_id.in_(same_asset)).group_by(TicketLink.target_id).subquery()
        )
        rows = s.execute(
            select(Ticket, parents.c.n, parents.c.latest).join(parents, parents.c.pid == Ticket.id)
            .where(Ticket.created_at <= high).order_by(Ticket.id.desc()).limit(20).options(selectinload(Ticket.fields))
        ).all()
        return tuple(
            Proposal(self._number(p), p.value("asset"), p.value("anomaly"), n)
            for p, n, latest in rows if max(p.created_at, latest or p.created_at) >= low
        )

    # -- actions ------------------------------------------------------------------------------------------------
    def _check(self, s: Session, actor: str, *tickets: Ticket) -> None:
        who, group_ids = self.desk._who(s, actor)
        for t in tickets:
            why = may_act(who, t, group_ids)
            if why:
                raise NotAllowed(f"{self._number(t)}: {why}")

    @staticmethod
    def _event(t: Ticket, kind: str, actor: str, data: dict, now: datetime) -> None:
        t.updated_at = now
        object_session(t).add(Event(ticket_id=t.id, kind=kind, actor=actor, data=data, at=now))

    def link(self, number: str, parent_number: str, actor: str) -> IncidentView:
        """Link the ticket `number` to the parent incident `parent_number` (to its parent, if it is a child)."""
        with self.desk.sessions() as s, s.begin():
            child, parent = self._load(s, number), self._load(s, parent_number)
            up = s.get(TicketLink, parent.id)
            if up is not None and up.kind == CHILD:
                parent = s.get(Ticket, up.target_id)
            elif up is not None:
                raise LifecycleError(f"{self._number(parent)} was merged into another ticket: link to that one")
            if parent.id == child.id:
                raise LifecycleError("a ticket cannot be its own parent incident")
            if child.status == "closed" or parent.status == "closed":
                raise LifecycleError("a closed ticket cannot be linked")
            if s.scalar(select(TicketLink.ticket_id).where(TicketLink.target_id == child.id, TicketLink.kind == CHILD).limit(1)) is not None:
                raise LifecycleError(f"{self._number(child)} is a parent incident itself: link its children instead")
            self._check(s, actor, child)
            link = s.get(TicketLink, child.id)
            if link is not None and link.kind == MERGED:
                raise LifecycleError(f"{self._number(child)} was merged: it cannot be linked")
            now = self.desk.lifecycle.clock()
            changed = link is None or link.target_id != parent.id  # linking it again to the same parent changes nothing
            if link is None:
                s.add(TicketLink(ticket_id=child.id, target_id=parent.id, kind=CHILD, at=now, actor=actor))
            elif changed:  # moved from another parent incident
                self._event(s.get(Ticket, link.target_id), "child_unlinked", actor, {"child": self._number(child)}, now)
                link.target_id, link.at, link.actor = parent.id, now, actor
            if changed:
                self._event(child, "linked", actor, {"parent": self._number(parent)}, now)
                self._event(parent, "child_linked", actor, {"child": self._number(child)}, now)
        return self.incident(number)

    def unlink(self, number: str, actor: str) -> IncidentView:
        with self.desk.sessions() as s, s.begin():
            child = self._load(s, number)
            link = s.get(TicketLink, child.id)
            if link is None or link.kind != CHILD:
                raise LifecycleError(f"{self._number(child)} is linked to no parent incident")
            self._check(s, actor, child)
            parent = s.get(Ticket, link.target_id)
            now = self.desk.lifecycle.clock()
            s.delete(link)
            self._event(child, "unlinked", actor, {"parent": self._number(parent)}, now)
            self._event(parent, "child_unlinked", actor, {"child": self._number(child)}, now)
        return self.incident(number)

    def merge(self, number: str, into: str, actor: str) -> IncidentView:
        """Merge the duplicate `number` into `into`: messages, recordings, transcripts and jobs move; the
        duplicate is closed as merged. Returns the survivor's view."""
        with self.desk.sessions() as s, s.begin():
            dup, keep = self._load(s, number), self._load(s, into)
            keep = survivor(s, keep)
            if dup.id == keep.id:
                raise LifecycleError("a ticket cannot be merged into itself")
            if dup.status == "closed":
                raise LifecycleError(f"{self._number(dup)} is closed: a closed ticket is final")
            if keep.status == "closed":
                raise LifecycleError(f"{self._number(keep)} is closed: merge into an open or resolved ticket")
            self._check(s, actor, dup, keep)
            now = self.desk.lifecycle.clock()
            moved = s.execute(update(Message).where(Message.ticket_id == dup.id).values(ticket_id=keep.id)).rowcount or 0
            s.execute(update(TranscriptionJob).where(TranscriptionJob.ticket_id == dup.id).values(ticket_id=keep.id))
            # Transcripts: each answer's text where the survivor has none for that question, and the events that
            # pair a recording with its words, so the survivor's page shows them beside the moved recordings.
            have = set(s.scalars(select(TicketField.name).where(TicketField.ticket_id == keep.id)))
            for f in dup.fields:
                if f.name.startswith("transcript_") and f.name not in have:
                    s.add(TicketField(ticket_id=keep.id, name=f.name, value=f.value, confidence=f.confidence, source=f.source))
            for e in s.scalars(select(Event).where(Event.ticket_id == dup.id, Event.kind.in_(("transcribed", "transcription_failed"))).order_by(Event.id)):
                s.add(Event(ticket_id=keep.id, kind=e.kind, actor=e.actor, data={**(e.data or {}), "from": self._number(dup)}, at=now))
            # Its children go to the survivor (the survivor's own link to it, if it had one, goes).
            for link in s.scalars(select(TicketLink).where(TicketLink.target_id == dup.id, TicketLink.kind == CHILD)):
                if link.ticket_id == keep.id:
                    s.delete(link)
                else:
                    link.target_id = keep.id
            s.execute(update(TicketLink).where(TicketLink.target_id == dup.id, TicketLink.kind == MERGED).values(target_id=keep.id))
            old = s.get(TicketLink, dup.id)
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(TicketLink(ticket_id=dup.id, target_id=keep.id, kind=MERGED, at=now, actor=actor))
            dup.status, dup.waiting_for, dup.waiting_since = "closed", None, None
            self.desk.lifecycle.recompute(dup, now)  # closed: no SLA check is due any more
            self._event(dup, "merged", actor, {"into": self._number(keep), "messages": moved}, now)
            self._event(keep, "merged_in", actor, {"from": self._number(dup), "messages": moved}, now)
            result = self._number(keep)
        return self.incident(result)

    def resolve_children(self, number: str, actor: str, report: str | None = None) -> ChildrenResolved:
        """Resolve every open child of the parent `number` with `report` (the parent's own resolution report
        when none is given), each reporter told through the outbox; a child the actor may not act on is left."""
        with self.desk.sessions() as s, s.begin():
            parent = self._load(s, number)
            if report is None or not report.strip():
                data = s.scalar(select(Event.data).where(Event.ticket_id == parent.id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1))
                report = (data or {}).get("report")
            if not report or not report.strip():
                raise LifecycleError("resolve the parent incident first, or give the report to send")
            children = [c for c in self._targets(s, parent.id, CHILD) if c.status in OPEN_STATUSES]
            if not children:
                raise LifecycleError(f"{self._number(parent)} has no open child to resolve")
            who, group_ids = self.desk._who(s, actor)
            done, refused = [], []
            for c in children:
                why = may_act(who, c, group_ids)
                if why:
                    refused.append((self._number(c), why))
                    continue
                event = self.desk.lifecycle.resolve(c, actor, report)
                event.data = {**event.data, "parent": self._number(parent)}
                s.flush()
                notify_user(s, c, self._number(c), "resolved", report)
                notify_merged(s, c, self._number, report)
                done.append(self._number(c))
        return ChildrenResolved(tuple(done), tuple(refused))
