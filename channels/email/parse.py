"""MIME (RFC 5322, RFC 2045–2049) to the intake record.

Parsing never raises on what a sender wrote: a header or part that cannot be decoded is noted and the rest
kept; a missing or wrong charset degrades to replacement characters (RFC 2047 encoded words are decoded by
`email.header`, RFC 2231 parameters by `email.message`, each word in its own charset). Text comes from
text/plain when a multipart/alternative offers it, from HTML converted to readable text otherwise; a forwarded
message (`message/rfc822`) contributes its headers and text. Every other leaf part (images, TNEF
`winmail.dat`, delivery reports) is an attachment, stored in the blob store unless it is over the size
limit, in which case it is noted on the contact instead of kept.

The contact's external id, what the core dedups on (`intake_key`), is the Message-ID together with a
fingerprint of the content: a hash of the sender, date, subject and body, the parts no relay or mail store
rewrites. A copy of a mail (an SMTP retry after a lost 250, an IMAP re-fetch after a crash before the MOVE,
the folder read again after a UIDVALIDITY change, the same mail delivered twice) has both the same, so it is
one contact; two different mails that share a Message-ID (broken mailers: printers, scanners, monitoring
tools) differ in the fingerprint, so the second is not taken for a copy of the first and lost. A mail
without Message-ID is keyed by the fingerprint alone.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.utils
import email.parser
import hashlib
import html
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message

from ticketing.contact import Attachment, BlobRef, Channel, Contact, Sender, ThreadHints
from ticketing.storage import BlobStore

_MSGID = re.compile(r"<[^<>\s]+>")
# C0 controls but tab and newline, and DEL: PostgreSQL refuses NUL in text, and none belong in a ticket.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_DEPTH = 12  # nesting of multiparts and enclosed messages kept (a torture test nests endlessly)
MAX_PARTS = 500
MAX_TEXT = 200_000  # characters of text kept on the contact; the raw message is stored whole anyway


def sanitize(value: str | None) -> str | None:
    """A string safe to store: lone surrogates (undecodable header bytes) and control characters replaced."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "replace")
        value = decode_bytes(raw, None)
    return _CONTROLS.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text of a part: the declared charset when it is known and fits, else UTF-8, else Windows-1252 with
    replacement characters. Never raises."""
    codec = None
    if charset:
        try:
            codec = codecs.lookup(charset.strip().strip('"').lower()).name
        except (LookupError, ValueError):
            codec = None
    if codec:
        try:
            return data.decode(codec)
        except Exception:  # noqa: BLE001 - a wrong charset (or a non-text codec) is the sender's: degrade
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec:
        try:
            return data.decode(codec, "replace")
        except Exception:  # noqa: BLE001
            pass
    return data.decode("cp1252", "replace")


def header(msg: Message, name: str) -> str | None:
    """One header's value, RFC 2047 encoded words decoded, on one line; None when absent or empty."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    value = sanitize(re.sub(r"\s+", " ", decode_words(raw))).strip()
    return value or None


def raw_header(msg: Message, name: str) -> str | None:
    """A header's text as it came (8-bit bytes as surrogates), folding kept; the first if it repeats."""
    name = name.lower()
    for k, v in msg.raw_items():
        if k.lower() == name:
            return str(v)
    return None


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded, each in its own charset (an unknown one degrades, never raises)."""
    if "=?" not in value:
        return value
    try:
        parts = email.header.decode_header(re.sub(r"\r?\n(?=[ \t])", "", value))
    except Exception:  # noqa: BLE001 - a malformed encoded word: keep the text as written
        return value
    out = []
    for data, charset in parts:
        if isinstance(data, str):
            out.append(data)
        elif charset is None or charset == "unknown-8bit":
            out.append(data.decode("raw-unicode-escape", "replace") if charset is None else decode_bytes(data, None))
        else:
            out.append(decode_bytes(data, charset))
    return "".join(out)


def msgids(value: str | None) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value or ""))


def address(msg: Message, name: str) -> tuple[str | None, str | None]:
    """(display name, lower-case address) of the first mailbox of an address header."""
    raw = raw_header(msg, name)
    if raw is None:
        return None, None
    try:
        pairs = email.utils.getaddresses([re.sub(r"\s+", " ", raw)])
    except Exception:  # noqa: BLE001
        pairs = []
    display, addr = next(((n, a) for n, a in pairs if "@" in a), pairs[0] if pairs else ("", ""))
    display = sanitize(decode_words(display)).strip().strip('"').strip() if display else ""
    return display or None, _plausible(addr)


def _plausible(addr: str | None) -> str | None:
    addr = (sanitize(addr) or "").strip().strip("<>").lower()
    return addr if "@" in addr and " " not in addr and len(addr) <= 320 else None


def html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?is)<!--.*?-->", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</li\s*>|</tr\s*>|</h\d\s*>|<blockquote[^>]*>", "\n", markup)
    markup = re.sub(r"(?s)<[^>]+>", " ", markup)
    text = html.unescape(markup)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load(raw: bytes) -> Message:
    """The parsed message. Policy `compat32`: headers stay text until asked for, and are decoded here (the
    `default` policy parses every header it is asked for into objects, which cost three quarters of the
    time per mail); like `default`, it records defects instead of raising.

    The stdlib parser recurses once per MIME level: a mail nested deeper than Python's recursion limit (a
    thousand levels) is parsed again with a limit raised to fit, when its boundaries are few enough for the
    C stack; beyond that only its headers are read, with a note as its body. Either way it makes a ticket
    (its text may sit below what `to_contact` reads, MAX_DEPTH), never an unreadable mail."""
    try:
        return email.message_from_bytes(raw)
    except RecursionError:
        pass
    boundaries = len(_BOUNDARY.findall(raw))
    if boundaries <= MAX_PARSE_LEVELS:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, 10 * boundaries + 1000))
        try:
            return email.message_from_bytes(raw)
        except RecursionError:
            pass
        finally:
            sys.setrecursionlimit(previous)
    msg = email.parser.BytesParser().parsebytes(raw, headersonly=True)
    msg.set_payload(f"[gateway: MIME structure nested beyond {MAX_PARSE_LEVELS} levels: body not read; the mail is stored whole]")
    for name in ("Content-Type", "Content-Transfer-Encoding"):
        del msg[name]
    msg["Content-Type"] = "text/plain; charset=utf-8"
    return msg


MAX_PARSE_LEVELS = 2000  # MIME levels parsed with a raised recursion limit (3,000 measured safe on an 8 MiB stack)
_BOUNDARY = re.compile(rb"boundary\s*=", re.I)


@dataclass
class _Walk:
    """What a walk over the MIME tree collects."""

    blobs: BlobStore | None
    max_attachment: int
    texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    parts: int = 0
    notes: list[str] = field(default_factory=list)


def _ctype(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "application/octet-stream"


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return None
    name = sanitize(decode_words(name)) if isinstance(name, str) else None
    if not name:
        return None
    return name.replace("/", "_").replace("\\", "_").strip()[:255] or None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


def _payload_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if data is None:  # a message/* or multipart leaf we could not descend into: keep its raw text
        payload = part.get_payload()
        if isinstance(payload, list):
            data = b"".join(p.as_bytes() if isinstance(p, Message) else b"" for p in payload)
        elif isinstance(payload, str):
            data = payload.encode("utf-8", "surrogateescape")
        else:
            data = b""
    return data


def _part_text(part: Message) -> str:
    data = _payload_bytes(part)
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    text = sanitize(decode_bytes(data, charset)) or ""
    return html_to_text(text) if _ctype(part) == "text/html" else text


def _is_body_text(part: Message) -> bool:
    return _ctype(part) in ("text/plain", "text/html") and _disposition(part) != "attachment" and not _filename(part)


def _walk(part: Message, w: _Walk, depth: int = 0) -> None:
    w.parts += 1
    if depth > MAX_DEPTH or w.parts > MAX_PARTS:
        if "nesting" not in " ".join(w.notes):
            w.notes.append(f"MIME nesting beyond {MAX_DEPTH} levels or {MAX_PARTS} parts not read")
        return
    ctype = _ctype(part)
    try:
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if ctype == "multipart/alternative" and children:
                # The richest version we can read as text: plain first (what the user typed), then HTML.
                pick = next((c for c in children if _ctype(c) == "text/plain"), None) or next(
                    (c for c in children if _ctype(c) == "text/html"), None
                )
                chosen = [pick] if pick is not None else children[-1:]
                others = [c for c in children if c not in chosen and not _ctype(c).startswith("text/")]
                for child in chosen + others:
                    _walk(child, w, depth + 1)
                return
            if ctype in ("message/rfc822", "message/global") and children:
                w.texts.append(_forwarded_header(children[0]))
                _walk(children[0], w, depth + 1)
                return
            if ctype.startswith("message/"):  # delivery-status and the like: header blocks, kept as a file
                _attach(part, ctype, w)
                return
            for child in children:
                _walk(child, w, depth + 1)
            return
        if _is_body_text(part):
            text = _part_text(part).strip()
            if text:
                w.texts.append(text)
            return
        _attach(part, ctype, w)
    except RecursionError:
        w.notes.append("MIME structure too deep to read")
    except Exception as e:  # noqa: BLE001 - the sender's broken part: note it, keep the rest
        w.attachments.append(Attachment(_filename(part) or "part", ctype[:127], None, note=f"undecodable part: {type(e).__name__}: {e}"[:500]))


def _forwarded_header(inner: Message) -> str:
    lines = ["---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject"):
        value = header(inner, name)
        if value:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _attach(part: Message, ctype: str, w: _Walk) -> None:
    data = _payload_bytes(part)
    ext = ctype.split("/")[-1].split("+")[0][:20] or "bin"
    name = _filename(part) or f"part-{len(w.attachments) + 1}.{ext}"
    if len(data) > w.max_attachment:
        note = f"{len(data)} bytes, over the {w.max_attachment}-byte limit: not kept (the raw message has it)"
        w.attachments.append(Attachment(name, ctype[:127], None, note=note))
        return
    ref = w.blobs.put(data, sync=False) if w.blobs is not None else BlobRef(hashlib.sha256(data).hexdigest(), len(data))
    defects = sorted({type(d).__name__ for d in getattr(part, "defects", ()) if "Base64" in type(d).__name__ or "Encod" in type(d).__name__})
    note = f"decoded despite defects: {', '.join(defects)}" if defects else None
    w.attachments.append(Attachment(name, ctype[:127], ref, note=note))


def _body_bytes(raw: bytes) -> bytes:
    """The body of a raw message (after the first empty line), line endings and trailing space normalised."""
    cut = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    body = raw[min(cut):] if cut else b""
    return body.replace(b"\r\n", b"\n").strip()


def content_key(msg: Message, raw: bytes, sender: str | None) -> str:
    """The fingerprint of a mail: the hash of its sender, date, subject and body (see `intake_key`)."""
    h = hashlib.sha256()
    for piece in (sender or "", header(msg, "Date") or "", header(msg, "Subject") or ""):
        h.update(piece.encode("utf-8", "replace") + b"\0")
    h.update(_body_bytes(raw))
    return "sha256:" + h.hexdigest()


def intake_key(message_id: str | None, fingerprint: str) -> str:
    """The external id of a mail: `<message-id>#<16 hex digits of the fingerprint>`, or the fingerprint."""
    if message_id is None:
        return fingerprint
    key = f"{message_id}#{fingerprint.removeprefix('sha256:')[:16]}"
    return key if len(key) <= 512 else "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def to_contact(
    msg: Message,
    raw: bytes,
    blobs: BlobStore | None = None,
    *,
    max_attachment: int = 25 * 1024 * 1024,
    raw_ref: BlobRef | None = None,
    received_at: datetime | None = None,
) -> Contact:
    """The intake record of a parsed message; attachments go to `blobs` (hashed only when it is None)."""
    from_name, from_addr = address(msg, "From")
    if from_addr is None:
        # No usable From: the Sender header, then Reply-To, say who wrote (or at least who is answered).
        for alt in ("Sender", "Reply-To"):
            name, from_addr = address(msg, alt)
            if from_addr:
                from_name = from_name or name
                break
    message_id = (msgids(header(msg, "Message-ID")) or (None,))[0]
    if message_id is not None and len(message_id) > 500:
        message_id = None
    w = _Walk(blobs, max_attachment)
    try:
        _walk(msg, w)
    except RecursionError:
        w.notes.append("MIME structure too deep to read")
    text = "\n\n".join(t for t in w.texts if t.strip())
    if w.notes:
        text = (text + "\n\n" if text else "") + "\n".join(f"[gateway: {n}]" for n in w.notes)
    external_id = intake_key(message_id, content_key(msg, raw, from_addr))
    return Contact(
        channel=Channel.EMAIL,
        external_id=external_id,
        received_at=received_at or datetime.now(timezone.utc),
        sender=Sender(name=from_name, email=from_addr),
        subject=header(msg, "Subject"),
        text=text[:MAX_TEXT],
        attachments=tuple(w.attachments),
        thread=ThreadHints(
            message_id=message_id,
            in_reply_to=(msgids(header(msg, "In-Reply-To")) or (None,))[0],
            references=tuple(r for r in msgids(header(msg, "References")) if len(r) <= 500)[-50:],
        ),
        raw=raw_ref,
    )


def parse_message(
    raw: bytes,
    blobs: BlobStore | None = None,
    *,
    max_attachment: int = 25 * 1024 * 1024,
    raw_ref: BlobRef | None = None,
    received_at: datetime | None = None,
) -> Contact:
    """Parse raw RFC 5322 bytes into a `Contact` (see `to_contact`)."""
    return to_contact(load(raw), raw, blobs, max_attachment=max_attachment, raw_ref=raw_ref, received_at=received_at)
