"""The desk's reads: the queue (filters, most urgent and newest first), one ticket, the inventory and the
directory, and where a reply by email goes. Everything comes back as the frozen records of `ticketing.views`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, object_session, selectinload

from .groups import GroupMember, SupportGroup
from .lifecycle import LEVELS, OPEN_STATUSES, TRANSITIONS
from .models import Asset, Message, Ticket, TicketField, User
from .numbering import format_number, parse_number
from .suggestions import stored as stored_suggestions
from .views import (
    AssetView, AttachmentView, EventView, FieldView, MessageView, Page, QueueFilters, QueueRow, ReplyTarget,
    TicketHeader, TicketNotFound, TicketView, UserView,
)


# What a queue row shows: the ticket's columns and the fields of ROW_FIELDS.
QUEUE_COLUMNS = (
    Ticket.id, Ticket.created_at, Ticket.updated_at, Ticket.channel, Ticket.status, Ticket.level, Ticket.urgency,
    Ticket.priority, Ticket.assignee, Ticket.organisation_id, Ticket.group_id, Ticket.respond_by, Ticket.resolve_by,
    Ticket.waiting_since, Ticket.sla_alerts,
)
ROW_FIELDS = ("reporter_name", "reporter_email", "reporter_phone", "asset", "anomaly")


class Queries:
    """Mixin of `ticketing.desk.Desk`: needs `sessions`, `lifecycle`, `prefix` and `low_confidence`."""

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

            # An equality with a scalar subquery (not IN): the planner then reads the organisation's own index in order.
            org = select(Organisation.id).where(func.lower(Organisation.name) == filters.organisation.strip().lower()).limit(1)
            q = q.where(Ticket.organisation_id == org.scalar_subquery())
        if filters.group == "-":
            q = q.where(Ticket.group_id.is_(None))
        elif filters.group:
            group = select(SupportGroup.id).where(func.lower(SupportGroup.name) == filters.group.strip().lower()).limit(1)
            q = q.where(Ticket.group_id == group.scalar_subquery())
        if filters.mine:
            q = q.where(Ticket.group_id.in_(select(GroupMember.group_id).where(GroupMember.username == filters.mine)))
        if filters.asset:
            like = f"%{_escape_like(filters.asset.strip().lower())}%"
            by_field = select(TicketField.ticket_id).where(TicketField.name == "asset", func.lower(TicketField.value).like(like, escape="\\"))
            by_tag = select(Asset.id).where(or_(func.lower(Asset.tag).like(like, escape="\\"), func.lower(Asset.name).like(like, escape="\\")))
            q = q.where(or_(Ticket.id.in_(by_field), Ticket.asset_id.in_(by_tag)))
        with self.sessions() as s:
            total = s.scalar(q.with_only_columns(func.count(Ticket.id)).order_by(None))
            # Plain rows, not ORM objects: the page is read as columns (hydrating 50 tickets and their fields
            # cost more than the SQL itself at 100,000 tickets).
            rows = s.execute(
                q.with_only_columns(*QUEUE_COLUMNS)
                .order_by(Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc())
                .offset((page - 1) * per_page)
                .limit(per_page)
            ).all()
            fields: dict[int, list] = {}
            if rows:
                for f in s.execute(
                    select(TicketField.ticket_id, TicketField.name, TicketField.value, TicketField.confidence, TicketField.source)
                    .where(TicketField.ticket_id.in_([r.id for r in rows]), TicketField.name.in_(ROW_FIELDS))
                ):
                    fields.setdefault(f.ticket_id, []).append(f)
            groups = self._group_names(s)
            items = [self._row(r, groups, fields.get(r.id, ())) for r in rows]
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

    def _fields(self, t: Ticket, rows=None) -> tuple[FieldView, ...]:
        rows = t.fields if rows is None else rows
        return tuple(FieldView(f.name, f.value, f.confidence, f.source, f.confidence < self.low_confidence) for f in rows)

    def _row(self, t, groups: dict[int, str] | None = None, field_rows=None) -> QueueRow:
        """A queue row from a ticket, or from a row of `QUEUE_COLUMNS` with its fields' rows."""
        fields = {f.name: f for f in self._fields(t, field_rows)}

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
            stored_suggestions(object_session(t), t.id),
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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
