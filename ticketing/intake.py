"""The intake service: the one entry point every channel calls with a `Contact`.

`deliver(contact)` (the channels' port, `ticketing.ports.IntakePort`; `submit` in the caller's own thread) answers
with what happened — a ticket was created, the contact was appended to an existing
ticket, or it was a duplicate of one already taken in — and it is idempotent: the same `(channel,
external_id)` twice makes one message on one ticket, also when two processes race, because the unique
constraint on `messages` decides, not a read-then-write. When `submit` returns, the contact is committed.

Threading: a contact that names a ticket number (subject tag, text, IVR key-in), or replies to a message the
desk received or sent (In-Reply-To / References), is appended to that ticket. Writing again to a resolved
ticket reopens it; a closed ticket is final, so a new ticket is opened that says which one it follows.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from concurrent.futures import Future
from typing import Callable, Iterable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .committer import GroupCommitter
from .contact import Attachment, Contact
from .directory import Directory, DirUser, load_directory
from .extraction import DEFAULT_PIPELINE, Extraction, Field, extract
from .lifecycle import Lifecycle
from .links import survivor
from .models import Event, Message, Rejection, StoredAttachment, Ticket, TicketField, utcnow
from .numbering import find_numbers, format_number, parse_number

log = logging.getLogger(__name__)


_T, _M, _F, _E, _A = (m.__table__ for m in (Ticket, Message, TicketField, Event, StoredAttachment))
# Built once: constructing a statement cost more than executing it (bench/intake.py).
INSERT_TICKET = insert(_T).returning(_T.c.id)
INSERT_MESSAGE = insert(_M).returning(_M.c.id)
INSERT_FIELDS = insert(_F)
INSERT_EVENT = insert(_E)
INSERT_ATTACHMENTS = insert(_A)
TOUCH_TICKET = update(_T).where(_T.c.id == bindparam("tid")).values(updated_at=bindparam("now"))
SEEN = (
    select(_M.c.id, _T.c.id, _T.c.created_at)
    .join(_T, _M.c.ticket_id == _T.c.id)
    .where(_M.c.channel == bindparam("channel"), _M.c.external_id == bindparam("external_id"))
)


class Outcome(StrEnum):
    CREATED = "created"
    APPENDED = "appended"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: Outcome
    ticket_id: int
    ticket_number: str
    message_id: int
    reopened: bool = False
    pin: str | None = None  # the new ticket's status PIN (read back to callers); None unless created


class DirectoryCache:
    """The directory snapshot, reloaded from the database when older than `ttl` seconds or invalidated."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float = 60.0):
        self._sessions, self._ttl = sessions, ttl
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: Directory | None = None
        self._loaded_at = 0.0
        self.generation = 0  # bumped by `invalidate`: what other processes' copies follow (`Extractor`)

    def get(self) -> Directory:
        if self._value is None or time.monotonic() - self._loaded_at > self._ttl:
            with self._lock:
                if self._value is None or time.monotonic() - self._loaded_at > self._ttl:
                    with self._sessions() as s:
                        self._value = load_directory(s)
                    self._loaded_at = time.monotonic()
        return self._value

    def invalidate(self) -> None:
        self._value = None
        self.generation += 1


@dataclass(frozen=True, slots=True)
class Extracted:
    """An extraction's result without its working state (the contact, the directory): small enough to come back
    from another process."""

    fields: dict[str, Field]
    user: DirUser | None
    asset_id: int | None
    asset_criticality: str | None
    language: str

    @classmethod
    def of(cls, x: Extraction) -> Extracted:
        return cls(dict(x.fields), x.user, x.asset_id, x.asset_criticality, x.language)


class Extractor:
    """`extractor(contact) -> Extracted` in any process: the pipeline over a directory read from `url`.

    It travels with each job to a parse worker (pickled), so its directory lives in the worker process, not in
    the object: one engine and one directory per worker, read again after `ttl` seconds or as soon as the
    gateway's own copy was invalidated (its `generation` travels with the job). Loading the directory for every
    mail cost three quarters of a worker's time (bench/email_smtp.py)."""

    def __init__(self, url: str, pipeline: tuple[str, ...], ttl: float, source: DirectoryCache | None = None):
        self.url, self.pipeline, self.ttl = url, tuple(pipeline), ttl
        self._source = source  # the gateway's cache, whose generation the copies follow
        self._generation = 0

    def __getstate__(self) -> dict:
        generation = self._source.generation if self._source is not None else self._generation
        return {"url": self.url, "pipeline": self.pipeline, "ttl": self.ttl, "_source": None, "_generation": generation}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __call__(self, contact: Contact) -> Extracted:
        # In the gateway's own process (the IMAP fetcher's threads) the gateway's cache itself.
        cache = self._source if self._source is not None else _process_directory(self.url, self.ttl, self._generation)
        return Extracted.of(extract(contact, cache.get(), self.pipeline))


# One directory cache per database and process, shared by every Extractor that arrives there.
_PROCESS_CACHES: dict[tuple[str, float], tuple[int, DirectoryCache]] = {}
_PROCESS_LOCK = threading.Lock()


def _process_directory(url: str, ttl: float, generation: int) -> DirectoryCache:
    key = (url, ttl)
    entry = _PROCESS_CACHES.get(key)
    if entry is None:
        with _PROCESS_LOCK:
            entry = _PROCESS_CACHES.get(key)
            if entry is None:
                from .storage import make_engine, make_sessionmaker

                entry = (generation, DirectoryCache(make_sessionmaker(make_engine(url, pool_size=1)), ttl=ttl))
                _PROCESS_CACHES[key] = entry
    seen, cache = entry
    if seen != generation:
        cache.invalidate()
        _PROCESS_CACHES[key] = (generation, cache)
    return cache


class IntakeService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        directory: DirectoryCache | None = None,
        lifecycle: Lifecycle | None = None,
        number_prefix: str = "HD",
        pipeline: tuple[str, ...] = DEFAULT_PIPELINE,
        max_batch: int = 64,
        flush_blobs: Callable[[], None] | None = None,
    ):
        self.sessions = sessions
        self.directory = directory or DirectoryCache(sessions)
        self.lifecycle = lifecycle or Lifecycle()
        self.prefix = number_prefix
        self.pipeline = pipeline
        # Called as hook(session, contact, result) for each new ticket, inside the intake transaction: what
        # must exist exactly when the ticket does (the acknowledgement in the outbox, ticketing/acknowledge.py).
        self.on_created: list = []
        self.committer = GroupCommitter(self._commit_items, max_batch=max_batch)
        # Called before each commit: blobs the channels wrote without an fsync of their own (BlobStore.put(sync=
        # False)) become durable before any row refers to them, one flush for a whole batch.
        self.flush_blobs = flush_blobs

    # -- the entry point -----------------------------------------------------------------------------------
    def submit(self, contact: Contact) -> IntakeResult:
        """Take one contact in; returns once it is committed."""
        return self.submit_many([contact])[0]

    def submit_many(self, contacts: Iterable[Contact]) -> list[IntakeResult]:
        """Take several contacts in with one commit, in the caller's thread.

        Each contact gets its own savepoint, so a duplicate racing in from another process costs only that
        contact's work, not the batch's.
        """
        # Extraction is pure CPU work on the contact: do it before taking the database's write lock.
        return self._commit([(c, self.extract(c)) for c in contacts])

    def extract(self, contact: Contact) -> Extraction:
        """The contact's fields (who, what, the anomaly, urgency): CPU work that needs no database session."""
        return extract(contact, self.directory.get(), self.pipeline)

    # -- the port (ticketing.ports.IntakePort): every channel's contacts through one batched committer -------
    def deliver_future(self, contact: Contact, extraction: Extraction | None = None) -> Future:
        """Hand `contact` to the group committer; the future holds its `IntakeResult` once committed."""
        return self.committer.submit((contact, extraction))

    def deliver(self, contact: Contact) -> IntakeResult:
        """Take one contact in, committed together with whatever other channels deliver meanwhile."""
        return self.deliver_future(contact, self.extract(contact)).result()

    def deliver_many(self, contacts: Iterable[Contact]) -> list[IntakeResult]:
        futures = [self.deliver_future(c, self.extract(c)) for c in contacts]
        return [f.result() for f in futures]

    def extractor(self) -> Extractor:
        """The extraction as a callable another process can run (the SMTP parse workers): the commit thread then
        only writes rows. It reads the directory from the same database itself, reloaded as this one is."""
        engine = self.sessions.kw["bind"]
        return Extractor(engine.url.render_as_string(hide_password=False), self.pipeline, self.directory.ttl, self.directory)

    def close(self) -> None:
        """Commit what the group committer holds, and stop its thread."""
        self.committer.close()

    def _commit_items(self, items: list[tuple[Contact, Extraction | None]]) -> list[IntakeResult]:
        return self._commit([(c, x if x is not None else self.extract(c)) for c, x in items])

    def _commit(self, items: list[tuple[Contact, Extraction]]) -> list[IntakeResult]:
        if self.flush_blobs is not None:
            self.flush_blobs()
        results: list[IntakeResult] = []
        with self.sessions() as session, session.begin():
            for contact, x in items:
                results.append(self._submit_one(session, contact, x))
        return results

    def _submit_one(self, session: Session, contact: Contact, x: Extraction) -> IntakeResult:
        seen = self._existing(session, contact)
        if seen is not None:
            return seen
        if session.get_bind().dialect.name == "sqlite":
            # BEGIN IMMEDIATE holds the write lock from the check above: no other writer can race in.
            return self._enqueue_transcriptions(session, contact, self._take_in(session, contact, x))
        try:
            with session.begin_nested():
                return self._enqueue_transcriptions(session, contact, self._take_in(session, contact, x))
        except IntegrityError:
            seen = self._existing(session, contact)
            if seen is None:
                raise
            return seen

    @staticmethod
    def _enqueue_transcriptions(session: Session, contact: Contact, result: IntakeResult) -> IntakeResult:
        """A transcription job per recording, in the same transaction: a recording is never without its job."""
        if any(a.kind == "recording" and a.blob for a in contact.attachments):
            from .transcription import ACTOR, DONE, heard_transcripts, enqueue_recordings

            # A new ticket takes the words the IVR heard in the answers the caller confirmed as their transcripts at
            # once (the field, and the event the desk shows under the recording); only the other recordings wait
            # for a worker.
            heard = heard_transcripts(contact) if result.outcome == Outcome.CREATED else {}
            done = [j for j in enqueue_recordings(session, result.message_id, contact.language, heard=heard) if j.status == DONE]
            if done:
                conn, now = session.connection(), utcnow()
                conn.execute(INSERT_FIELDS, [
                    {"ticket_id": result.ticket_id, "name": f"transcript_{j.question}"[:40], "value": heard[j.question].text,
                     "confidence": heard[j.question].confidence, "source": heard[j.question].engine} for j in done
                ])
                conn.execute(INSERT_EVENT, [
                    {"ticket_id": result.ticket_id, "at": now, "kind": "transcribed", "actor": ACTOR,
                     "data": heard[j.question].as_event(j.id, j.question, j.blob_sha256)} for j in done
                ])
        return result

    def _existing(self, session: Session, contact: Contact) -> IntakeResult | None:
        row = session.connection().execute(SEEN, {"channel": str(contact.channel), "external_id": contact.external_id}).first()
        if row is None:
            return None
        return IntakeResult(Outcome.DUPLICATE, row[1], format_number(self.prefix, row[2], row[1]), row[0])

    def _take_in(self, session: Session, contact: Contact, x: Extraction) -> IntakeResult:
        # The hot path writes plain rows with INSERT … RETURNING: the ORM's unit of work cost four times
        # as much as the SQL itself here (bench/intake.py).
        actor = f"channel:{contact.channel}"
        now = utcnow()
        target = self._thread_target(session, contact)
        if target is not None and target.status != "closed":
            reopened = False
            if target.status == "resolved":
                self.lifecycle.reopen(target, actor, "the user wrote again")
                reopened = True
                session.flush()
            elif target.status == "waiting":  # the answer the desk waited for (the user's, a vendor's): the clock runs again
                self.lifecycle.resume(target, actor, f"{target.waiting_for or 'user'} answered")
                session.flush()
            conn = session.connection()
            message_id = self._insert_message(conn, contact, target.id)
            conn.execute(
                INSERT_EVENT,
                {"ticket_id": target.id, "at": now, "kind": "message_added", "actor": actor, "data": {"message": message_id, "channel": str(contact.channel)}},
            )
            conn.execute(TOUCH_TICKET, {"tid": target.id, "now": now})
            return IntakeResult(Outcome.APPENDED, target.id, self.number(target), message_id, reopened)

        conn = session.connection()
        values = self._new_ticket(contact, x, now)
        ticket_id = conn.execute(INSERT_TICKET, values).scalar_one()
        number = format_number(self.prefix, now, ticket_id)
        conn.execute(
            INSERT_FIELDS,
            [{"ticket_id": ticket_id, "name": n, "value": f.value, "confidence": f.confidence, "source": f.source} for n, f in x.fields.items()],
        )
        message_id = self._insert_message(conn, contact, ticket_id)
        data = {"channel": str(contact.channel), "number": number, "message": message_id}
        if target is not None:
            data["follows"] = self.number(target)
        conn.execute(INSERT_EVENT, {"ticket_id": ticket_id, "at": now, "kind": "created", "actor": actor, "data": data})
        result = IntakeResult(Outcome.CREATED, ticket_id, number, message_id, pin=values["pin"])
        for hook in self.on_created:
            hook(session, contact, result)
        return result

    # -- threading -----------------------------------------------------------------------------------------
    def _thread_target(self, session: Session, contact: Contact) -> Ticket | None:
        hints = contact.thread
        numbers = [hints.ticket_number] if hints.ticket_number else []
        numbers += find_numbers(f"{contact.subject or ''}\n{contact.text[:20000]}", self.prefix)
        for number in numbers:
            ticket = self.ticket_by_number(session, number)
            if ticket is not None:
                return survivor(session, ticket)  # a merged ticket's number threads to where it was merged (issue 13 §4)
        ids = [i for i in (hints.in_reply_to, *hints.references) if i]
        if ids:
            row = session.execute(
                select(Message.ticket_id).where(Message.rfc_message_id.in_(ids[-50:])).order_by(Message.id.desc()).limit(1)
            ).first()
            if row is not None:
                return session.get(Ticket, row[0])
        return None

    def ticket_by_number(self, session: Session, number: str) -> Ticket | None:
        parsed = parse_number(number, self.prefix)
        if parsed is None:
            return None
        year, ticket_id = parsed
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or ticket.created_at.year != year:
            return None
        return ticket

    def number(self, ticket: Ticket) -> str:
        return format_number(self.prefix, ticket.created_at, ticket.id)

    # -- building rows -------------------------------------------------------------------------------------
    def _new_ticket(self, contact: Contact, x: Extraction, now) -> dict:
        urgency = x.fields["urgency"].value or "normal"
        user_id = x.user.id if x.user else None
        sla = Ticket(created_at=now, urgency=urgency, level=1, status="new", asset_id=x.asset_id, reporter_user_id=user_id)
        self.lifecycle.recompute(sla, now, criticality=x.asset_criticality, reporter_email=x.fields["reporter_email"].value if "reporter_email" in x.fields else contact.sender.email)
        return dict(
            created_at=now,
            updated_at=now,
            channel=str(contact.channel),
            status="new",
            level=1,
            urgency=urgency,
            reporter_user_id=user_id,
            asset_id=x.asset_id,
            language=x.language,
            pin=f"{secrets.randbelow(10000):04d}",
            **self.lifecycle.derived(sla),  # priority, organisation, due times: Lifecycle.recompute's
        )

    @staticmethod
    def _insert_message(conn, contact: Contact, ticket_id: int) -> int:
        s = contact.sender
        message_id = conn.execute(
            INSERT_MESSAGE,
            dict(
                ticket_id=ticket_id,
                channel=str(contact.channel),
                external_id=contact.external_id,
                direction="in",
                rfc_message_id=contact.thread.message_id,
                received_at=contact.received_at,
                sender_name=s.name,
                sender_email=s.email,
                sender_phone=s.phone,
                subject=contact.subject,
                text=contact.text or contact.note or "",
                language=contact.language,
                raw_sha256=contact.raw.sha256 if contact.raw else None,
                in_reply_to=contact.thread.in_reply_to,
                references=list(contact.thread.references),
            ),
        ).scalar_one()
        if contact.attachments:
            conn.execute(INSERT_ATTACHMENTS, [_stored(a, message_id) for a in contact.attachments])
        return message_id

    # -- what is not a ticket ------------------------------------------------------------------------------
    def reject(
        self,
        contact: Contact,
        reason: str,
        *,
        fault: str = "sender",
        ticket_number: str | None = None,
    ) -> int:
        """Record a contact that makes no ticket (an auto-reply, a bounce, junk) where an operator sees it.

        Idempotent on `(channel, external_id)`; when the contact concerns a ticket (a bounce of our
        acknowledgement) the ticket gets an event that says so.
        """
        if self.flush_blobs is not None:
            self.flush_blobs()
        with self.sessions() as session, session.begin():
            existing = session.scalar(
                select(Rejection.id).where(Rejection.channel == str(contact.channel), Rejection.external_id == contact.external_id)
            )
            if existing is not None:
                return existing
            ticket = self.ticket_by_number(session, ticket_number) if ticket_number else None
            row = Rejection(
                channel=str(contact.channel),
                external_id=contact.external_id,
                fault=fault,
                reason=reason,
                sender=contact.sender.email or contact.sender.phone or contact.sender.name,
                subject=contact.subject,
                raw_sha256=contact.raw.sha256 if contact.raw else None,
                ticket_id=ticket.id if ticket else None,
            )
            session.add(row)
            if ticket is not None:
                ticket.events.append(Event(kind="delivery_problem", actor=f"channel:{contact.channel}", data={"reason": reason}))
            session.flush()
            return row.id

    def record_outbound(
        self, ticket_id: int, channel: str, rfc_message_id: str, *, to: str | None, subject: str | None, text: str
    ) -> int:
        """Record a message the desk sent (an acknowledgement, a reply) so replies to it thread back."""
        with self.sessions() as session, session.begin():
            message = Message(
                ticket_id=ticket_id,
                channel=channel,
                external_id=f"out:{rfc_message_id}",
                direction="out",
                rfc_message_id=rfc_message_id,
                sender_email=to,
                subject=subject,
                text=text,
            )
            session.add(message)
            session.flush()
            session.add(Event(ticket_id=ticket_id, kind="message_sent", actor="system", data={"message": message.id, "to": to}))
            return message.id


def _stored(a: Attachment, message_id: int) -> dict:
    return dict(
        message_id=message_id,
        kind=a.kind,
        filename=a.filename[:255],
        content_type=a.content_type[:127],
        size=a.blob.size if a.blob else None,
        sha256=a.blob.sha256 if a.blob else None,
        note=a.note,
        question=a.question,
    )
