"""The database schema: tickets, their fields with provenance, messages, events, the inventory and the directory.

Every table here is created by an Alembic migration (`ticketing/migrations`), never by `create_all`, so that
a database made by one version of the gateway upgrades cleanly to the next. The same schema runs on SQLite
(the embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite has no 64-bit autoincrement type of its own: INTEGER PRIMARY KEY is already 64-bit there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always handed back with their time zone, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class Asset(Base):
    """An entry of the inventory: equipment, software procedure, program, module or data archive."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # hardware | software | module | archive
    aliases: Mapped[list] = mapped_column(default=list)
    hostname: Mapped[str | None] = mapped_column(String(200))
    serial: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(200))
    criticality: Mapped[str] = mapped_column(String(10), default="medium")  # low | medium | high | critical
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))  # issue 12: ticketing/organisations.py
    support_groups: Mapped[dict] = mapped_column(default=dict)  # {"2": group name, "3": ...}: ticketing/groups.py


class User(Base):
    """A person of the directory: who may contact the desk."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phones: Mapped[list] = mapped_column(default=list)  # as written; compare through contact.normalise_phone
    department: Mapped[str | None] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))


class Ticket(Base):
    """A ticket. Its number is derived from its id and year (see `numbering`), so it is unique and never reused.

    The columns hold what queues filter and sort on; the extracted facts with their provenance live in
    `TicketField` rows, one per field.
    """

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="new")
    level: Mapped[int] = mapped_column(Integer, default=1)
    urgency: Mapped[str] = mapped_column(String(10), default="normal")
    priority: Mapped[int] = mapped_column(Integer, default=3)  # 1 (highest) .. 4
    assignee: Mapped[str | None] = mapped_column(String(100))
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"))
    language: Mapped[str | None] = mapped_column(String(5))
    respond_by: Mapped[datetime | None]
    resolve_by: Mapped[datetime | None]
    pin: Mapped[str | None] = mapped_column(String(8))  # for status checks by phone
    # The service desk after intake (issue 12): who serves it, and the SLA clock's state (ticketing/sla.py).
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("support_groups.id"))
    level_since: Mapped[datetime | None]  # when it reached its level: the respond clock starts there
    responded_at: Mapped[datetime | None]  # first response at the current level
    first_response_at: Mapped[datetime | None]
    waiting_for: Mapped[str | None] = mapped_column(String(10))  # "user" | "vendor" while waiting
    waiting_since: Mapped[datetime | None]  # the clock is paused since then
    paused_minutes: Mapped[float] = mapped_column(Float, default=0.0)  # working minutes of finished pauses
    sla_next_check: Mapped[datetime | None]  # the next warning or breach instant (the background check's index)
    sla_alerts: Mapped[list] = mapped_column(default=list)  # raised so far: "respond.warning", "resolve.breached", ...

    fields: Mapped[list[TicketField]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketField.name"
    )
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")

    __table_args__ = (
        Index("ix_tickets_queue", "status", "level", "priority", "created_at"),
        Index("ix_tickets_channel", "channel"),
        Index("ix_tickets_asset", "asset_id", "id"),  # a search by asset walks its tickets newest first (0011)
        Index("ix_tickets_sla_next_check", "sla_next_check"),
        Index("ix_tickets_organisation_id", "organisation_id", "id"),  # search by organisation, newest first (0011)
        Index("ix_tickets_group_id", "group_id", "id"),  # search by group, newest first (0011)
        Index("ix_tickets_created", "created_at"),  # date ranges of search and reports (0011)
        {"sqlite_autoincrement": True},  # ticket numbers come from the id: never reuse one
    )

    def field(self, name: str) -> TicketField | None:
        return next((f for f in self.fields if f.name == name), None)

    def value(self, name: str) -> str | None:
        f = self.field(name)
        return f.value if f else None


# The queue's order (most urgent, newest first) read straight off an index, with the status in it so that the
# open queue is filtered without visiting the table: the first page costs the same at 100 or 100,000 tickets.
Index("ix_tickets_order", Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(), Ticket.status)
# The same order within one organisation, one support group: their filtered queues are read off an index too.
Index("ix_tickets_organisation", Ticket.organisation_id, Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(), Ticket.status)
Index("ix_tickets_group", Ticket.group_id, Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(), Ticket.status)
# PostgreSQL: the open queue alone (a third of the tickets at 100,000), counted and paged off small partial indexes
# (0013) instead of a sequential scan. SQLite's planner cannot use them with bound statuses: not made there.
_OPEN = Ticket.status.in_(("in_progress", "new", "waiting"))
Index("ix_tickets_open", Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(), postgresql_where=_OPEN).ddl_if(dialect="postgresql")
Index("ix_tickets_open_organisation", Ticket.organisation_id, Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(),
      postgresql_where=_OPEN).ddl_if(dialect="postgresql")
Index("ix_tickets_open_group", Ticket.group_id, Ticket.priority, Ticket.created_at.desc(), Ticket.id.desc(),
      postgresql_where=_OPEN).ddl_if(dialect="postgresql")


class TicketField(Base):
    """One extracted fact of a ticket with its provenance: how sure we are and where it came from."""

    __tablename__ = "ticket_fields"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str | None] = mapped_column(String(20))

    ticket: Mapped[Ticket] = relationship(back_populates="fields")


class Message(Base):
    """A contact appended to a ticket (inbound), or something the desk sent (outbound).

    `(channel, external_id)` is unique: it is what makes intake idempotent, also across processes.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    channel: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str] = mapped_column(String(512))
    direction: Mapped[str] = mapped_column(String(3), default="in")  # in | out
    rfc_message_id: Mapped[str | None] = mapped_column(String(512))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    sender_name: Mapped[str | None] = mapped_column(String(200))
    sender_email: Mapped[str | None] = mapped_column(String(320))
    sender_phone: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(5))
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    in_reply_to: Mapped[str | None] = mapped_column(String(512))
    references: Mapped[list] = mapped_column(default=list)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[StoredAttachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="StoredAttachment.id"
    )

    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_messages_channel_external_id"),
        Index("ix_messages_rfc_message_id", "rfc_message_id"),
        Index("ix_messages_ticket", "ticket_id"),
        Index("ix_messages_received", "received_at", "direction", "channel"),  # contacts per day, off the index (0011)
    )


class StoredAttachment(Base):
    """Metadata of an attachment or recording; its bytes are in the blob store under `sha256`."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12), default="attachment")
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    question: Mapped[str | None] = mapped_column(String(20))  # the desk's question a recording answers

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The append-only history of a ticket: nothing here is ever updated or deleted."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")

    __table_args__ = (
        Index("ix_events_ticket", "ticket_id"),
        Index("ix_events_kind", "kind", "ticket_id", "at"),  # each ticket's last resolution, for reports (0011)
    )


class Rejection(Base):
    """A contact that made no ticket, kept where an operator can see it (auto-replies, bounces, junk).

    `fault` sorts it: `sender` (their input was not a contact for us) or `ours` (we failed and it needs a look).
    """

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(10))
    external_id: Mapped[str] = mapped_column(String(512))
    fault: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))

    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_rejections_channel_external_id"),)


class WebhookCursor(Base):
    """How far the events have been delivered to one webhook URL, and which process delivers them now.

    Only the holder of an unexpired lease delivers to a URL, so gateways sharing a database do not each
    send every event. `failures` and `last_error` say why the next event is not through yet."""

    __tablename__ = "webhook_cursors"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the URL
    url: Mapped[str] = mapped_column(Text)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]


# Tables defined beside the service that owns them (operators, transcription, outbox, ...) import this module;
# ticketing/schema.py imports them all for Base.metadata. Importing them here would make import cycles.
