"""Readmitting a rejected contact (issue 13 §6): an operator turns a wrongly rejected mail (an auto-reply rule that
fired on a real report) into a ticket through the normal intake.

The core knows nothing of protocols: the channel that stored the raw bytes reads them again into a `Contact`
(`ticketing.ports.ContactReader`, the email channel's parser, handed over by `gateway/`). The contact keeps the
rejection's key (`(channel, external_id)`, the Message-ID with the mail's fingerprint), so the intake's unique
key makes it one ticket however often it is readmitted, and the sender re-sending the same mail adds nothing.
`rejection_readmits` records which ticket a rejection became, for the review page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .models import Base, BigId, Event, Rejection, Ticket, utcnow
from .numbering import format_number
from .ports import ContactReader, IntakePort


class RejectionReadmit(Base):
    """A rejection an operator turned into a ticket."""

    __tablename__ = "rejection_readmits"

    rejection_id: Mapped[int] = mapped_column(BigId, ForeignKey("rejections.id"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))


class CannotReadmit(ValueError):
    """The rejection cannot become a ticket (no raw bytes kept, a channel that cannot read them again)."""


@dataclass(frozen=True)
class Readmitted:
    rejection_id: int
    number: str
    outcome: str  # the intake's: created (the first time), duplicate or appended


class Readmissions:
    def __init__(self, sessions: sessionmaker[Session], intake: IntakePort, blobs, readers: dict[str, ContactReader], prefix: str = "HD"):
        self.sessions, self.intake, self.blobs, self.readers, self.prefix = sessions, intake, blobs, dict(readers), prefix

    def readmitted(self, rejection_ids) -> dict[int, str]:
        """{rejection id: the number of the ticket it became} for those of `rejection_ids` readmitted."""
        ids = [int(i) for i in rejection_ids][:1000]
        if not ids:
            return {}
        with self.sessions() as s:
            rows = s.execute(select(RejectionReadmit.rejection_id, Ticket.created_at, Ticket.id)
                             .join(Ticket, Ticket.id == RejectionReadmit.ticket_id).where(RejectionReadmit.rejection_id.in_(ids))).all()
        return {r.rejection_id: format_number(self.prefix, r.created_at, r.id) for r in rows}

    def readmit(self, rejection_id: int, actor: str) -> Readmitted | None:
        """Deliver the rejected contact to the intake; None when there is no such rejection."""
        with self.sessions() as s:
            r = s.get(Rejection, rejection_id)
            if r is None:
                return None
            channel, external_id, sha256, at = r.channel, r.external_id, r.raw_sha256, r.at
        reader = self.readers.get(channel)
        if reader is None:
            raise CannotReadmit(f"a {channel} contact cannot be read again: only {', '.join(sorted(self.readers)) or 'no channel'}")
        if not sha256:
            raise CannotReadmit(f"rejection {rejection_id} kept no raw bytes")
        try:
            raw = self.blobs.get(sha256)
        except (OSError, KeyError, ValueError):
            raise CannotReadmit(f"the raw bytes of rejection {rejection_id} are not in this gateway's blob store") from None
        try:
            contact = reader.contact(raw, external_id, at).replace(external_id=external_id)
        except Exception as e:  # noqa: BLE001 - the channel cannot read it (the reason it was rejected as ours)
            raise CannotReadmit(f"the {channel} channel cannot read rejection {rejection_id}: {type(e).__name__}: {e}"[:500]) from None
        result = self.intake.deliver(contact)
        with self.sessions() as s:
            try:
                with s.begin():
                    if s.get(RejectionReadmit, rejection_id) is None:
                        s.add(RejectionReadmit(rejection_id=rejection_id, ticket_id=result.ticket_id, actor=actor))
                        s.add(Event(ticket_id=result.ticket_id, kind="readmitted", actor=actor, data={"rejection": rejection_id}))
            except IntegrityError:  # another operator readmitted it at the same moment: one row, one ticket
                pass
        return Readmitted(rejection_id, result.ticket_number, str(result.outcome))
