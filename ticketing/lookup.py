"""Status lookups for people outside the desk: the public status page and the phone (IVR).

`status_lookup` needs the ticket number *and* the email or phone it was reported with, and answers `None` for
both a wrong number and a wrong contact, so it tells nothing about which tickets exist; by phone, the caller id
or the ticket's PIN stands for the contact. A resolved ticket's status carries its resolution report, a ticket
waiting for the user the question they are asked. A ticket merged into another (`ticketing/incidents.py`) keeps
its number and PIN working: they answer with the status of the ticket it was merged into.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from .contact import normalise_phone
from .links import survivor
from .models import Event, Message, Ticket, User
from .views import PUBLIC_EVENTS, PublicStatus, TicketNotFound


class StatusLookup:
    """Mixin of `ticketing.desk.Desk`: needs `sessions`, `prefix`, `number()` and `_load()`."""

    def status_lookup(self, number: str, contact: str) -> PublicStatus | None:
        """The public status of a ticket, only when `contact` is the email or phone it was reported with."""
        contact = (contact or "").strip()
        with self.sessions() as s:
            try:
                t = self._load(s, number or "")
            except TicketNotFound:
                t = None
            if not contact or t is None:
                return None
            now = survivor(s, t)  # a merged ticket answers with the ticket its messages went to
            if not (self._reported_by(s, t, contact) or (now is not t and self._reported_by(s, now, contact))):
                return None
            t = now
            last = s.scalar(
                select(Event).where(Event.ticket_id == t.id, Event.kind.in_(PUBLIC_EVENTS)).order_by(Event.id.desc()).limit(1)
            )
            report = question = None
            if t.status in ("resolved", "closed"):
                report = s.scalar(select(Event.data).where(Event.ticket_id == t.id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1))
                report = (report or {}).get("report")
            elif t.status == "waiting" and t.waiting_for == "user" and last is not None:
                question = (last.data or {}).get("reason") or None
            return PublicStatus(
                self.number(t), t.status, t.level, t.created_at, last.at if last else t.updated_at, last.kind if last else "created",
                report, question,
            )

    # -- by phone -----------------------------------------------------------------------------------------
    def caller_name(self, caller_id: str | None) -> str | None:
        """The directory's name for a caller id (the IVR asks "are you …?"), or None."""
        wanted = normalise_phone(caller_id)
        if not wanted or len(wanted) < 6:
            return None
        with self.sessions() as s:
            for name, phones in s.execute(select(User.name, User.phones)):
                if any(normalise_phone(p) == wanted for p in phones or ()):
                    return name
        return None

    def pin(self, number: str) -> str | None:
        with self.sessions() as s:
            try:
                return self._load(s, number).pin
            except TicketNotFound:
                return None

    def phone_status(self, digits: str, caller_id: str | None, pin: str | None) -> tuple[str, int] | None:
        """(status, level) of the ticket whose number a caller keyed as digits ("2026000123"), when the caller id
        is a number it was reported with or `pin` is its PIN; None otherwise, whichever part was wrong."""
        digits = "".join(ch for ch in digits or "" if ch.isdigit())
        if len(digits) < 5:
            return None
        number = f"{self.prefix}-{digits[:4]}-{digits[4:]}"
        with self.sessions() as s:
            try:
                t = self._load(s, number)
            except TicketNotFound:
                return None
            now = survivor(s, t)  # a merged ticket's number and PIN answer with the ticket its messages went to
            if pin is not None:
                ok = bool(t.pin) and secrets.compare_digest(t.pin, pin)
            else:
                ok = bool(caller_id) and (self._reported_by(s, t, caller_id) or (now is not t and self._reported_by(s, now, caller_id)))
            return (now.status, now.level) if ok else None

    def _reported_by(self, s: Session, t: Ticket, contact: str) -> bool:
        if "@" in contact:
            wanted = contact.lower()
            emails = {e.lower() for e in s.scalars(select(Message.sender_email).where(Message.ticket_id == t.id, Message.direction == "in")) if e}
            reporter = t.value("reporter_email")
            return wanted in emails or (reporter is not None and reporter.lower() == wanted)
        wanted = normalise_phone(contact)
        if not wanted or len(wanted) < 6:
            return False
        phones = {normalise_phone(p) for p in s.scalars(select(Message.sender_phone).where(Message.ticket_id == t.id, Message.direction == "in")) if p}
        phones.add(normalise_phone(t.value("reporter_phone")))
        return wanted in phones

