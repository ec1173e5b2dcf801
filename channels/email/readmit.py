"""The email channel reading a stored mail again (issue 13 §6): a rejected mail an operator readmits becomes the
same `Contact` the receiver would have made (`parse.to_contact`), for the core's `ticketing.readmit`.

Given to the core as a `ticketing.ports.ContactReader` by `gateway/app.py`; the core keeps the rejection's key.
"""

from __future__ import annotations

from datetime import datetime

from ticketing.contact import Contact
from ticketing.storage import BlobStore

from .parse import load, to_contact


class MailReader:
    def __init__(self, blobs: BlobStore, max_attachment: int = 25 * 1024 * 1024):
        self.blobs, self.max_attachment = blobs, max_attachment

    def contact(self, raw: bytes, external_id: str, received_at: datetime) -> Contact:
        ref = self.blobs.put(raw)  # already stored (content-addressed): this only names it
        contact = to_contact(load(raw), raw, self.blobs, max_attachment=self.max_attachment, raw_ref=ref, received_at=received_at)
        return contact.replace(external_id=external_id)
