"""Searching tickets (issue 13 §3): words of the anomaly, messages and transcripts, the reporter, the asset,
the organisation, the support group and a date range, paged, newest first.

Words are found through the same postings as the knowledge (`ticketing/kbindex.py`, kind `search`: one
document per ticket, stemmed in the ticket's language), so "stampanti" finds "stampante" and an accent does not
matter; the reporter's names and addresses are postings too, prefixed `r:` and not stemmed. The suggestion
worker keeps them current (`index_ticket` on every `created`, `field_changed` and `message_added` event).
An organisation or group no one has, or a range that ends before it starts, finds nothing (not an error, as the
queue's filters). Each word is one `IN (postings of its stems)` condition on the ticket id, read off the index
`kb_terms (kind, term, ref)` without the table; the other criteria are the tickets' own indexed columns
(`(organisation_id, id)`, `(group_id, id)`, `(asset_id, id)`, `created_at`: migration 0011). The order is the
primary key's (newest first), so the database walks the matches in that order and stops at COUNT_CAP + 1: one
read gives the total and the first pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from . import kbindex
from .groups import SupportGroup
from .kbindex import KbTerm
from .models import Asset, Message, Ticket
from .numbering import format_number
from .organisations import Organisation

SEARCH = "search"
REPORTER_FIELDS = ("reporter_name", "reporter_email", "reporter_phone")
RAW = re.compile(r"[^\W_]+", re.UNICODE)
COUNT_CAP = 1000  # `total` says "at least 1001" past this: a narrower query is what an operator needs then


@dataclass(frozen=True)
class SearchQuery:
    words: str = ""
    reporter: str = ""
    asset: str = ""
    organisation: str = ""
    group: str = ""
    since: date | None = None
    until: date | None = None  # inclusive


@dataclass(frozen=True)
class SearchHit:
    number: str
    created_at: datetime
    status: str
    channel: str
    reporter: str | None
    asset: str | None
    anomaly: str | None


@dataclass(frozen=True)
class SearchPage:
    items: tuple[SearchHit, ...]
    page: int
    per_page: int
    total: int  # capped at COUNT_CAP + 1 (more)

    @property
    def total_is_lower_bound(self) -> bool:
        """True when more tickets match than were counted: `total` then means "more than COUNT_CAP"."""
        return self.total > COUNT_CAP


def _raw(text: str) -> list[str]:
    return [f"r:{kbindex._fold(w)}"[:60] for w in RAW.findall((text or "").lower()) if len(w) > 1]


def index_ticket(session: Session, ticket: Ticket) -> None:
    """(Re)index one ticket for search, in the session's transaction."""
    texts = [f.value for f in ticket.fields if f.value and (f.name == "anomaly" or f.name.startswith("transcript_"))]
    for subject, text in session.execute(select(Message.subject, Message.text).where(Message.ticket_id == ticket.id)):
        texts += [subject or "", (text or "")[:20000]]
    kbindex.index(session, SEARCH, ticket.id, "\n".join(texts), ticket.language, title=(ticket.value("anomaly") or "")[:300])
    reporter = " ".join(f.value for f in ticket.fields if f.name in REPORTER_FIELDS and f.value)
    terms = sorted(set(_raw(reporter)))
    if terms:
        session.execute(KbTerm.__table__.insert(), [{"kind": SEARCH, "term": t, "ref": ticket.id, "tf": 1} for t in terms])


class Search:
    def __init__(self, sessions: sessionmaker[Session], prefix: str = "HD"):
        self.sessions, self.prefix = sessions, prefix

    def search(self, q: SearchQuery, page: int = 1, per_page: int = 50) -> SearchPage:
        page, per_page = max(1, page), max(1, min(200, per_page))
        with self.sessions() as s:
            where = self._criteria(s, q)
            if where is None:
                return SearchPage((), page, per_page, 0)
            # One read of at most COUNT_CAP + 1 ids, newest first, gives the total and (for the first pages) the
            # page itself: the database stops once it has that many, and the count costs no second pass.
            ids = select(Ticket.id).where(*where).order_by(Ticket.id.desc())
            head = list(s.scalars(ids.limit(COUNT_CAP + 1)))
            start = (page - 1) * per_page
            if start + per_page <= len(head) or len(head) <= COUNT_CAP:
                wanted = head[start:start + per_page]
            else:  # a page past the counted head
                wanted = list(s.scalars(ids.offset(start).limit(per_page)))
            rows = {t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(wanted)).options(selectinload(Ticket.fields)))} if wanted else {}
            items = tuple(
                SearchHit(format_number(self.prefix, t.created_at, t.id), t.created_at, t.status, t.channel,
                          t.value("reporter_name") or t.value("reporter_email") or t.value("reporter_phone"), t.value("asset"), t.value("anomaly"))
                for t in (rows[i] for i in wanted if i in rows)
            )
        return SearchPage(items, page, per_page, len(head))

    @staticmethod
    def _criteria(s: Session, q: SearchQuery) -> list | None:
        """The query's conditions on `tickets`, or None when one of them can match nothing (an unknown
        organisation, group or asset, a reversed range): answered without reading a ticket."""
        if q.since and q.until and q.since > q.until:
            return None  # a range that ends before it starts holds nothing
        where = []
        # Each word: its postings (any of its stems), read off the index (kind, term, ref) in ticket order.
        for word in dict.fromkeys(RAW.findall((q.words or "").lower())):
            stems = sorted(set(kbindex.analyse(word, None)) or {kbindex._fold(word)})
            where.append(Ticket.id.in_(select(KbTerm.ref).where(KbTerm.kind == SEARCH, KbTerm.term.in_(stems))))
        for term in dict.fromkeys(_raw(q.reporter)):
            where.append(Ticket.id.in_(select(KbTerm.ref).where(KbTerm.kind == SEARCH, KbTerm.term == term)))
        if q.asset.strip():
            text = q.asset.strip().lower()
            ids = list(s.scalars(select(Asset.id).where(or_(func.lower(Asset.tag) == text, func.lower(Asset.name).contains(text, autoescape=True)))))
            if not ids:
                return None
            where.append(Ticket.asset_id == ids[0] if len(ids) == 1 else Ticket.asset_id.in_(ids))
        if q.organisation.strip():
            org = s.scalar(select(Organisation.id).where(func.lower(Organisation.name) == q.organisation.strip().lower()))
            if org is None:
                return None  # none by that name: nothing
            where.append(Ticket.organisation_id == org)
        if q.group.strip():
            group = s.scalar(select(SupportGroup.id).where(func.lower(SupportGroup.name) == q.group.strip().lower()))
            if group is None:
                return None
            where.append(Ticket.group_id == group)
        if q.since:
            where.append(Ticket.created_at >= datetime.combine(q.since, time.min, timezone.utc))
        if q.until:
            where.append(Ticket.created_at < datetime.combine(q.until + timedelta(days=1), time.min, timezone.utc))
        return where
