"""Suggestions at intake: the 3 nearest published articles and the 3 nearest resolved tickets of each ticket.

Intake never waits for them. A background pass (`SuggestionWorker`, started by `gateway/service.py`, woken by
every commit of the process's sessions and polling for other processes' commits) reads the
events table through a cursor of its own (`kb_cursor`), as the webhooks do: a `created`, `field_changed`
(transcription results and operators' edits go through `Lifecycle.set_field`) or `message_added` event makes
the ticket's suggestions be computed again; a `resolved` event puts the ticket and its report in the index
(`ticketing/kbindex.py`), a `reopened` one takes it out. The cursor moves in the same transaction as the
suggestions it produced, so a crash recomputes a batch rather than losing one; a hole in the event ids (a
transaction that took an id and has not committed yet, on PostgreSQL) is waited for a few seconds before it
is passed over. Results are rows of `ticket_suggestions`, read with the ticket (`stored`). The same pass keeps
the search postings of those tickets current (`ticketing/search.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, delete, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload, sessionmaker

from . import kbindex, search
from .knowledge import Article
from .models import Asset, Base, BigId, Event, Ticket, utcnow
from .numbering import format_number

log = logging.getLogger(__name__)

TOP = 3
RECOMPUTE = ("created", "field_changed", "message_added", "merged_in")  # a merge brings the duplicate's messages
CLOSED = ("resolved", "closed")
QUERY_FIELDS = ("anomaly",)  # plus every transcript_<question>


class TicketSuggestion(Base):
    __tablename__ = "ticket_suggestions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # article | ticket
    ref: Mapped[str] = mapped_column(String(40))  # the article's id, or the ticket's number
    title: Mapped[str] = mapped_column(String(300))
    score: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")  # the article's solution, the ticket's resolution report
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_ticket_suggestions_ticket", "ticket_id", "rank"),)


class KbCursor(Base):
    """How far the suggestion worker has read the events."""

    __tablename__ = "kb_cursor"

    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class Suggestion:
    kind: str
    ref: int | str
    title: str
    score: float
    detail: str = ""

    def as_json(self) -> dict:
        return {"kind": self.kind, "ref": self.ref, "title": self.title, "score": self.score}


def stored(session: Session, ticket_id: int) -> tuple[Suggestion, ...]:
    """A ticket's suggestions, best first (articles and tickets merged by score)."""
    rows = session.scalars(select(TicketSuggestion).where(TicketSuggestion.ticket_id == ticket_id))
    out = [Suggestion(r.kind, int(r.ref) if r.kind == kbindex.ARTICLE else r.ref, r.title, r.score, r.detail) for r in rows]
    return tuple(sorted(out, key=lambda x: -x.score))


def query_text(ticket: Ticket) -> str:
    parts = [f.value for f in ticket.fields if f.value and (f.name in QUERY_FIELDS or f.name.startswith("transcript_"))]
    return "\n".join(parts)


def compute(session: Session, ticket: Ticket, prefix: str) -> list[Suggestion]:
    """Rank and store the ticket's suggestions in the session's transaction."""
    text = query_text(ticket)
    asset_kind = session.scalar(select(Asset.kind).where(Asset.id == ticket.asset_id)) if ticket.asset_id else None
    found: list[Suggestion] = []
    for kind in (kbindex.ARTICLE, kbindex.TICKET):
        hits = kbindex.rank(session, text, ticket.language, kind, asset_id=ticket.asset_id, asset_kind=asset_kind,
                            limit=TOP, exclude=ticket.id if kind == kbindex.TICKET else None)
        if kind == kbindex.ARTICLE:
            solutions = dict(session.execute(select(Article.id, Article.solution).where(Article.id.in_([h.ref for h in hits]))).all()) if hits else {}
            found += [Suggestion(kind, h.ref, h.title, h.score, solutions.get(h.ref, "")) for h in hits]
        else:
            tickets = {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_([h.ref for h in hits])))} if hits else {}
            for h in hits:
                t = tickets.get(h.ref)
                if t is not None:
                    found.append(Suggestion(kind, format_number(prefix, t.created_at, t.id), h.title, h.score, _report(session, t.id)))
    session.execute(delete(TicketSuggestion).where(TicketSuggestion.ticket_id == ticket.id))
    now = utcnow()
    ranked = sorted(found, key=lambda x: -x.score)
    if ranked:
        session.execute(insert(TicketSuggestion), [
            {"ticket_id": ticket.id, "rank": i, "kind": s.kind, "ref": str(s.ref), "title": s.title[:300], "score": s.score,
             "detail": s.detail, "computed_at": now} for i, s in enumerate(ranked)
        ])
    return ranked


def _report(session: Session, ticket_id: int) -> str:
    data = session.scalar(
        select(Event.data).where(Event.ticket_id == ticket_id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1)
    )
    return (data or {}).get("report", "")


def index_resolved(session: Session, ticket: Ticket, report: str) -> None:
    """Put a resolved ticket (its problem and its report) in the index of similar tickets."""
    problem = query_text(ticket) or next((m.text for m in ticket.messages if m.direction == "in"), "")[:4000]
    kind = session.scalar(select(Asset.kind).where(Asset.id == ticket.asset_id)) if ticket.asset_id else None
    lines = (ticket.value("anomaly") or problem or "").strip().splitlines()
    title = lines[0][:200] if lines else "(no description)"
    kbindex.index(session, kbindex.TICKET, ticket.id, f"{problem}\n{report}", ticket.language, title=title,
                  assets=[ticket.asset_id] if ticket.asset_id else [], kinds=[kind] if kind else [])


def run_once(sessions: sessionmaker[Session], prefix: str = "HD", *, batch: int = 500, gap_seconds: float = 10.0,
             gaps: dict[int, float] | None = None) -> int:
    """One pass over the events after the cursor; returns how many tickets got their suggestions computed."""
    gaps = {} if gaps is None else gaps
    done = 0
    while True:
        with sessions() as s, s.begin():
            # Locked: two gateways on one PostgreSQL take turns at a batch instead of computing it side by side.
            cursor = s.get(KbCursor, "suggestions", with_for_update=True)
            if cursor is None:
                cursor = KbCursor(name="suggestions", last_event_id=0)
                s.add(cursor)
                s.flush()
            events = s.execute(
                select(Event.id, Event.ticket_id, Event.kind, Event.data).where(Event.id > cursor.last_event_id).order_by(Event.id).limit(batch)
            ).all()
            ready, expected, now = [], cursor.last_event_id + 1, time.monotonic()
            for e in events:
                if e.id != expected and now - gaps.setdefault(expected, now) < gap_seconds:
                    break
                ready.append(e)
                expected = e.id + 1
            if not ready:
                return done
            recompute: set[int] = set()
            for e in ready:
                if e.kind == "resolved":
                    t = s.get(Ticket, e.ticket_id, options=[selectinload(Ticket.fields), selectinload(Ticket.messages)])
                    if t is not None and t.status in CLOSED:
                        index_resolved(s, t, (e.data or {}).get("report", ""))
                elif e.kind == "reopened":
                    kbindex.unindex(s, kbindex.TICKET, e.ticket_id)
                elif e.kind == "merged":  # the duplicate's messages went to its survivor: it is no resolved case of its own
                    kbindex.unindex(s, kbindex.TICKET, e.ticket_id)
                    recompute.add(e.ticket_id)  # its search words now are its own fields only
                elif e.kind in RECOMPUTE:
                    recompute.add(e.ticket_id)
            if recompute:
                for t in s.scalars(select(Ticket).where(Ticket.id.in_(recompute)).options(selectinload(Ticket.fields))):
                    search.index_ticket(s, t)  # the words a search finds it by (ticketing/search.py)
                    if t.status not in CLOSED:
                        compute(s, t, prefix)
                        done += 1
            cursor.last_event_id = ready[-1].id
            for stale in [i for i in gaps if i <= cursor.last_event_id]:
                del gaps[stale]
        if len(ready) < batch:
            return done


class SuggestionWorker:
    """Runs `run_once` on a thread of its own, from the gateway's start to its stop: at once after every commit
    of this process's sessions (an intake batch, a transcription result, an operator's edit), and every
    `seconds` anyway, for what other processes and gateways commit on the same database.

    The wake-up is SQLAlchemy's `after_commit` event on the sessionmaker (every session it makes), so the
    committer and the lifecycle need no hook of their own; the worker's own commits do not wake it."""

    name = "suggestions"

    def __init__(self, sessions, prefix: str, seconds: float = 0.5, spacing: float = 0.02):
        self.sessions, self.prefix, self.seconds, self.spacing = sessions, prefix, seconds, spacing
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._gaps: dict[int, float] = {}

    def wake(self, session=None) -> None:
        if threading.current_thread() is not self._thread:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.seconds)
            # At most one pass every `spacing` seconds: under a burst of intake the passes take bigger batches
            # rather than holding SQLite's write lock after every commit.
            self._stop.wait(self.spacing)
            self._wake.clear()  # before the pass: a commit during it makes another
            if self._stop.is_set():
                return
            try:
                run_once(self.sessions, self.prefix, gaps=self._gaps)
            except Exception:  # noqa: BLE001 - ours (the database is away, two gateways raced): tried again next time
                log.exception("suggestions pass failed; trying again in %.1f s", self.seconds)

    async def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        event.listen(self.sessions, "after_commit", self.wake)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if event.contains(self.sessions, "after_commit", self.wake):
            event.remove(self.sessions, "after_commit", self.wake)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
