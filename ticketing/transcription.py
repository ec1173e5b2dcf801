"""Durable transcription jobs: every call recording becomes a job row, done once, its result landing on the ticket.

The core knows nothing of audio: a job names a recording (its blob's SHA-256) and the question it answers
("name", "asset", "anomaly", …); a worker (channels/voice/stt/worker.py) claims it, turns the audio into text
and hands back text plus confidences (`Recognised`), and `complete()` writes that onto the ticket.

    pending ──claim──▶ running ──complete──▶ done
       ▲                  │ fail (retryable, attempts left): run_after = now + backoff·2^(attempt-1)
       └──────────────────┤ lease expired (the worker died): claimed again by another worker
                          └ fail (not retryable, or attempts used up) ──▶ failed, with the reason

- A job is enqueued in the transaction that stores the recording (`enqueue`, `enqueue_recordings`), so a
  committed recording always has its job.
- Claiming: `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent workers skip each other's rows;
  on SQLite every write transaction starts with `BEGIN IMMEDIATE` (ticketing.storage), so the select and the
  update of a claim run under the single writer lock.
- A claim holds a lease (`lease_until`) the worker renews while it works; a job whose lease ran out is
  claimed again. `complete()` succeeds only for the claim that holds the job now (same worker and attempt):
  a worker that lost its lease cannot write a second result, so a result lands on the ticket once.
- A job in a language no worker has a model for waits: workers claim only the languages they serve
  (`claim(languages=…)`), so it stays pending with its attempts unspent, marked once on its ticket
  (`mark_waiting`), and is claimed as soon as a worker finds a model for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Collection

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .contact import Answer, Channel, Contact, Sender
from .extraction import DEFAULT_PIPELINE, Extraction, extract
from .models import Base, BigId, Event, Message, StoredAttachment, Ticket, utcnow

if TYPE_CHECKING:  # models imports this module to register its table: no import cycle at run time
    from .directory import Directory
    from .lifecycle import Lifecycle

log = logging.getLogger(__name__)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
ACTOR = "transcription"
MAX_BACKOFF = 3600.0


class TranscriptionJob(Base):
    """One recording to transcribe, and what became of it."""

    __tablename__ = "transcription_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachments.id"), unique=True)
    question: Mapped[str] = mapped_column(String(20))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None]

    __table_args__ = (
        Index("ix_transcription_jobs_claim", "status", "run_after"),
        Index("ix_transcription_jobs_ticket", "ticket_id"),
    )


# -- enqueueing (inside the caller's transaction) ---------------------------------------------------------------
def enqueue(
    session: Session,
    *,
    ticket_id: int,
    blob_sha256: str,
    question: str,
    language: str | None = None,
    message_id: int | None = None,
    attachment_id: int | None = None,
    max_attempts: int = 5,
) -> TranscriptionJob:
    """Add a job in the session's open transaction: it commits (or not) with the recording it names."""
    job = TranscriptionJob(
        ticket_id=ticket_id,
        blob_sha256=blob_sha256,
        question=question[:20],
        language=language,
        message_id=message_id,
        attachment_id=attachment_id,
        max_attempts=max_attempts,
        status=PENDING,
        attempts=0,
        run_after=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


# What a transcript heard while the caller waited is worth, once the caller confirmed what it was read as: the
# reading is certain (source "caller"), the words under it are the quick decoding's (greedy, short window).
HEARD_CONFIDENCE = 0.9
HEARD_ENGINE = "ivr"  # the source of such a transcript field: heard by the IVR during the call


def heard_transcripts(contact) -> dict[str, Recognised]:
    """question -> the words a recording of `contact` was heard as during the call, for the answers the caller
    then confirmed (`Answer.source == "caller"`): those need no second decoding. Other recordings get a job."""
    out = {}
    for a in contact.attachments:
        answer = contact.answers.get(a.question) if a.question else None
        if a.kind == "recording" and a.blob and a.transcript and answer is not None and answer.source == "caller":
            out[a.question] = Recognised(a.transcript, HEARD_CONFIDENCE, HEARD_ENGINE, None)
    return out


def enqueue_recordings(session: Session, message_id: int, language: str | None = None, max_attempts: int = 5,
                       heard: dict[str, Recognised] | None = None) -> list[TranscriptionJob]:
    """A job for each stored recording of a message that has none yet (idempotent: the intake hook). A recording
    in `heard` (question -> result, see `heard_transcripts`) gets its job done already, with that result, so the
    call's transcripts stay one job per recording and the workers decode only the rest."""
    heard = heard or {}
    rows = session.execute(
        select(StoredAttachment, TranscriptionJob.id)
        .outerjoin(TranscriptionJob, TranscriptionJob.attachment_id == StoredAttachment.id)
        .where(StoredAttachment.message_id == message_id, StoredAttachment.kind == "recording")
    ).all()
    jobs = []
    for att, existing in rows:
        if existing is not None or not att.sha256:
            continue
        ticket_id = att.message.ticket_id
        job = enqueue(
            session,
            ticket_id=ticket_id,
            blob_sha256=att.sha256,
            question=att.question or "recording",  # the channel said which question; else only a transcript
            language=language or att.message.language,
            message_id=message_id,
            attachment_id=att.id,
            max_attempts=max_attempts,
        )
        if att.question in heard:
            job.status, job.finished_at, job.result = DONE, utcnow(), heard[att.question].as_result()
        jobs.append(job)
    return jobs


def _event(ticket: Ticket, kind: str, data: dict) -> None:
    now = utcnow()
    ticket.updated_at = now
    ticket.events.append(Event(kind=kind, actor=ACTOR, data=data, at=now))


# -- a call's transcripts as contact text -----------------------------------------------------------------------
def call_contact(message: Message, jobs: list[TranscriptionJob]) -> Contact:
    """The call again, as the intake record extraction reads: each transcribed answer under its question (the
    problem's transcript also as the text, as a web form's problem is), the caller id and the confirmed name."""
    answers: dict[str, Answer] = {}
    for j in jobs:
        r = j.result or {}
        text = (r.get("text") or "").strip()
        if j.status == DONE and text and not r.get("silent") and j.question != "recording":
            answers[j.question] = Answer(text, "transcript", float(r.get("confidence") or 0.0))
    language = message.language or next((j.language for j in jobs if j.language), None)
    return Contact(
        channel=Channel.VOICE,
        external_id=message.external_id,
        received_at=message.received_at,
        sender=Sender(message.sender_name, message.sender_email, message.sender_phone),
        text=answers["anomaly"].value if "anomaly" in answers else "",
        language=language,
        answers=answers,
    )


# A value no later reading may replace: what an operator set, what the caller confirmed when it was read back.
KEPT_SOURCES = frozenset({"operator", "caller"})


def merge_fields(lifecycle: Lifecycle, ticket: Ticket, x: Extraction, actor: str) -> list[str]:
    """Write an extraction's fields onto a ticket through `Lifecycle.set_field`: never over an operator's or a
    caller-confirmed value, nor over a surer one, and not again when nothing changes. The reporter and the asset
    the fields name come with them; then priority and due times are recomputed. Returns the fields written."""
    written = []
    for name, f in x.fields.items():
        if f.value is None:
            continue
        current = ticket.field(name)
        if current is not None and current.value:
            if current.source in KEPT_SOURCES or current.confidence > f.confidence:
                continue
            if (current.value, current.source, current.confidence) == (f.value, f.source, f.confidence):
                continue
        if name == "asset" and x.asset_id is not None:
            ticket.asset_id = x.asset_id
        if name == "reporter_name" and x.user is not None:
            ticket.reporter_user_id = x.user.id
        lifecycle.set_field(ticket, name, f.value, actor, confidence=f.confidence, source=f.source)
        written.append(name)
    lifecycle.recompute(ticket)
    return written


# -- what a worker holds and hands back ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claim:
    job_id: int
    attempt: int
    worker: str
    ticket_id: int
    question: str
    blob_sha256: str
    language: str | None


@dataclass(frozen=True, slots=True)
class Recognised:
    """A worker's result, without audio: text, confidences, and what produced them."""

    text: str
    confidence: float
    engine: str
    model: str | None  # None: no model of ours (the IVR's words, kept from the call)
    words: list[dict] = field(default_factory=list)  # {"word", "start", "end", "confidence"}
    silent: bool = False  # the recording was below the silence floor

    def as_result(self) -> dict:
        """What a done job keeps (`TranscriptionJob.result`)."""
        return {"text": self.text, "confidence": self.confidence, "engine": self.engine, "model": self.model,
                "silent": self.silent, "words": self.words}

    def as_event(self, job_id: int, question: str, recording: str) -> dict:
        """The `transcribed` event's data: what the ticket page shows under the recording."""
        return {
            "job": job_id,
            "question": question,
            "recording": recording,  # what the operator plays when a field is flagged
            "engine": self.engine,
            "model": self.model,
            "text": self.text,
            "confidence": self.confidence,
            "silent": self.silent,
            "words": [[w["word"], w["confidence"]] for w in self.words],
            "times": [[w.get("start"), w.get("end")] for w in self.words],  # seconds: the desk seeks the recording to a word
        }


class JobQueue:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        lifecycle: Lifecycle,
        directory: Callable[[], Directory],
        *,
        lease_seconds: float = 60.0,
        backoff_seconds: float = 5.0,
        pipeline: tuple[str, ...] = DEFAULT_PIPELINE,
    ):
        self.pipeline = pipeline
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.directory = directory
        self.lease = timedelta(seconds=lease_seconds)
        self.backoff = backoff_seconds

    # -- claiming ---------------------------------------------------------------------------------------------
    def claim(self, worker: str, languages: Collection[str] | None = None, *, unlabelled: bool = True) -> Claim | None:
        """Take the oldest job that is due (pending, or running with an expired lease); None when none is.

        `languages`: only jobs in these languages (those the worker has a model for; None: any), and jobs with
        no language when `unlabelled`. A job in another language is not touched: it waits, its attempts
        unspent, for a worker that can serve it."""
        served = None
        if languages is not None:
            served = TranscriptionJob.language.in_(sorted(languages))
            if unlabelled:
                served = or_(served, TranscriptionJob.language.is_(None))
        while True:
            with self.sessions() as s, s.begin():
                now = utcnow()
                due = or_(
                    (TranscriptionJob.status == PENDING) & (TranscriptionJob.run_after <= now),
                    (TranscriptionJob.status == RUNNING) & (TranscriptionJob.lease_until < now),
                )
                job = s.scalars(
                    select(TranscriptionJob)
                    .where(due if served is None else (due & served))
                    .order_by(TranscriptionJob.run_after, TranscriptionJob.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)  # rendered on PostgreSQL; SQLite holds the write lock instead
                ).first()
                if job is None:
                    return None
                if job.status == RUNNING and job.attempts >= job.max_attempts:
                    # Its worker died on every attempt: give up on it where an operator sees it.
                    self._give_up(s, job, f"the worker died or stalled on all {job.attempts} attempts (last: {job.worker})", now)
                    continue
                if job.status == RUNNING:
                    log.warning("job %d: the lease of worker %s expired; requeued", job.id, job.worker)
                job.status = RUNNING
                job.attempts += 1
                job.worker = worker[:100]
                job.lease_until = now + self.lease
                job.started_at = now
                return Claim(job.id, job.attempts, job.worker, job.ticket_id, job.question, job.blob_sha256, job.language)

    def renew(self, claim: Claim) -> bool:
        """Extend the lease; False when the job is no longer this claim's (the lease was lost)."""
        with self.sessions() as s, s.begin():
            r = s.execute(
                update(TranscriptionJob)
                .where(*self._held_by(claim))
                .values(lease_until=utcnow() + self.lease)
                .execution_options(synchronize_session=False)
            )
            return r.rowcount == 1

    @staticmethod
    def _held_by(claim: Claim):
        return (
            TranscriptionJob.id == claim.job_id,
            TranscriptionJob.status == RUNNING,
            TranscriptionJob.worker == claim.worker,
            TranscriptionJob.attempts == claim.attempt,
        )

    # -- finishing --------------------------------------------------------------------------------------------
    def complete(self, claim: Claim, result: Recognised) -> bool:
        """Record the result and write it onto the ticket, in one transaction. False (nothing written) when the
        claim no longer holds the job: another worker has it, and only one result may land."""
        with self.sessions() as s, s.begin():
            now = utcnow()
            data = result.as_result()
            r = s.execute(
                update(TranscriptionJob)
                .where(*self._held_by(claim))
                .values(status=DONE, finished_at=now, lease_until=None, error=None, result=data)
                .execution_options(synchronize_session=False)
            )
            if r.rowcount != 1:
                log.warning("job %d: attempt %d lost its lease before completing; its result is dropped", claim.job_id, claim.attempt)
                return False
            ticket = s.get(Ticket, claim.ticket_id, with_for_update=True)
            self._apply(ticket, claim, result)
            self._understand_when_last(s, ticket, s.scalar(select(TranscriptionJob.message_id).where(TranscriptionJob.id == claim.job_id)))
            return True

    def fail(self, claim: Claim, reason: str, *, retry: bool = True) -> str | None:
        """Record a failed attempt: back to pending after a backoff when `retry` and attempts are left, else
        failed with `reason`. Returns the job's new status (None when the claim had lost the job)."""
        with self.sessions() as s, s.begin():
            job = s.get(TranscriptionJob, claim.job_id, with_for_update=True)
            if job is None or job.status != RUNNING or job.worker != claim.worker or job.attempts != claim.attempt:
                return None
            now = utcnow()
            if retry and job.attempts < job.max_attempts:
                delay = min(MAX_BACKOFF, self.backoff * 2 ** (job.attempts - 1))
                job.status, job.run_after, job.lease_until, job.error = PENDING, now + timedelta(seconds=delay), None, reason[:2000]
                log.warning("job %d attempt %d failed (%s); retry in %.0f s", job.id, job.attempts, reason, delay)
                return PENDING
            self._give_up(s, job, reason, now)
            return FAILED

    def defer(self, claim: Claim, reason: str, delay_seconds: float = 0.0) -> bool:
        """Hand a claimed job back unspent: the worker cannot serve it now (its model went away), which is no
        fault of the job's. Pending again after `delay_seconds`, the attempt not counted. False when the claim
        had lost the job."""
        with self.sessions() as s, s.begin():
            job = s.get(TranscriptionJob, claim.job_id, with_for_update=True)
            if job is None or job.status != RUNNING or job.worker != claim.worker or job.attempts != claim.attempt:
                return False
            job.status, job.attempts, job.lease_until, job.error = PENDING, max(0, job.attempts - 1), None, reason[:2000]
            job.run_after = utcnow() + timedelta(seconds=delay_seconds)
            log.info("job %d deferred: %s", job.id, reason)
            return True

    # -- jobs no worker can serve yet -------------------------------------------------------------------------
    def pending_languages(self) -> set[str | None]:
        """The languages of the jobs waiting to be done (None: jobs with no language)."""
        with self.sessions() as s:
            return set(s.scalars(select(TranscriptionJob.language).where(TranscriptionJob.status == PENDING).distinct()))

    def mark_waiting(self, language: str | None, note: str) -> int:
        """Say once, on every ticket with a job in `language` pending, that its transcription waits (`note`,
        e.g. "trascrizione non disponibile: nessun modello per it"): an event on the ticket's history, and the
        note on the job. A job already marked with the same note is not marked again. Returns the jobs marked."""
        lang = TranscriptionJob.language.is_(None) if language is None else (TranscriptionJob.language == language)
        with self.sessions() as s, s.begin():
            jobs = list(s.scalars(
                select(TranscriptionJob)
                .where(TranscriptionJob.status == PENDING, lang, or_(TranscriptionJob.error.is_(None), TranscriptionJob.error != note))
                .with_for_update(skip_locked=True)
            ))
            by_ticket: dict[int, list[TranscriptionJob]] = {}
            for job in jobs:
                job.error = note[:2000]
                by_ticket.setdefault(job.ticket_id, []).append(job)
            for ticket_id, waiting in by_ticket.items():
                ticket = s.get(Ticket, ticket_id)
                if ticket is not None:
                    _event(ticket, "transcription_waiting", {"note": note[:500], "language": language,
                                                             "questions": ", ".join(j.question for j in waiting)})
            return len(jobs)

    def _give_up(self, s: Session, job: TranscriptionJob, reason: str, now: datetime) -> None:
        job.status, job.finished_at, job.lease_until, job.error = FAILED, now, None, reason[:2000]
        ticket = s.get(Ticket, job.ticket_id)
        if ticket is not None:
            _event(ticket, "transcription_failed", {"job": job.id, "question": job.question, "recording": job.blob_sha256, "reason": reason[:500]})
            self._understand_when_last(s, ticket, job.message_id)
        log.error("job %d failed for good: %s", job.id, reason)

    # -- the ticket -------------------------------------------------------------------------------------------
    def _apply(self, ticket: Ticket, claim: Claim, r: Recognised) -> None:
        """The transcript itself, on the ticket at once: an event and the `transcript_<question>` field. The
        fields it means (name, asset, anomaly, urgency) wait for the call's last transcription."""
        lc, q = self.lifecycle, claim.question
        _event(ticket, "transcribed", r.as_event(claim.job_id, q, claim.blob_sha256))
        if r.silent:
            # Not an empty transcript passed off as an answer: a flagged field the operator must look at.
            lc.set_field(ticket, f"transcript_{q}"[:40], "(silent recording: no speech reached us)", ACTOR, confidence=0.0, source="silent")
            return
        lc.set_field(ticket, f"transcript_{q}"[:40], r.text, ACTOR, confidence=r.confidence, source=r.engine[:20])

    def _understand_when_last(self, s: Session, ticket: Ticket, message_id: int | None) -> None:
        """When no job of the call is left to run (each done or failed), its transcripts are the call's answers:
        they go through the same extraction pipeline as an email or a form, and what it finds is written by
        `merge_fields`' rules; priority and due times follow (`Lifecycle.recompute`)."""
        if message_id is None:
            return
        jobs = list(s.scalars(select(TranscriptionJob).where(TranscriptionJob.message_id == message_id).order_by(TranscriptionJob.id)))
        if not jobs or any(j.status in (PENDING, RUNNING) for j in jobs):
            return
        message = s.get(Message, message_id)
        if message is None:
            return
        contact = call_contact(message, jobs)
        if not contact.answers:
            return
        x = extract(contact, self.directory(), self.pipeline)
        merge_fields(self.lifecycle, ticket, x, ACTOR)
    # -- looking ----------------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self.sessions() as s:
            return dict(s.execute(select(TranscriptionJob.status, func.count()).group_by(TranscriptionJob.status)).all())
