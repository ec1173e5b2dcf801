"""Contacts from files, for `helpdesk-gateway submit` and for tests: a JSON description of a contact of any
channel, or an `.eml` file for email.

JSON keys: `external_id` (default: the SHA-256 of the file, so submitting the same file twice is one
contact), `sender` {name, email, phone}, `subject`, `text`, `language`, `answers` {name|asset|anomaly:
{value, source, confidence}}, `urgent` (true | false), `thread` {message_id, in_reply_to, references, ticket_number}.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ticketing.contact import Answer, Channel, Contact, Sender, ThreadHints
from ticketing.storage import BlobStore


def contact_from_dict(data: dict[str, Any], channel: str, *, default_id: str, raw=None) -> Contact:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    sender = data.get("sender") or {}
    thread = data.get("thread") or {}
    answers = {}
    urgent = data.get("urgent")
    for key, a in (data.get("answers") or {}).items():
        if isinstance(a, str):
            a = {"value": a}
        if key == "urgent":  # older files gave the yes/no as an answer
            urgent = a["value"]
            continue
        answers[key] = Answer(str(a["value"]), a.get("source", "form" if channel == "web" else "transcript"), float(a.get("confidence", 1.0)))
    return Contact(
        channel=Channel(channel),
        external_id=str(data.get("external_id") or default_id),
        sender=Sender(sender.get("name"), sender.get("email"), sender.get("phone")),
        subject=data.get("subject"),
        text=data.get("text") or "",
        language=data.get("language"),
        thread=ThreadHints(
            message_id=thread.get("message_id"),
            in_reply_to=thread.get("in_reply_to"),
            references=tuple(thread.get("references") or ()),
            ticket_number=thread.get("ticket_number"),
        ),
        answers=answers,
        urgent=_yes_no(urgent),
        raw=raw,
    )


def _yes_no(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "y", "on", "si", "sì", "oui"}:
        return True
    if text in {"0", "false", "no", "n", "off", "non"}:
        return False
    raise ValueError(f"urgent: expected true or false, not {value!r}")


def contact_from_file(path: Path, channel: str, blobs: BlobStore) -> Contact:
    raw = Path(path).read_bytes()
    ref = blobs.put(raw)
    if channel == "email" and not Path(path).suffix.lower() == ".json":
        from channels.email.parse import parse_message

        return parse_message(raw, blobs, raw_ref=ref)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not a JSON contact: {e}") from None
    return contact_from_dict(data, channel, default_id=f"file:{hashlib.sha256(raw).hexdigest()}", raw=ref)
