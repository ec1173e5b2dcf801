"""The durable outbox of outbound mail: acknowledgements, operators' replies, notifications to support groups.

A mail to send is a row, written by `enqueue(session, …)` in the caller's open transaction, so it exists if
and only if the event that causes it was committed (the ticket an acknowledgement confirms, the reply an
operator wrote). A sender drains the rows through a `MailTransport` (the email channel's SMTP client, given
by `gateway/`), so a relay that is down, or not configured yet, costs a delay and never a mail:

    pending ──claim──▶ sending ──sent──▶ sent            (the ticket gets "mail_sent")
       ▲                  │ temporary failure (4xx, connection refused, timeout):
       └──────────────────┤   next_attempt_at = now + retry·2^(attempts-1) (capped), "mail_waiting" once per reason
                          │ lease expired (the sender died): claimed again
                          └ permanent failure (5xx) ──▶ failed   (the ticket gets "mail_failed" with the relay's words)

- Claiming: `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so gateways sharing a database skip each other's
  rows; on SQLite the claim's write transaction holds the single writer lock (`BEGIN IMMEDIATE`).
- A claim is a lease (owner, attempt, `lease_until`): `sent()`/`failed()` apply only for the claim that still
  holds the row, so two senders never both record one mail. A sender killed between the relay's 250 and
  `sent()` sends that mail again after the lease (at-least-once, with the same Message-ID both times, which
  is what a receiving MTA or client deduplicates on); each mail is marked as soon as the relay took it.
- The Message-ID is made at enqueue time, so what the desk sent is threadable before it even leaves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Iterator, Protocol

from sqlalchemy import ForeignKey, Index, Integer, String, Text, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .models import Base, BigId, Event, Message, utcnow

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
# What a mail is, as the ticket's history names it.
CONFIRMATION, REPLY, NOTIFICATION = "confirmation", "reply", "notification"
ACTOR = "outbox"


class OutboxMail(Base):
    """One mail to send, and what became of it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    rfc_message_id: Mapped[str] = mapped_column(String(512), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(512))
    headers: Mapped[dict] = mapped_column(default=dict)  # extra header fields (Auto-Submitted, Content-Language…)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))  # the outbound message once recorded
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_recipient", "kind", "recipient", "created_at"),
        Index("ix_outbox_kind_created", "kind", "created_at"),
        Index("ix_outbox_ticket", "ticket_id"),
    )


# -- the port a sender drains through -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """A claimed mail, as a transport needs it (no database object)."""

    id: int
    attempt: int
    owner: str
    kind: str
    to: str
    subject: str
    text: str
    message_id: str
    in_reply_to: str | None = None
    headers: dict = field(default_factory=dict)


class TemporaryFailure(Exception):
    """The relay could not take the mail now (4xx, refused connection, timeout): it is tried again later."""


class PermanentFailure(Exception):
    """The relay refused the mail for good (5xx): its words go on the ticket."""


class MailTransport(Protocol):
    """Outbound mail as the core sees it; the email channel provides one (SMTP to the configured relay)."""

    def send(self, mails: list[OutgoingMail]) -> Iterator[tuple[OutgoingMail, BaseException | None]]:
        """Send the mails, yielding each with None (taken) or a `TemporaryFailure` / `PermanentFailure` as soon
        as it is known, so the caller records it before the next one goes."""
        ...


# -- enqueueing (inside the caller's transaction) -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Queued:
    """What `enqueue` made: the outbox row, its Message-ID, and the outbound message when recorded at once."""

    id: int
    rfc_message_id: str
    message_id: int | None = None


_INSERT = None


def enqueue(
    session: Session,
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    ticket_id: int | None = None,
    in_reply_to: str | None = None,
    headers: dict | None = None,
    domain: str = "helpdesk.invalid",
    record: bool = False,
    channel: str = "email",
) -> Queued:
    """Add a mail in the session's open transaction: it commits (or not) with what caused it.

    `record=True` also writes the outbound message on the ticket now (an operator's reply shows on the ticket
    at once); otherwise it is recorded when sent. Either way replies to it thread back to the ticket. One plain
    INSERT (no ORM flush): this runs inside the intake transaction for every acknowledged ticket.
    """
    global _INSERT
    if _INSERT is None:
        t = OutboxMail.__table__
        _INSERT = insert(t).returning(t.c.id)
    rfc_message_id = make_msgid(idstring=kind[:8], domain=domain)
    now = utcnow()
    message_id = None
    if record and ticket_id is not None:
        message_id = _record(session, ticket_id, rfc_message_id, to, subject, text, in_reply_to, channel)
    row_id = session.execute(_INSERT, {
        "ticket_id": ticket_id, "kind": kind[:20], "recipient": to[:320], "subject": subject, "text": text,
        "rfc_message_id": rfc_message_id, "in_reply_to": in_reply_to, "headers": dict(headers or {}),
        "message_id": message_id, "status": PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now,
    }).scalar_one()
    return Queued(row_id, rfc_message_id, message_id)


def _record(session: Session, ticket_id: int, rfc_message_id: str, to: str, subject: str, text: str,
            in_reply_to: str | None, channel: str = "email") -> int:
    message = Message(
        ticket_id=ticket_id, channel=channel, external_id=f"out:{rfc_message_id}", direction="out",
        rfc_message_id=rfc_message_id, sender_email=to, subject=subject, text=text,
        in_reply_to=in_reply_to, references=[in_reply_to] if in_reply_to else [],
    )
    session.add(message)
    session.flush()
    return message.id


def sent_recently(session: Session, kind: str, since: datetime, recipient: str | None = None, *, cap: int | None = None) -> int:
    """How many mails of a kind were enqueued since `since` (to one recipient, or to anyone): the database-held
    rate limits of acknowledgements, shared by every gateway on the database.

    With `cap`, counting stops there (the answer is min(count, cap)): a limit only asks "cap reached?", and a
    busy hour must not make every acknowledgement count thousands of rows inside the intake transaction."""
    statement = _RECENT[(recipient is not None, cap is not None)]
    params = {"kind": kind, "since": since, "recipient": recipient, "cap": max(cap or 0, 0)}
    return session.connection().execute(statement, params).scalar() or 0


def _recent(to_one: bool, capped: bool):
    q = select(OutboxMail.id).where(OutboxMail.kind == bindparam("kind"), OutboxMail.created_at >= bindparam("since"))
    if to_one:
        q = q.where(OutboxMail.recipient == bindparam("recipient"))
    if capped:
        q = q.limit(bindparam("cap", type_=Integer))
    return select(func.count()).select_from(q.subquery())


# Built once: asked inside the intake transaction for new tickets, where building the statement cost more than
# running it.
_RECENT = {(to_one, capped): _recent(to_one, capped) for to_one in (False, True) for capped in (False, True)}


@dataclass(frozen=True, slots=True)
class OutboxStats:
    waiting: int  # pending or being sent
    oldest_age_seconds: float  # of the oldest waiting mail; 0 when none waits
    failed: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A row as the desk's outbox page shows it."""

    id: int
    ticket_id: int | None
    kind: str
    to: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


class Outbox:
    """Claiming, marking and reading the outbox (the core's side of the port the email channel drains)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_seconds: float = 120.0,
        retry_seconds: float = 30.0,
        max_retry_seconds: float = 3600.0,
        give_up_hours: float = 120.0,
    ):
        self.sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)
        self.retry = retry_seconds
        self.max_retry = max_retry_seconds
        self.give_up = timedelta(hours=give_up_hours)  # as an MTA's queue lifetime (Postfix: 5 days)

    # -- the sender's side ----------------------------------------------------------------------------------
    def claim(self, owner: str, limit: int = 50) -> list[OutgoingMail]:
        """Take up to `limit` due mails (pending and due, or sending with an expired lease), oldest first."""
        with self.sessions() as s, s.begin():
            now = utcnow()
            rows = s.scalars(
                select(OutboxMail)
                .where(
                    or_(
                        (OutboxMail.status == PENDING) & (OutboxMail.next_attempt_at <= now),
                        (OutboxMail.status == SENDING) & (OutboxMail.lease_until < now),
                    )
                )
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # rendered on PostgreSQL; SQLite holds the write lock instead
            ).all()
            out = []
            for row in rows:
                row.status, row.attempts = SENDING, row.attempts + 1
                row.lease_owner, row.lease_until = owner[:100], now + self.lease
                out.append(
                    OutgoingMail(row.id, row.attempts, row.lease_owner, row.kind, row.recipient, row.subject, row.text,
                                 row.rfc_message_id, row.in_reply_to, dict(row.headers or {}))
                )
            return out

    @staticmethod
    def _held(s: Session, mail: OutgoingMail) -> OutboxMail | None:
        row = s.get(OutboxMail, mail.id, with_for_update=True)
        if row is None or row.status != SENDING or row.lease_owner != mail.owner or row.attempts != mail.attempt:
            return None  # the lease was lost: another sender has this mail now
        return row

    def sent(self, mail: OutgoingMail) -> bool:
        """The relay took the mail: record it (and the outbound message) on its ticket. False when the claim no
        longer held the row."""
        return self.sent_many([mail]) == 1

    def sent_many(self, mails: list[OutgoingMail]) -> int:
        """`sent` for several mails in one commit; returns how many this sender still held."""
        done = 0
        if not mails:
            return 0
        attempts = {m.id: (m.owner, m.attempt) for m in mails}
        with self.sessions() as s, s.begin():
            now = utcnow()
            rows = s.scalars(
                select(OutboxMail).where(OutboxMail.id.in_(list(attempts)), OutboxMail.status == SENDING)
                .order_by(OutboxMail.id).with_for_update()
            ).all()
            for row in rows:
                if (row.lease_owner, row.attempts) != attempts[row.id]:
                    continue  # the lease was lost: another sender has this mail now
                row.status, row.sent_at, row.lease_owner, row.lease_until = SENT, now, None, None
                if row.ticket_id is not None:
                    if row.message_id is None:
                        row.message_id = _record(s, row.ticket_id, row.rfc_message_id, row.recipient, row.subject,
                                                 row.text, row.in_reply_to)
                    s.add(Event(ticket_id=row.ticket_id, at=now, kind="mail_sent", actor=ACTOR,
                                data={"mail": row.kind, "to": row.recipient, "message": row.message_id}))
                done += 1
        return done

    def failed(self, mail: OutgoingMail, reason: str, *, permanent: bool) -> bool:
        """The relay did not take the mail: retry later (temporary), or give up with its words (permanent)."""
        reason = reason.strip()[:1000] or "unknown error"
        with self.sessions() as s, s.begin():
            row = self._held(s, mail)
            if row is None:
                return False
            now = utcnow()
            if not permanent and now - row.created_at >= self.give_up:
                permanent = True
                reason = f"given up after {self.give_up.total_seconds() / 3600:g} h of temporary failures: {reason}"[:1000]
            changed = reason != row.last_error
            row.last_error, row.lease_owner, row.lease_until = reason, None, None
            if permanent:
                row.status = FAILED
                kind = "mail_failed"
            else:
                row.status = PENDING
                wait = min(self.max_retry, self.retry * 2 ** min(row.attempts - 1, 20))
                row.next_attempt_at = now + timedelta(seconds=wait)
                kind = "mail_waiting"
            if row.ticket_id is not None and (permanent or changed):  # once per reason, not once per retry
                s.add(Event(ticket_id=row.ticket_id, at=now, kind=kind, actor=ACTOR,
                            data={"mail": row.kind, "to": row.recipient, "reason": reason}))
            return True

    def note_waiting(self, reason: str) -> int:
        """Say on each waiting mail's ticket why it waits (e.g. no relay is configured), once per reason."""
        with self.sessions() as s, s.begin():
            rows = s.scalars(
                select(OutboxMail).where(OutboxMail.status == PENDING, or_(OutboxMail.last_error.is_(None), OutboxMail.last_error != reason)).limit(1000)
            ).all()
            now = utcnow()
            for row in rows:
                row.last_error = reason
                if row.ticket_id is not None:
                    s.add(Event(ticket_id=row.ticket_id, at=now, kind="mail_waiting", actor=ACTOR,
                                data={"mail": row.kind, "to": row.recipient, "reason": reason}))
            return len(rows)

    def release(self, owner: str) -> None:
        """Give back what this sender holds (a clean stop), so another gateway can send it without waiting."""
        with self.sessions() as s, s.begin():
            s.execute(
                update(OutboxMail)
                .where(OutboxMail.status == SENDING, OutboxMail.lease_owner == owner[:100])
                .values(status=PENDING, lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

    def retry_now(self) -> int:
        """Make every waiting mail due at once (a relay was just configured)."""
        with self.sessions() as s, s.begin():
            r = s.execute(
                update(OutboxMail).where(OutboxMail.status == PENDING).values(next_attempt_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return r.rowcount

    # -- enqueueing in a transaction of its own -------------------------------------------------------------
    def enqueue_reply(
        self, *, ticket_id: int, to: str, subject: str, text: str, in_reply_to: str | None = None,
        domain: str = "helpdesk.invalid", kind: str = REPLY,
    ) -> str:
        """An operator's reply (or a notification), recorded on its ticket at once; returns its Message-ID."""
        with self.sessions() as s, s.begin():
            row = enqueue(s, kind=kind, to=to, subject=subject, text=text, ticket_id=ticket_id,
                          in_reply_to=in_reply_to, domain=domain, record=True)
            s.add(Event(ticket_id=ticket_id, at=utcnow(), kind="mail_queued", actor=ACTOR,
                        data={"mail": kind, "to": to, "message": row.message_id}))
            return row.rfc_message_id

    def acknowledged(self, ticket_id: int) -> bool:
        """Whether an acknowledgement of this ticket is in the outbox (queued or sent)."""
        with self.sessions() as s:
            return s.scalar(
                select(OutboxMail.id).where(OutboxMail.ticket_id == ticket_id, OutboxMail.kind == CONFIRMATION).limit(1)
            ) is not None

    # -- the desk's and the metrics' side -------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        live = OutboxMail.status.in_((PENDING, SENDING))
        with self.sessions() as s:
            waiting = s.scalar(select(func.count()).select_from(OutboxMail).where(live)) or 0
            oldest = s.scalar(select(OutboxMail.created_at).where(live).order_by(OutboxMail.created_at).limit(1))
            failed = s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.status == FAILED)) or 0
        age = max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0
        return OutboxStats(waiting or 0, age, failed)

    def entries(self, *, waiting_only: bool = False, limit: int = 200) -> list[OutboxEntry]:
        q = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
        if waiting_only:
            q = q.where(OutboxMail.status.in_((PENDING, SENDING, FAILED)))
        with self.sessions() as s:
            return [
                OutboxEntry(r.id, r.ticket_id, r.kind, r.recipient, r.subject, r.status, r.attempts, r.created_at,
                            r.next_attempt_at, r.last_error)
                for r in s.scalars(q)
            ]
