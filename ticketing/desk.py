"""The desk: what operators and integrations read about tickets, and the actions they apply to them.

Channel adapters (the web desk, the REST API) call this service and never open a database session: reads
come back as plain frozen records (`QueueRow`, `TicketView`, ...), and every change goes through
`ticketing.lifecycle.Lifecycle`, whose `LifecycleError` carries a message an operator can read. A number
that names no ticket raises `TicketNotFound`.

The public status check (`status_lookup`) needs the ticket number *and* the email or phone it was reported
with, and answers `None` for both a wrong number and a wrong contact, so it tells nothing about which
tickets exist.

For the web channel's outgoing work it also offers where an operator's reply by email goes (`reply_target`),
the events in id order with a cursor per webhook URL under a lease (`events_after`, `webhook_claim`, ...), and
server-side operator sessions, so that logging out or deactivating an operator ends them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload, sessionmaker

from .contact import normalise_phone
from .extraction import FIELD_NAMES
from .lifecycle import LEVEL_NAMES, LEVELS, OPEN_STATUSES, STATUSES, TRANSITIONS, URGENCIES, Lifecycle, LifecycleError
from .models import Asset, Event, Message, Ticket, TicketField, User, WebhookCursor, utcnow
from .numbering import format_number, parse_number
from .actions import Actions, NotAllowed, UnknownAssignee
from .groups import GroupMember, SupportGroup
from .operators import Accounts, Operator, OperatorSession

__all__ = ["Desk", "LifecycleError", "TicketNotFound", "QueueFilters", "Page", "NotAllowed", "UnknownAssignee"]

# Events the reporter may see on the status page (notes and field edits are internal).
PUBLIC_EVENTS = frozenset({"created", "taken", "escalated", "resolved", "closed", "reopened", "message_added", "message_sent", "status_changed"})


class TicketNotFound(LookupError):
    def __init__(self, number: str):
        super().__init__(f"no ticket {number}")
        self.number = number


@dataclass(frozen=True)
class QueueFilters:
    status: str | None = "open"  # a status, "open" (new, in progress, waiting) or None for all
    level: int | None = None
    channel: str | None = None
    asset: str | None = None  # words of the asset field, or an asset tag
    assignee: str | None = None  # a username, or "-" for unassigned
    organisation: str | None = None  # an organisation's name
    group: str | None = None  # a support group's name, or "-" for none
    mine: str | None = None  # a specialist's username: only the tickets of their groups

    def __post_init__(self) -> None:
        if self.status not in (None, "open", *STATUSES):
            raise ValueError(f"unknown status {self.status!r}")
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}")


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class FieldView:
    name: str
    value: str | None
    confidence: float
    source: str | None
    check: bool  # below the low-confidence threshold: the operator should look at it


@dataclass(frozen=True)
class TicketHeader:
    """What every view of a ticket starts with."""

    number: str
    created_at: datetime
    updated_at: datetime
    channel: str
    status: str
    level: int
    urgency: str
    priority: int
    assignee: str | None
    organisation: str | None
    group: str | None
    waiting: bool
    sla: dict  # {"respond_by", "resolve_by", "paused", "breached", "warning"}


@dataclass(frozen=True)
class QueueRow(TicketHeader):
    reporter: str | None
    asset: str | None
    anomaly: str | None
    check: tuple[str, ...]  # names of the three facts with low confidence


@dataclass(frozen=True)
class AttachmentView:
    filename: str
    content_type: str
    kind: str
    size: int | None
    sha256: str | None
    note: str | None


@dataclass(frozen=True)
class MessageView:
    id: int
    direction: str
    channel: str
    received_at: datetime
    sender_name: str | None
    sender_email: str | None
    sender_phone: str | None
    subject: str | None
    text: str
    attachments: tuple[AttachmentView, ...]


@dataclass(frozen=True)
class EventView:
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]


@dataclass(frozen=True)
class TicketView(TicketHeader):
    language: str | None = None
    respond_by: datetime | None = None
    resolve_by: datetime | None = None
    fields: tuple[FieldView, ...] = ()
    messages: tuple[MessageView, ...] = ()
    events: tuple[EventView, ...] = ()
    actions: tuple[str, ...] = ()  # what the rules allow now: take, escalate, wait, resume, resolve, close, reopen
    first_response_at: datetime | None = None
    waiting_for: str | None = None

    def field(self, name: str) -> FieldView | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class PublicStatus:
    number: str
    status: str
    level: int
    created_at: datetime
    last_update_at: datetime
    last_update: str  # the kind of the last public event
    report: str | None = None  # the resolution report, once resolved
    question: str | None = None  # what the desk asks the user, while it waits for them


@dataclass(frozen=True)
class AssetView:
    tag: str
    name: str
    kind: str
    location: str | None
    criticality: str


@dataclass(frozen=True)
class UserView:
    id: int
    name: str
    email: str | None
    department: str | None


@dataclass(frozen=True)
class ReplyTarget:
    """Where an operator's reply by email goes; `to` is None when no address of the reporter is known."""

    ticket_id: int
    number: str
    to: str | None
    in_reply_to: str | None  # the Message-ID of the reporter's latest mail, so the reply threads in their client
    subject: str | None  # the subject of the reporter's first mail
    language: str | None


@dataclass(frozen=True)
class EventRecord:
    """One event of a ticket's history with the ticket's header as it is now: what an outbound webhook sends."""

    id: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]
    ticket: TicketHeader


@dataclass
class Desk(Actions):
    """The desk's reads here; its actions in `ticketing.actions` (roles, routing, notices)."""

    sessions: sessionmaker[Session]
    lifecycle: Lifecycle
    prefix: str = "HD"
    low_confidence: float = 0.6
    accounts: Accounts | None = field(default=None)
    default_groups: dict[int, str] = field(default_factory=dict)  # level -> group name when the asset names none

    def __post_init__(self) -> None:
        if self.accounts is None:
            self.accounts = Accounts(self.sessions)

    def organisation_name(self, organisation_id: int | None) -> str | None:
        orgs = self.lifecycle.organisations
        return orgs.name(organisation_id) if orgs is not None and organisation_id is not None else None

    def _group_names(self, s: Session) -> dict[int, str]:
        return dict(s.execute(select(SupportGroup.id, SupportGroup.name)).all())

    # -- reading --------------------------------------------------------------------------------------------
    def number(self, ticket: Ticket) -> str:
        return format_number(self.prefix, ticket.created_at, ticket.id)

    def queue(self, filters: QueueFilters = QueueFilters(), page: int = 1, per_page: int = 50) -> Page:
        """Tickets matching `filters`, most urgent (priority 1) first and newest first within a priority."""
        page, per_page = max(1, page), max(1, min(200, per_page))
        q = select(Ticket)
        if filters.status == "open":
            q = q.where(Ticket.status.in_(OPEN_STATUSES))
        elif filters.status:
            q = q.where(Ticket.status == filters.status)
        if filters.level:
            q = q.where(Ticket.level == filters.level)
        if filters.channel:
            q = q.where(Ticket.channel == filters.channel)
        if filters.assignee == "-":
            q = q.where(Ticket.assignee.is_(None))
        elif filters.assignee:
            q = q.where(Ticket.assignee == filters.assignee)
        if filters.organisation:
            from .organisations import Organisation

            q = q.where(Ticket.organisation_id.in_(select(Organisation.id).where(func.lower(Organisation.name) == filters.organisation.strip().lower())))
        if filters.group == "-":
            q = q.where(Ticket.group_id.is_(None))
        elif filters.group:
            q = q.where(Ticket.group_id.in_(select(SupportGroup.id).where(func.lower(SupportGroup.name) == filters.group.strip().lower())))
        if filters.mine:
            q = q.where(Ticket.group_id.in_(select(GroupMember.group_id).where(GroupMember.username == filters.mine)))
        if filters.asset:
            like = f"%{_escape_like(filters.asset.strip().lower())}%"
            by_field = select(TicketField.ticket_id).where(TicketField.name == "asset", func.lower(TicketField.value).like(like, escape="\\"))
            by_tag = select(Asset.id).where(or_(func.lower(Asset.tag).like(like, escape="\\"), func.lower(Asset.name).like(like, escape="\\")))
            q = q.where(or_(Ticket.id.in_(by_field), Ticket.asset_id.in_(by_tag)))
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(
                q.options(selectinload(Ticket.fields))
                .order_by(Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc())
                .offset((page - 1) * per_page)
                .limit(per_page)
            ).all()
            groups = self._group_names(s)
            items = [self._row(t, groups) for t in rows]
        return Page(items, total, page, per_page)

    def latest(self) -> tuple[int, datetime | None]:
        """The number of tickets and the newest change: what a live queue polls to know it must refresh."""
        with self.sessions() as s:
            count, newest = s.execute(select(func.count(Ticket.id), func.max(Ticket.updated_at))).one()
        return count, newest

    def ticket(self, number: str) -> TicketView:
        with self.sessions() as s:
            t = self._load(s, number, full=True)
            return self._view(t)

    def status_lookup(self, number: str, contact: str) -> PublicStatus | None:
        """The public status of a ticket, only when `contact` is the email or phone it was reported with."""
        contact = (contact or "").strip()
        with self.sessions() as s:
            try:
                t = self._load(s, number or "")
            except TicketNotFound:
                t = None
            if not contact or t is None or not self._reported_by(s, t, contact):
                return None
            last = s.scalar(
                select(Event).where(Event.ticket_id == t.id, Event.kind.in_(PUBLIC_EVENTS)).order_by(Event.id.desc()).limit(1)
            )
            report = question = None
            if t.status in ("resolved", "closed"):
                report = s.scalar(select(Event.data).where(Event.ticket_id == t.id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1))
                report = (report or {}).get("report")
            elif t.status == "waiting" and t.waiting_for == "user" and last is not None:
                question = (last.data or {}).get("reason") or None
            return PublicStatus(
                self.number(t), t.status, t.level, t.created_at, last.at if last else t.updated_at, last.kind if last else "created",
                report, question,
            )

    # -- by phone -----------------------------------------------------------------------------------------
    def caller_name(self, caller_id: str | None) -> str | None:
        """The directory's name for a caller id (the IVR asks "are you …?"), or None."""
        wanted = normalise_phone(caller_id)
        if not wanted or len(wanted) < 6:
            return None
        with self.sessions() as s:
            for name, phones in s.execute(select(User.name, User.phones)):
                if any(normalise_phone(p) == wanted for p in phones or ()):
                    return name
        return None

    def pin(self, number: str) -> str | None:
        with self.sessions() as s:
            try:
                return self._load(s, number).pin
            except TicketNotFound:
                return None

    def phone_status(self, digits: str, caller_id: str | None, pin: str | None) -> tuple[str, int] | None:
        """(status, level) of the ticket whose number a caller keyed as digits ("2026000123"), when the caller id
        is a number it was reported with or `pin` is its PIN; None otherwise, whichever part was wrong."""
        digits = "".join(ch for ch in digits or "" if ch.isdigit())
        if len(digits) < 5:
            return None
        number = f"{self.prefix}-{digits[:4]}-{digits[4:]}"
        with self.sessions() as s:
            try:
                t = self._load(s, number)
            except TicketNotFound:
                return None
            if pin is not None:
                ok = bool(t.pin) and secrets.compare_digest(t.pin, pin)
            else:
                ok = bool(caller_id) and self._reported_by(s, t, caller_id)
            return (t.status, t.level) if ok else None

    def _reported_by(self, s: Session, t: Ticket, contact: str) -> bool:
        if "@" in contact:
            wanted = contact.lower()
            emails = {e.lower() for e in s.scalars(select(Message.sender_email).where(Message.ticket_id == t.id, Message.direction == "in")) if e}
            reporter = t.value("reporter_email")
            return wanted in emails or (reporter is not None and reporter.lower() == wanted)
        wanted = normalise_phone(contact)
        if not wanted or len(wanted) < 6:
            return False
        phones = {normalise_phone(p) for p in s.scalars(select(Message.sender_phone).where(Message.ticket_id == t.id, Message.direction == "in")) if p}
        phones.add(normalise_phone(t.value("reporter_phone")))
        return wanted in phones

    def suggest_assets(self, text: str, limit: int = 8) -> list[AssetView]:
        """Inventory entries whose tag or name contains `text`, for the form's asset field."""
        text = (text or "").strip().lower()[:100]
        if len(text) < 2:
            return []
        like = f"%{_escape_like(text)}%"
        with self.sessions() as s:
            rows = s.scalars(
                select(Asset)
                .where(or_(func.lower(Asset.name).like(like, escape="\\"), func.lower(Asset.tag).like(like, escape="\\")))
                .order_by(Asset.name)
                .limit(max(1, min(50, limit)))
            )
            return [_asset(a) for a in rows]

    def assets(self, page: int = 1, per_page: int = 50) -> Page:
        return self._paged(Asset, Asset.tag, _asset, page, per_page)

    def users(self, page: int = 1, per_page: int = 50) -> Page:
        return self._paged(User, User.name, lambda u: UserView(u.id, u.name, u.email, u.department), page, per_page)

    def _paged(self, model, order, convert, page: int, per_page: int) -> Page:
        page, per_page = max(1, page), max(1, min(200, per_page))
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(model))
            rows = s.scalars(select(model).order_by(order).offset((page - 1) * per_page).limit(per_page))
            return Page([convert(r) for r in rows], total, page, per_page)

    # -- replies by email -------------------------------------------------------------------------------------
    def reply_target(self, number: str) -> ReplyTarget:
        """The reporter's address (the ticket's reporter_email field, else the first inbound message's
        sender), and the Message-ID of their latest mail that has one, to answer in the same thread."""
        with self.sessions() as s:
            t = self._load(s, number)
            inbound = s.execute(
                select(Message.sender_email, Message.rfc_message_id, Message.subject)
                .where(Message.ticket_id == t.id, Message.direction == "in")
                .order_by(Message.id)
            ).all()
            to = t.value("reporter_email") or next((m.sender_email for m in inbound if m.sender_email), None)
            in_reply_to = next((m.rfc_message_id for m in reversed(inbound) if m.rfc_message_id), None)
            subject = next((m.subject for m in inbound if m.subject), None)
            return ReplyTarget(t.id, self.number(t), to, in_reply_to, subject, t.language)

    # -- outbound webhooks -----------------------------------------------------------------------------------
    def events_after(self, last_id: int, limit: int = 100) -> list[EventRecord]:
        """The events with an id above `last_id`, in id order, each with its ticket's header as it is now."""
        with self.sessions() as s:
            rows = s.execute(
                select(Event, Ticket).join(Ticket, Event.ticket_id == Ticket.id)
                .where(Event.id > last_id).order_by(Event.id).limit(max(1, min(1000, limit)))
            ).all()
            return [EventRecord(e.id, e.at, e.kind, e.actor, dict(e.data or {}), self._header(t)) for e, t in rows]

    def webhook_claim(self, url: str, owner: str, lease_seconds: float) -> int | None:
        """Take or renew `owner`'s lease on the cursor of `url`: the id of the last event done for it, or None
        while another process holds the lease. A URL met for the first time starts after the newest event
        (a new webhook is not sent the whole history)."""
        key, now = _digest(url), utcnow()
        until = now + timedelta(seconds=lease_seconds)
        with self.sessions() as s:
            with s.begin():
                taken = s.execute(
                    update(WebhookCursor)
                    .where(WebhookCursor.key == key, or_(WebhookCursor.lease_owner.is_(None), WebhookCursor.lease_owner == owner, WebhookCursor.lease_until < now))
                    .values(lease_owner=owner, lease_until=until)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if taken:
                    return s.scalar(select(WebhookCursor.last_event_id).where(WebhookCursor.key == key))
                if s.scalar(select(WebhookCursor.key).where(WebhookCursor.key == key)) is not None:
                    return None
            try:
                with s.begin():
                    newest = s.scalar(select(func.max(Event.id))) or 0
                    s.add(WebhookCursor(key=key, url=url, last_event_id=newest, lease_owner=owner, lease_until=until))
            except IntegrityError:  # another process made the cursor first: it holds the lease
                return None
            return newest

    def webhook_advance(self, url: str, owner: str, event_id: int, lease_seconds: float | None = None) -> bool:
        """Events up to `event_id` are done for `url` (delivered, or not of a kind it wants), and the lease is
        renewed when `lease_seconds` is given. False when `owner` no longer holds the lease (another process
        took over: it must stop)."""
        now = utcnow()
        values = dict(last_event_id=event_id, failures=0, last_error=None, delivered_at=now)
        if lease_seconds is not None:
            values["lease_until"] = now + timedelta(seconds=lease_seconds)
        with self.sessions() as s, s.begin():
            return bool(s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner, WebhookCursor.last_event_id <= event_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount)

    def webhook_failed(self, url: str, owner: str, error: str) -> None:
        """Note a failed attempt at the next event, where an operator (or the API) can see it."""
        with self.sessions() as s, s.begin():
            s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner)
                .values(failures=WebhookCursor.failures + 1, last_error=error[:1000])
                .execution_options(synchronize_session=False)
            )

    def webhook_release(self, url: str, owner: str) -> None:
        """Give up the lease (on a clean stop), so that a restarted gateway resumes at once."""
        with self.sessions() as s, s.begin():
            s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    # -- operator sessions -----------------------------------------------------------------------------------
    def open_session(self, username: str, seconds: float) -> str:
        """A new server-side session of a logged-in operator; returns the id the session cookie carries."""
        sid, now = secrets.token_urlsafe(24), utcnow()
        with self.sessions() as s, s.begin():
            s.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))  # forget expired ones as we go
            s.add(OperatorSession(key=_digest(sid), username=username, created_at=now, expires_at=now + timedelta(seconds=seconds)))
        return sid

    def session_operator(self, sid: str | None) -> str | None:
        """The username of an open, unexpired session of an operator who is still active; else None."""
        if not sid or len(sid) > 100:
            return None
        with self.sessions() as s:
            return s.scalar(
                select(OperatorSession.username)
                .join(Operator, Operator.username == OperatorSession.username)
                .where(OperatorSession.key == _digest(sid), OperatorSession.expires_at > utcnow(), Operator.active.is_(True))
            )

    def close_session(self, sid: str | None) -> None:
        if sid:
            with self.sessions() as s, s.begin():
                s.execute(delete(OperatorSession).where(OperatorSession.key == _digest(sid)))

    # -- helpers --------------------------------------------------------------------------------------------
    def _header_values(self, t: Ticket, groups: dict[int, str] | None = None) -> tuple:
        group = None
        if t.group_id is not None:
            group = groups.get(t.group_id) if groups is not None else (object_session(t).get(SupportGroup, t.group_id).name if object_session(t) else None)
        alerts = t.sla_alerts or []
        sla = {
            "respond_by": t.respond_by, "resolve_by": t.resolve_by, "paused": t.waiting_since is not None,
            "breached": any(a.endswith(".breached") for a in alerts), "warning": any(a.endswith(".warning") for a in alerts),
        }
        return (self.number(t), t.created_at, t.updated_at, t.channel, t.status, t.level, t.urgency, t.priority, t.assignee,
                self.organisation_name(t.organisation_id), group, t.status == "waiting", sla)

    def _header(self, t: Ticket, groups: dict[int, str] | None = None) -> TicketHeader:
        return TicketHeader(*self._header_values(t, groups))

    def _load(self, s: Session, number: str, *, full: bool = False) -> Ticket:
        parsed = parse_number(number[:40], self.prefix)
        if parsed is None:
            raise TicketNotFound(number)
        year, ticket_id = parsed
        q = select(Ticket).where(Ticket.id == ticket_id).options(selectinload(Ticket.fields))
        if full:
            q = q.options(selectinload(Ticket.events), selectinload(Ticket.messages).selectinload(Message.attachments))
        t = s.scalars(q).first()
        if t is None or t.created_at.year != year:
            raise TicketNotFound(number)
        return t

    def _fields(self, t: Ticket) -> tuple[FieldView, ...]:
        return tuple(FieldView(f.name, f.value, f.confidence, f.source, f.confidence < self.low_confidence) for f in t.fields)

    def _row(self, t: Ticket, groups: dict[int, str] | None = None) -> QueueRow:
        fields = {f.name: f for f in self._fields(t)}

        def value(name: str) -> str | None:
            f = fields.get(name)
            return f.value if f else None

        check = tuple(n for n in ("reporter_name", "asset", "anomaly") if n not in fields or fields[n].check)
        return QueueRow(
            *self._header_values(t, groups),
            value("reporter_name") or value("reporter_email") or value("reporter_phone"), value("asset"), value("anomaly"), check,
        )

    def _view(self, t: Ticket) -> TicketView:
        messages = tuple(
            MessageView(
                m.id, m.direction, m.channel, m.received_at, m.sender_name, m.sender_email, m.sender_phone, m.subject, m.text,
                tuple(AttachmentView(a.filename, a.content_type, a.kind, a.size, a.sha256, a.note) for a in m.attachments),
            )
            for m in t.messages
        )
        events = tuple(EventView(e.at, e.kind, e.actor, dict(e.data or {})) for e in t.events)
        return TicketView(
            *self._header_values(t),
            t.language, t.respond_by, t.resolve_by, self._fields(t), messages, events, _actions(t), t.first_response_at, t.waiting_for,
        )


def _actions(t: Ticket) -> tuple[str, ...]:
    actions = []
    if t.status in OPEN_STATUSES:
        actions.append("take")
        if t.level < LEVELS[-1]:
            actions.append("escalate")
        actions.append("resume" if t.status == "waiting" else "wait")
    if "resolved" in TRANSITIONS.get(t.status, ()):
        actions.append("resolve")
    if t.status == "resolved":
        actions += ["close", "reopen"]
    return tuple(actions)


def _asset(a: Asset) -> AssetView:
    return AssetView(a.tag, a.name, a.kind, a.location, a.criticality)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def level_name(level: int) -> str:
    return LEVEL_NAMES.get(level, str(level))
