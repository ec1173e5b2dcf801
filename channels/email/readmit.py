"""The email channel reading a stored mail again (issue 13 §6): a rejected mail an operator readmits becomes the
same `Contact` the receiver would have made (`parse.to_contact`), for the core's `ticketing.readmit`.

Given to the core as a `ticketing.ports.ContactReader` by `gateway/app.py`; the core keeps the rejection's key.
"""

from __future__ import annotations

from datetime import datetime

from ticketing.contact import Contact
from ticketing.storage import BlobStore

from .auth import SenderCheck
from .parse import load, to_contact
from .process import checked


class MailReader:
    """`sender_check`: the receiver's DMARC alignment check, run again on the stored mail, so a readmitted mail
    from an authenticated sender is acknowledged as it would have been (no SMTP client now: SPF cannot be
    checked again; DKIM and a trusted host's Authentication-Results can)."""

    def __init__(self, blobs: BlobStore, max_attachment: int = 25 * 1024 * 1024, sender_check: SenderCheck | None = None):
        self.blobs, self.max_attachment, self.sender_check = blobs, max_attachment, sender_check

    def contact(self, raw: bytes, external_id: str, received_at: datetime) -> Contact:
        ref = self.blobs.put(raw)  # already stored (content-addressed): this only names it
        msg = load(raw)
        contact = to_contact(msg, raw, self.blobs, max_attachment=self.max_attachment, raw_ref=ref, received_at=received_at)
        return checked(contact, raw, msg, self.sender_check).replace(external_id=external_id)
