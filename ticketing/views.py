"""The desk's read records: what the desk hands a channel instead of database objects (frozen, plain data).

Also the queue's filters, a page of results, and `TicketNotFound`, which every desk call raises for a number
that names no ticket.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .lifecycle import LEVELS, STATUSES
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
    suggestions: tuple = ()  # ticketing.suggestions.Suggestion: articles and resolved tickets, best first (issue 13)

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


def digest(text: str) -> str:
    """SHA-256 hex of a secret or URL: what is kept instead of it (a session id) or as its key (a webhook URL)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
