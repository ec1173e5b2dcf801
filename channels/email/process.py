"""From raw RFC 5322 bytes to what the core is told: the steps the SMTP receiver and the IMAP fetcher share.

`prepare` is pure work on one message and runs anywhere (a worker process of the SMTP receiver): it stores
the raw bytes in the blob store first, parses them to a `Contact`, classifies them and, given the core's
extractor, extracts the ticket's fields. `submit` hands a prepared mail to the core: people's mail to the
core's batched committer (committed together with whatever else arrives meanwhile), the rest (bounces,
auto-replies, complaints) to `reject`, each with its reason; `commit` does it for several and waits. Once
committed, the caller answers "accepted"; on an error, "try again" (SMTP 451, IMAP: leave it in place).

A message our parser cannot read (a bug of ours, not the sender's) is not lost either: it becomes a rejection
with `fault="ours"` that points at the stored raw bytes, for an operator to look at.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from concurrent.futures import Future
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
    extraction: Any = None  # the contact's fields, when the worker that parsed it also extracted them


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


def checked(contact: Contact, raw: bytes, msg, sender_check: Callable[[bytes, Any, str | None], bool] | None) -> Contact:
    """The contact with `Sender.verified` set when `sender_check` vouches for its From: address (DMARC alignment)."""
    if sender_check is not None and contact.sender.email and sender_check(raw, msg, contact.sender.email):
        return contact.replace(sender=dataclasses.replace(contact.sender, verified=True))
    return contact


def prepare(
    raw: bytes,
    blobs: BlobStore | str | Path,
    *,
    envelope_from: str | None = None,
    max_attachment: int = 25 * 1024 * 1024,
    prefix: str = "HD",
    received_at: datetime | None = None,
    sender_check: Callable[[bytes, Any, str | None], bool] | None = None,
    extractor: Callable[[Contact], Any] | None = None,
) -> Prepared:
    """Store `raw` durably, then parse and classify it. Raises only when the raw bytes could not be stored.
    `sender_check` (channels/email/auth.py) says whether the From: address is authenticated; `extractor`
    (`IntakePort.extractor()`), when given, extracts the ticket's fields here rather than on the commit path."""
    store = _store(blobs)
    # First: whatever happens next, the bytes are on disk. Durable once the committer's group flush (one
    # syncfs for the batch, before its commit) returned, so before any 250 (`BlobStore.flush`).
    ref = store.put(raw, sync=False)
    received_at = received_at or datetime.now(timezone.utc)
    try:
        msg = load(raw)
        contact = checked(to_contact(msg, raw, store, max_attachment=max_attachment, raw_ref=ref, received_at=received_at),
                          raw, msg, sender_check)
        verdict = classify(msg, raw, envelope_from=envelope_from, prefix=prefix)
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
    extraction = None
    if verdict is None and extractor is not None:
        try:
            extraction = extractor(contact)
        except Exception:  # noqa: BLE001 - the committer extracts it again, and says why if it fails there too
            log.exception("email %s: extraction in the parse worker failed", ref.sha256)
    return Prepared(contact, verdict, extraction=extraction)


def submit(p: Prepared, intake: Any) -> Future:
    """Hand one prepared mail to the core without waiting: the future holds its `Handled` once committed.

    People's mail goes to the core's batched committer (`intake.deliver_future`, with the fields extracted by
    the parse worker when it did); the rest (bounces, auto-replies, complaints) is recorded with `reject`
    here, in the caller's thread: it is rare, and makes no ticket.
    """
    out: Future = Future()
    if p.verdict is not None:
        try:
            out.set_result(Handled(p, rejection_id=intake.reject(p.contact, p.verdict.reason, fault=p.fault, ticket_number=p.verdict.ticket_number)))
        except BaseException as e:  # noqa: BLE001 - to the waiter
            out.set_exception(e)
        return out
    inner = intake.deliver_future(p.contact, p.extraction)

    def done(f: Future) -> None:
        error = f.exception()
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(Handled(p, result=f.result()))

    inner.add_done_callback(done)
    return out


def commit(items: list[Prepared], intake: Any) -> list[Handled]:
    """Commit prepared mails (one batch for the core's committer) and wait; the answer is in the order given.

    Raises `CommitError` when anything could not be committed, with what was: each mail has its own outcome
    (the committer retries a failed batch one contact at a time), so one that trips the core costs only itself.
    """
    futures = [submit(p, intake) for p in items]
    handled: list[Handled | None] = []
    error: BaseException | None = None
    for f in futures:
        try:
            handled.append(f.result())
        except Exception as e:  # noqa: BLE001
            handled.append(None)
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
