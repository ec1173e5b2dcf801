"""Who is told that their ticket was opened: the acknowledgement policy, run inside the intake transaction.

An acknowledgement is a mail to an address the contact *claims* as its sender. Sent to anyone, it is
backscatter: a forged From: makes the desk mail a stranger. So a new ticket's reporter is acknowledged only
when the channel vouches for the address (`Sender.verified`: the mail passed DMARC alignment, see
`channels/email/auth.py`) or the desk already knows it (the directory has the address, or its domain is one
the directory's users or `known_domains` have, or a `known` hook says so: organisations), and within the
limits, which are counted in the outbox itself so every gateway on the database shares them:
`per_address_per_hour` to one address, `global_per_hour` in all.

Never the desk's own addresses, nor no-reply style addresses (RFC 3834 §2: do not answer automatic mail).
The words of the mail come from the channel (`compose`), the row goes to the outbox (`ticketing.outbox`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from sqlalchemy.orm import Session

from .contact import Contact
from .directory import Directory
from .models import utcnow
from .outbox import CONFIRMATION, enqueue, sent_recently

log = logging.getLogger(__name__)

NO_ACK_LOCALPARTS = ("noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster", "bounce")


@dataclass(frozen=True, slots=True)
class Composed:
    subject: str
    text: str
    headers: dict = field(default_factory=dict)
    in_reply_to: str | None = None


@dataclass
class AckPolicy:
    """Called by the intake for each new ticket (`IntakeService.on_created`), in its transaction."""

    compose: Callable[..., Composed]  # (contact, ticket number, pin=status PIN) -> the mail's words
    directory: Callable[[], Directory]
    sender: str
    own_addresses: tuple[str, ...] = ()
    per_address_per_hour: int = 5
    global_per_hour: int = 500
    known_domains: tuple[str, ...] = ()
    directory_domains: bool = False
    known: list[Callable[[Session, str], bool]] = field(default_factory=list)  # e.g. organisations (issue 12)
    skipped: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.own = {a.lower() for a in (*self.own_addresses, self.sender)}
        self.domain = self.sender.rsplit("@", 1)[-1]
        self._domains_of: tuple[int, frozenset[str]] | None = None

    def on_created(self, session: Session, contact: Contact, result) -> None:
        to = (contact.sender.email or "").strip().lower()
        reason = self.skip_reason(session, contact, to)
        if reason:
            self.skipped[reason.split(" (")[0]] = self.skipped.get(reason.split(" (")[0], 0) + 1
            log.debug("no acknowledgement for %s: %s", result.ticket_number, reason)
            return
        try:
            words = self.compose(contact, result.ticket_number, pin=getattr(result, "pin", None))
        except Exception:  # noqa: BLE001 - ours: the ticket is taken in all the same, without its acknowledgement
            log.exception("acknowledgement of %s could not be written", result.ticket_number)
            return
        enqueue(
            session, kind=CONFIRMATION, to=to, subject=words.subject, text=words.text, ticket_id=result.ticket_id,
            in_reply_to=words.in_reply_to, headers=words.headers, domain=self.domain,
        )
        counts = _counts(session)
        for key in (to, None):
            if key in counts:
                counts[key] += 1

    # -- the rules, in order --------------------------------------------------------------------------------
    def skip_reason(self, session: Session, contact: Contact, to: str) -> str | None:
        if "@" not in to:
            return "no sender address"
        if to in self.own:
            return "sent by the desk itself"
        if to.split("@", 1)[0] in NO_ACK_LOCALPARTS:
            return "a no-reply address"
        if not (contact.sender.verified or self.is_known(session, to)):
            return "sender not authenticated and not known to the directory"
        since = utcnow() - timedelta(hours=1)
        # Counted over committed rows: gateways taking mail from one sender in the same instant may each let one
        # through (no lock across gateways here: batches locking addresses in different orders would deadlock).
        # Counted once per intake transaction and address, then kept up as this transaction enqueues: a batch
        # of 20 new tickets asked the database 40 times inside its write transaction.
        counts = _counts(session)
        if to not in counts:
            counts[to] = sent_recently(session, CONFIRMATION, since, to, cap=self.per_address_per_hour)
        if counts[to] >= self.per_address_per_hour:
            return f"rate limit ({self.per_address_per_hour} per hour to one address)"
        if None not in counts:
            counts[None] = sent_recently(session, CONFIRMATION, since, cap=self.global_per_hour)
        if counts[None] >= self.global_per_hour:
            return f"rate limit ({self.global_per_hour} per hour in all)"
        return None

    def is_known(self, session: Session, address: str) -> bool:
        directory = self.directory()
        if directory.user_by_email(address) is not None:
            return True
        domain = address.rsplit("@", 1)[-1]
        if domain in self.known_domains or (self.directory_domains and domain in self._directory_domains(directory)):
            return True
        return any(hook(session, address) for hook in self.known)

    def _directory_domains(self, directory: Directory) -> frozenset[str]:
        if self._domains_of is None or self._domains_of[0] != id(directory):
            domains = frozenset(u.email.lower().rsplit("@", 1)[-1] for u in directory.users if u.email and "@" in u.email)
            self._domains_of = (id(directory), domains)
        return self._domains_of[1]


def _counts(session: Session) -> dict:
    """Acknowledgements sent in the last hour as counted in this transaction: {address: n, None: all}."""
    transaction = session.get_transaction()
    held = session.info.get("ack_counts")
    if held is None or held[0] is not transaction:
        held = session.info["ack_counts"] = (transaction, {})
    return held[1]
