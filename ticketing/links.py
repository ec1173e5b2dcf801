"""The links between tickets (issue 13 §4): each ticket has at most one, to its parent incident (`child`) or to
the ticket it was merged into (`merged`). Kept apart from the service that makes them (`ticketing/incidents.py`)
because the status lookups (`lookup.py`) and the resolution (`actions.py`) read them: `survivor` is where a merged
number's status is now, `notify_merged` tells the merged tickets' reporters a resolution.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

from .models import Base, BigId, Ticket, utcnow
from .notices import notify_user, reporter_address

CHILD, MERGED = "child", "merged"
MAX_CHAIN = 20  # merges followed at most (a merge always targets the end of a chain, so chains stay short)


class TicketLink(Base):
    """A ticket's one link: to its parent incident (`child`), or to the ticket it was merged into (`merged`)."""

    __tablename__ = "ticket_links"

    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"), primary_key=True)
    target_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))

    __table_args__ = (Index("ix_ticket_links_target", "target_id", "kind"),)



def survivor(s: Session, ticket: Ticket) -> Ticket:
    """The ticket that holds `ticket`'s messages now: itself, or the end of its chain of merges."""
    seen = {ticket.id}
    for _ in range(MAX_CHAIN):
        target = s.scalar(select(TicketLink.target_id).where(TicketLink.ticket_id == ticket.id, TicketLink.kind == MERGED))
        if target is None or target in seen:
            return ticket
        seen.add(target)
        ticket = s.get(Ticket, target) or ticket
    return ticket


def notify_merged(s: Session, t: Ticket, number: Callable[[Ticket], str], report: str) -> int:
    """Mail the resolution report to the reporters of the tickets merged into `t` (once per address, none to
    the survivor's own reporter, who is told by the resolution itself)."""
    told = {(reporter_address(s, t)[0] or "").lower()}
    sent = 0
    for dup in s.scalars(select(Ticket).join(TicketLink, TicketLink.ticket_id == Ticket.id)
                         .where(TicketLink.target_id == t.id, TicketLink.kind == MERGED).options(selectinload(Ticket.fields))):
        to = (reporter_address(s, dup)[0] or "").lower()
        if to and to in told:
            continue
        told.add(to)
        sent += notify_user(s, dup, number(dup), "resolved", report)
    return sent
