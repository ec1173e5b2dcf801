"""The intake record: what every channel adapter produces and the core consumes.

A `Contact` is one incoming contact (an email, a call, a form post) normalised so that the core never needs
to know which protocol carried it. Adapters fill in what their protocol gives them and leave the rest empty;
the core decides what ticket it belongs to and what its fields are.

Binary content (attachments, call recordings, the raw input itself) does not travel inside the record: the
adapter stores it first in the content-addressed `BlobStore` and passes the returned `BlobRef`, so a contact
that reaches the core is already on disk.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    VOICE = "voice"
    WEB = "web"


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A file kept in the blob store, addressed by the SHA-256 of its bytes."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment or a recording that came with a contact."""

    filename: str
    content_type: str
    blob: BlobRef | None
    kind: str = "attachment"  # "attachment" | "recording"
    # Why the content is not kept (over the size limit, undecodable part); `blob` is None then.
    note: str | None = None
    # The desk's question a recording answers ("name", "asset", "anomaly", …), as the channel knows it: the
    # core never reads it from the file name.
    question: str | None = None
    # What the channel already heard in the recording, while the caller waited (the IVR's quick transcription);
    # when the caller confirmed what it was read as, no transcription job decodes it again.
    transcript: str | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the contact says it is from, as the protocol gave it (unverified)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    # The channel vouches that `email` is really the sender's (a mail that passed DMARC alignment): only such
    # senders, or ones the directory knows, are acknowledged (no backscatter to forged addresses).
    verified: bool = False


@dataclass(frozen=True, slots=True)
class ThreadHints:
    """What ties a contact to an earlier conversation."""

    message_id: str | None = None  # the contact's own RFC 5322 Message-ID, when it has one
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    ticket_number: str | None = None  # a ticket number the contact names explicitly (e.g. a subject tag)


@dataclass(frozen=True, slots=True)
class Answer:
    """A structured answer to one of the desk's questions (a form field, an IVR answer's transcript).

    Sources: "form" (typed by the user), "transcript" (speech to text), "caller_id" (the directory entry of the
    calling number, confirmed by the caller), "caller" (what the caller confirmed after hearing it read back:
    certain, confidence 1.0; for "asset" the value is the asset's tag).
    """

    value: str
    source: str
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Contact:
    """One incoming contact, produced by a channel adapter."""

    channel: Channel
    external_id: str  # unique within the channel: Message-ID (or a content hash), call id, form submission id
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    sender: Sender = field(default_factory=Sender)
    subject: str | None = None
    text: str = ""
    language: str | None = None  # "it" | "fr" | "en" when known
    attachments: tuple[Attachment, ...] = ()
    thread: ThreadHints = field(default_factory=ThreadHints)
    raw: BlobRef | None = None  # the stored raw input (the .eml, the form post, the call log)
    # Structured answers keyed by question: "name", "asset", "anomaly" (form fields, IVR answers).
    answers: dict[str, Answer] = field(default_factory=dict)
    # The answer to "is the whole office blocked?" (an IVR key, a form checkbox); None when not asked.
    urgent: bool | None = None
    # What the channel says about the contact, not the user's words ("phone call, 3 recorded answers"): shown
    # to operators as the message's text when there is no text, never mined by extraction.
    note: str | None = None

    def __post_init__(self) -> None:
        if not self.external_id or len(self.external_id) > 512:
            raise ValueError("a contact needs an external id of 1 to 512 characters")
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must carry a time zone")

    def replace(self, **changes) -> Contact:
        return dataclasses.replace(self, **changes)


_DIGITS = re.compile(r"\d+")


def normalise_phone(number: str | None, default_country: str = "39") -> str | None:
    """Reduce a phone number to digits with its country code, so that caller ids and directory entries compare.

    `+39 055 123 4567`, `0039 0551234567` and `055 1234567` all become `390551234567`. Numbers too short to be
    a phone number (extensions, junk) come back as their bare digits.
    """
    if not number:
        return None
    number = number.strip()
    if number.lower().startswith(("sip:", "tel:")):
        number = number.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    digits = "".join(_DIGITS.findall(number))
    if not digits:
        return None
    if number.lstrip().startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    if len(digits) >= 6:
        return default_country + digits
    return digits
