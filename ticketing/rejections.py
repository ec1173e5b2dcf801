"""The rejected-contact review (issue 13 §6): what intake kept in `rejections` (auto-replies, bounces, honeypot
posts, spools that could not be read), newest first, with the reason, whose fault it was and where its raw
bytes are (the blob store's sha256), so an operator sees a real mail misclassified as an auto-reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .models import Rejection, Ticket
from .numbering import format_number


@dataclass(frozen=True)
class RejectionView:
    id: int
    at: datetime
    channel: str
    external_id: str
    fault: str
    reason: str
    sender: str | None
    subject: str | None
    raw_sha256: str | None
    ticket: str | None  # the ticket it concerns (a bounce of our acknowledgement), as a number


@dataclass(frozen=True)
class RejectionPage:
    items: tuple[RejectionView, ...]
    page: int
    per_page: int
    total: int


class Rejections:
    def __init__(self, sessions: sessionmaker[Session], prefix: str = "HD"):
        self.sessions, self.prefix = sessions, prefix

    def _view(self, r: Rejection, t: Ticket | None) -> RejectionView:
        return RejectionView(r.id, r.at, r.channel, r.external_id, r.fault, r.reason, r.sender, r.subject, r.raw_sha256,
                             format_number(self.prefix, t.created_at, t.id) if t is not None else None)

    def list(self, page: int = 1, per_page: int = 50, fault: str | None = None) -> RejectionPage:
        page, per_page = max(1, page), max(1, min(200, per_page))
        where = [Rejection.fault == fault] if fault else []
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Rejection).where(*where))
            rows = s.execute(
                select(Rejection, Ticket).outerjoin(Ticket, Ticket.id == Rejection.ticket_id).where(*where)
                .order_by(Rejection.id.desc()).offset((page - 1) * per_page).limit(per_page)
            ).all()
            return RejectionPage(tuple(self._view(r, t) for r, t in rows), page, per_page, total)

    def get(self, rejection_id: int) -> RejectionView | None:
        with self.sessions() as s:
            r = s.get(Rejection, rejection_id)
            if r is None:
                return None
            return self._view(r, s.get(Ticket, r.ticket_id) if r.ticket_id else None)
