"""MIME (RFC 5322, RFC 2045–2049) to the intake record.

Parsing never raises on what a sender wrote: a header or part that cannot be decoded is noted and the rest
kept; a wrong charset degrades to replacement characters. Text comes from text/plain when there is one, from
HTML converted to readable text otherwise. Attachments are stored in the blob store, except those over the
size limit, which are noted on the contact instead.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import html
import re
from datetime import datetime, timezone
from email.message import EmailMessage

from ticketing.contact import Attachment, BlobRef, Channel, Contact, Sender, ThreadHints
from ticketing.storage import BlobStore

_MSGID = re.compile(r"<[^<>\s]+>")


def _header(msg: EmailMessage, name: str) -> str | None:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: fall back to its raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if value is None:
        return None
    return re.sub(r"\s+", " ", str(value)).strip() or None


def _msgids(value: str | None) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value or ""))


def html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h\d>", "\n", markup)
    markup = re.sub(r"(?s)<[^>]+>", " ", markup)
    text = html.unescape(markup)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        return content
    except Exception:
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")


def parse_message(
    raw: bytes,
    blobs: BlobStore | None = None,
    *,
    max_attachment: int = 25 * 1024 * 1024,
    raw_ref: BlobRef | None = None,
    received_at: datetime | None = None,
) -> Contact:
    msg: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[assignment]
    from_name, from_addr = email.utils.parseaddr(_header(msg, "From") or "")
    message_id = (_msgids(_header(msg, "Message-ID")) or (None,))[0]
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if ctype in ("text/plain", "text/html") and not filename and disposition != "attachment":
            (plain if ctype == "text/plain" else htmls).append(_part_text(part))
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception as e:  # noqa: BLE001 - the sender's broken part: note it, keep the rest
            attachments.append(Attachment(filename or "part", ctype, None, note=f"undecodable part: {e}"))
            continue
        name = filename or f"part.{ctype.split('/')[-1]}"
        if len(data) > max_attachment:
            attachments.append(Attachment(name, ctype, None, note=f"{len(data)} bytes, over the {max_attachment}-byte limit"))
        else:
            attachments.append(Attachment(name, ctype, blobs.put(data) if blobs else BlobRef(hashlib.sha256(data).hexdigest(), len(data))))
    text = "\n\n".join(p.strip() for p in plain if p.strip()) or html_to_text("\n".join(htmls))
    if message_id is None:
        # No Message-ID: the same mail delivered twice must still dedupe, so key it by what makes it itself.
        basis = "\0".join([from_addr.lower(), _header(msg, "Date") or "", _header(msg, "Subject") or "", text])
        external_id = "sha256:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()
    else:
        external_id = message_id
    return Contact(
        channel=Channel.EMAIL,
        external_id=external_id[:512],
        received_at=received_at or datetime.now(timezone.utc),
        sender=Sender(name=from_name or None, email=from_addr.lower() or None),
        subject=_header(msg, "Subject"),
        text=text,
        attachments=tuple(attachments),
        thread=ThreadHints(
            message_id=message_id,
            in_reply_to=(_msgids(_header(msg, "In-Reply-To")) or (None,))[0],
            references=_msgids(_header(msg, "References")),
        ),
        raw=raw_ref,
    )
