"""The ports: what the core offers a channel adapter, as typed protocols, never the core objects themselves.

A channel is given only the ports it needs (`gateway/app.py` builds them and puts them in its
`ChannelContext`):
- `IntakePort`: where contacts go (`deliver`, `deliver_many`), where what makes no ticket is recorded
  (`reject`), and where a message the desk sent is noted so that replies thread back (`record_outbound`).
  `deliver_future` is the same as `deliver` for code that must not block (an event loop): it hands the
  contact to the core's one batched committer and answers with a future.
- `PhoneStatus`: what the IVR asks the desk about a caller and a ticket.
- `DeskPort`: the desk queries and actions the web channel (operators' pages, REST API, webhooks) needs.
- `OutboundMail`: the desk's outgoing mail (acknowledgements, operators' replies), offered by the email channel
  and given to the others by `gateway/`.

These are `typing.Protocol`s: `ticketing.intake.IntakeService` and `ticketing.desk.Desk` satisfy them as they
are, and a wrapper (metrics, a test's collecting fake) only has to have the same methods.
"""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Any, Callable, Protocol, runtime_checkable

from .contact import Contact

__all__ = ["IntakePort", "PhoneStatus", "DeskPort", "OutboundMail", "OutboxPort", "IntakeResultLike", "ContactReader",
           "IncidentsPort", "ReadmitPort"]


class IntakeResultLike(Protocol):
    """What `deliver` answers (`ticketing.intake.IntakeResult`)."""

    ticket_id: int
    ticket_number: str
    message_id: int


@runtime_checkable
class IntakePort(Protocol):
    def deliver(self, contact: Contact) -> Any:
        """Take one contact in; returns (an `IntakeResult`) once it is committed. Idempotent on
        `(channel, external_id)`."""
        ...

    def deliver_many(self, contacts: list[Contact]) -> list[Any]:
        """Take several contacts in; returns once all are committed, one result each, in order."""
        ...

    def deliver_future(self, contact: Contact, extraction: Any = None) -> Future:
        """`deliver` without blocking: the future is resolved once the contact is committed. `extraction`, when
        given, is the contact's fields already extracted (`ticketing.extraction.extract`) off the commit path."""
        ...

    def extractor(self) -> Callable[[Contact], Any]:
        """The field extraction as a picklable callable, for the worker that parses a contact to run, so that
        `deliver_future(contact, extractor(contact))` leaves only the writing to the commit path."""
        ...

    def reject(self, contact: Contact, reason: str, *, fault: str = "sender", ticket_number: str | None = None) -> int:
        """Record a contact that makes no ticket (a bounce, an auto-reply, junk) where an operator sees it."""
        ...

    def record_outbound(
        self, ticket_id: int, channel: str, rfc_message_id: str, *, to: str | None, subject: str | None, text: str
    ) -> int:
        """Note a message the desk sent, so replies to it thread back to its ticket."""
        ...


@runtime_checkable
class PhoneStatus(Protocol):
    """What the IVR asks about a caller and a ticket (`ticketing.desk.Desk` offers it)."""

    def caller_name(self, caller_id: str | None) -> str | None: ...

    def pin(self, number: str) -> str | None: ...

    def phone_status(self, digits: str, caller_id: str | None, pin: str | None) -> tuple[str, int] | None: ...


@runtime_checkable
class DeskPort(Protocol):
    """The operators' queries and actions the web channel needs (`ticketing.desk.Desk` offers them)."""

    accounts: Any

    def queue(self, filters: Any = ..., page: int = 1, per_page: int = 50) -> Any: ...

    def latest(self) -> tuple[int, datetime | None]: ...

    def ticket(self, number: str) -> Any: ...

    def status_lookup(self, number: str, contact: str) -> Any: ...

    def suggest_assets(self, text: str, limit: int = 8) -> list: ...

    def assets(self, page: int = 1, per_page: int = 50) -> Any: ...

    def users(self, page: int = 1, per_page: int = 50) -> Any: ...

    def take(self, number: str, operator: str) -> Any: ...

    def escalate(self, number: str, operator: str, reason: str) -> Any: ...

    def resolve(self, number: str, operator: str, report: str) -> Any: ...

    def close(self, number: str, operator: str) -> Any: ...

    def reopen(self, number: str, operator: str, reason: str) -> Any: ...

    def note(self, number: str, operator: str, text: str) -> Any: ...

    def set_field(self, number: str, operator: str, name: str, value: str) -> Any: ...

    def reply_target(self, number: str) -> Any: ...

    def events_after(self, last_id: int, limit: int = 100) -> list: ...


@runtime_checkable
class OutboundMail(Protocol):
    """The desk's outgoing mail as the other channels use it, offered by the email channel
    (`channels.email.ack.OutboxSender`); every mail goes through the durable outbox (`ticketing.outbox`)."""

    def acknowledge_contact(self, contact: Contact, result: Any) -> bool:
        """Whether the new ticket's acknowledgement is queued (the intake decided it in its transaction)."""
        ...

    def send_reply(
        self, *, ticket_id: int, ticket_number: str, to: str, subject: str, text: str, in_reply_to: str | None = None
    ) -> str:
        """Queue an operator's reply, recorded on the ticket at once; returns its Message-ID."""
        ...


@runtime_checkable
class OutboxPort(Protocol):
    """The durable outbox as a sender drains it and the desk reads it (`ticketing.outbox.Outbox`)."""

    def claim(self, owner: str, limit: int = 50) -> list: ...

    def sent(self, mail: Any) -> bool: ...

    def failed(self, mail: Any, reason: str, *, permanent: bool) -> bool: ...

    def note_waiting(self, reason: str) -> int: ...

    def release(self, owner: str) -> None: ...

    def retry_now(self) -> int: ...

    def sent_many(self, mails: list) -> int: ...

    def enqueue_reply(self, *, ticket_id: int, to: str, subject: str, text: str, in_reply_to: str | None = None,
                      domain: str = ..., kind: str = ...) -> str: ...

    def acknowledged(self, ticket_id: int) -> bool: ...

    def stats(self) -> Any: ...

    def entries(self, *, waiting_only: bool = False, limit: int = 200) -> list: ...


@runtime_checkable
class ContactReader(Protocol):
    """A channel reading its own stored raw input again into a `Contact` (the email channel's parser,
    `channels.email.readmit.MailReader`), so a rejected contact can be readmitted (`ticketing.readmit`)."""

    def contact(self, raw: bytes, external_id: str, received_at: datetime) -> Contact: ...


@runtime_checkable
class IncidentsPort(Protocol):
    """Linked incidents and merges as the web channel uses them (`ticketing.incidents.Incidents`)."""

    def incident(self, number: str) -> Any: ...

    def link(self, number: str, parent_number: str, actor: str) -> Any: ...

    def unlink(self, number: str, actor: str) -> Any: ...

    def merge(self, number: str, into: str, actor: str) -> Any: ...

    def resolve_children(self, number: str, actor: str, report: str | None = None) -> Any: ...


@runtime_checkable
class ReadmitPort(Protocol):
    """Rejected contacts turned into tickets through the normal intake (`ticketing.readmit.Readmissions`)."""

    def readmit(self, rejection_id: int, actor: str) -> Any: ...

    def readmitted(self, rejection_ids: Any) -> dict[int, str]: ...
