"""From raw RFC 5322 bytes to what the core is told: the steps the SMTP receiver and the IMAP fetcher share.

`prepare` is pure work on one message and runs anywhere (a worker process of the SMTP receiver): it stores
the raw bytes in the blob store first, parses them to a `Contact` and classifies them. `commit` hands a batch
of prepared mails to the core: people's mail to `deliver_many` (one commit for the batch), the rest
(bounces, auto-replies, complaints) to `reject`, each with its reason. When `commit` returns, everything it
was given is committed; when it raises, the caller answers "try again" (SMTP 451, IMAP: leave it in place).

A message our parser cannot read (a bug of ours, not the sender's) is not lost either: it becomes a rejection
with `fault="ours"` that points at the stored raw bytes, for an operator to look at.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ticketing.contact import Channel, Contact, Sender
from ticketing.storage import BlobStore

from .classify import Verdict, classify
from .parse import header, load, to_contact

log = logging.getLogger("channels.email")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One received mail, stored and parsed: a contact for a ticket, or a contact with a verdict against it."""

    contact: Contact
    verdict: Verdict | None = None
    fault: str = "sender"  # who is to blame when there is a verdict: "sender", or "ours" (we could not parse it)


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of a prepared mail once committed."""

    prepared: Prepared
    result: Any = None  # the core's IntakeResult when the mail went to a ticket
    rejection_id: int | None = None

    @property
    def ticket_number(self) -> str | None:
        return self.result.ticket_number if self.result is not None else None


_STORES: dict[str, BlobStore] = {}


def _store(blobs: BlobStore | str | Path) -> BlobStore:
    if isinstance(blobs, BlobStore):
        return blobs
    key = str(blobs)
    if key not in _STORES:  # one per worker process: it only creates its directory
        _STORES[key] = BlobStore(Path(key))
    return _STORES[key]


def prepare(
    raw: bytes,
    blobs: BlobStore | str | Path,
    *,
    envelope_from: str | None = None,
    max_attachment: int = 25 * 1024 * 1024,
    prefix: str = "HD",
    received_at: datetime | None = None,
    sender_check: Callable[[bytes, Any, str | None], bool] | None = None,
) -> Prepared:
    """Store `raw` durably, then parse and classify it. Raises only when the raw bytes could not be stored.
    `sender_check` (channels/email/auth.py) says whether the From: address is authenticated."""
    store = _store(blobs)
    ref = store.put(raw)  # first: whatever happens next, the bytes are on disk
    received_at = received_at or datetime.now(timezone.utc)
    try:
        msg = load(raw)
        contact = to_contact(msg, raw, store, max_attachment=max_attachment, raw_ref=ref, received_at=received_at)
        if sender_check is not None and contact.sender.email and sender_check(raw, msg, contact.sender.email):
            contact = contact.replace(sender=dataclasses.replace(contact.sender, verified=True))
        return Prepared(contact, classify(msg, raw, envelope_from=envelope_from, prefix=prefix))
    except Exception as e:  # noqa: BLE001 - our parser failed: keep the mail where an operator sees it
        log.exception("email %s could not be parsed", ref.sha256)
        try:
            subject = header(load(raw), "Subject")
        except Exception:  # noqa: BLE001
            subject = None
        contact = Contact(
            channel=Channel.EMAIL,
            external_id=f"sha256:{hashlib.sha256(raw).hexdigest()}",
            received_at=received_at,
            sender=Sender(email=(envelope_from or None)),
            subject=subject,
            raw=ref,
        )
        return Prepared(contact, Verdict("unreadable", f"the gateway could not parse this mail: {type(e).__name__}: {e}"[:1000]), fault="ours")


def commit(
    items: list[Prepared],
    deliver_many: Callable[[list[Contact]], list],
    reject: Callable[..., int],
) -> list[Handled]:
    """Commit a batch; the answer is in the order given. Raises when anything could not be committed.

    The people's mail goes in with one `deliver_many` call; when that fails the batch is retried one mail at
    a time, so that one contact that trips the core costs only itself, and the first failure is raised.
    """
    handled: list[Handled | None] = [None] * len(items)
    tickets = [i for i, p in enumerate(items) if p.verdict is None]
    error: BaseException | None = None
    if tickets:
        try:
            results = deliver_many([items[i].contact for i in tickets])
            for i, r in zip(tickets, results):
                handled[i] = Handled(items[i], result=r)
        except Exception as e:  # noqa: BLE001
            if len(tickets) == 1:
                error = e
            else:
                for i in tickets:
                    try:
                        handled[i] = Handled(items[i], result=deliver_many([items[i].contact])[0])
                    except Exception as e1:  # noqa: BLE001
                        error = error or e1
    for i, p in enumerate(items):
        if p.verdict is not None:
            try:
                rid = reject(p.contact, p.verdict.reason, fault=p.fault, ticket_number=p.verdict.ticket_number)
                handled[i] = Handled(p, rejection_id=rid)
            except Exception as e:  # noqa: BLE001
                error = error or e
    if error is not None:
        raise CommitError(handled, error) from error
    return handled  # type: ignore[return-value]


class CommitError(Exception):
    """Part of a batch could not be committed: `handled[i]` is None for those, set for the rest."""

    def __init__(self, handled: list[Handled | None], cause: BaseException):
        super().__init__(f"{sum(h is None for h in handled)} of {len(handled)} mail(s) not committed: {type(cause).__name__}: {cause}")
        self.handled = handled
        self.cause = cause
