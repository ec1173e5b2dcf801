"""Mail that must never open a ticket: bounces, feedback-loop complaints, auto-replies, read receipts.

Each rule is a small named function over the parsed message and its envelope, declared in `RULES` in the
order they are tried; the first that matches gives the `Verdict`. What they look at:

- feedback-loop complaints: `multipart/report; report-type=feedback-report` or a `message/feedback-report`
  part (RFC 5965 ARF);
- bounces: `multipart/report; report-type=delivery-status` or a `message/delivery-status` part (RFC 3464),
  the null reverse-path (`MAIL FROM:<>`, `Return-Path: <>`, RFC 5321 §4.5.5), a MAILER-DAEMON or postmaster
  sender, and the subjects mail servers give their non-standard bounces;
- read receipts: `report-type=disposition-notification` (RFC 8098);
- auto-replies and bulk mail: `Auto-Submitted` other than `no` (RFC 3834), `X-Autoreply`/`X-Autorespond`,
  `Precedence: bulk/junk/list`, Microsoft's `X-Auto-Response-Suppress`, and out-of-office subjects.

A bounce of one of our acknowledgements names its ticket (the `[HD-YYYY-NNNNNN]` tag of the returned
subject), so the verdict carries that number and the ticket gets a "delivery problem" event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Callable

from ticketing.numbering import find_numbers

from .parse import header


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "complaint" | "bounce" | "receipt" | "auto_reply"
    reason: str  # one line for the operator: what was seen
    ticket_number: str | None = None


@dataclass(frozen=True, slots=True)
class Mail:
    """What the rules look at: the parsed message and the SMTP envelope's reverse-path when there was one."""

    msg: Message
    envelope_from: str | None = None  # "" for the null reverse-path <>; None when unknown (IMAP)


Rule = Callable[[Mail], "str | None"]

_DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mail.daemon"})
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:able|ed)|delivery (?:status notification|failure|failed|has failed|notification)|"
    r"returned mail|mail delivery (?:failed|failure|system)|failure notice|non[- ]?deliver|"
    r"mancata consegna|messaggio non recapitato|impossibile recapitare|delayed mail)",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto:|automatic reply|auto[- ]?reply|autoreply|out of (?:the )?office|risposta automatica|"
    r"fuori (?:sede|ufficio)|assente dall'ufficio|abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica|"
    r"vacation reply|i am (?:currently )?out of)",
    re.I,
)


def _ctype(m: Message) -> str:
    try:
        return m.get_content_type()
    except Exception:  # noqa: BLE001
        return ""


def _report_type(m: Message) -> str:
    try:
        return str(m.get_param("report-type", "") or "").lower()
    except Exception:  # noqa: BLE001
        return ""


def _part_types(m: Message, limit: int = 60) -> set[str]:
    """Content types of the parts near the top of the tree (a report's parts are its direct children)."""
    seen: set[str] = set()
    try:
        for n, part in enumerate(m.walk()):
            if n >= limit:
                break
            seen.add(_ctype(part))
    except Exception:  # noqa: BLE001 - a tree too broken to walk: judge on the headers alone
        pass
    return seen


def _null_path(value: str | None) -> bool:
    return value is not None and value.strip().strip("<>").strip() == ""


# -- the rules ------------------------------------------------------------------------------------------------
def feedback_report(mail: Mail) -> str | None:
    m = mail.msg
    if _ctype(m) == "multipart/report" and _report_type(m) == "feedback-report":
        return "feedback-loop complaint (multipart/report; report-type=feedback-report)"
    if "message/feedback-report" in _part_types(m) or header(m, "Feedback-Type"):
        return "feedback-loop complaint (message/feedback-report)"
    return None


def delivery_report(mail: Mail) -> str | None:
    m = mail.msg
    if _ctype(m) == "multipart/report" and _report_type(m) == "delivery-status":
        return "delivery status notification (multipart/report; report-type=delivery-status)"
    if "message/delivery-status" in _part_types(m):
        return "delivery status notification (message/delivery-status)"
    return None


def null_sender(mail: Mail) -> str | None:
    if _null_path(mail.envelope_from):
        return "null reverse-path (MAIL FROM:<>)"
    for name in ("Return-Path", "X-Envelope-From"):
        if _null_path(_raw_header(mail.msg, name)):
            return f"null reverse-path ({name}: <>)"
    return None


def daemon_sender(mail: Mail) -> str | None:
    for name in ("From", "Sender"):
        value = (header(mail.msg, name) or "").lower()
        for local in re.findall(r"([\w.+-]+)@", value) or ([value.strip()] if value.strip() else []):
            if local in _DAEMONS:
                return f"sent by {local} ({name}: header)"
    return None


def bounce_subject(mail: Mail) -> str | None:
    subject = header(mail.msg, "Subject") or ""
    if _BOUNCE_SUBJECT.search(subject):
        return f"bounce subject {subject[:80]!r}"
    return None


def read_receipt(mail: Mail) -> str | None:
    m = mail.msg
    if (_ctype(m) == "multipart/report" and _report_type(m) == "disposition-notification") or (
        "message/disposition-notification" in _part_types(m)
    ):
        return "read receipt (message/disposition-notification)"
    return None


def auto_submitted(mail: Mail) -> str | None:
    m = mail.msg
    value = (header(m, "Auto-Submitted") or "").lower()
    if value and not value.startswith("no"):
        return f"Auto-Submitted: {value[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autogenerated", "X-Auto-Reply"):
        v = header(m, name)
        if v is not None and v.lower() not in ("no", "false", "0"):
            return f"{name}: {v[:40]}"
    precedence = (header(m, "Precedence") or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    suppress = (header(m, "X-Auto-Response-Suppress") or "").lower()
    if any(t in suppress for t in ("all", "oof", "autoreply", "dr", "rn")):
        return f"X-Auto-Response-Suppress: {suppress[:40]} (an automatic message)"
    return None


def auto_subject(mail: Mail) -> str | None:
    subject = header(mail.msg, "Subject") or ""
    if _AUTO_SUBJECT.search(subject):
        return f"out-of-office subject {subject[:80]!r}"
    return None


# (kind, rule), tried in order: the most specific evidence first.
RULES: tuple[tuple[str, Rule], ...] = (
    ("complaint", feedback_report),
    ("bounce", delivery_report),
    ("receipt", read_receipt),
    ("bounce", daemon_sender),
    ("bounce", bounce_subject),
    ("auto_reply", auto_submitted),
    ("bounce", null_sender),
    ("auto_reply", auto_subject),
)


def classify(msg: Message, raw: bytes = b"", *, envelope_from: str | None = None, prefix: str = "HD") -> Verdict | None:
    """The verdict for a message that must not open a ticket, or None for a mail from a person."""
    mail = Mail(msg, envelope_from)
    for kind, rule in RULES:
        try:
            reason = rule(mail)
        except Exception:  # noqa: BLE001 - a rule that trips on a broken header has no evidence
            reason = None
        if reason:
            return Verdict(kind, f"{kind}: {reason}", _ticket_number(msg, raw, prefix) if kind != "auto_reply" else _subject_number(msg, prefix))
    return None


def _raw_header(msg: Message, name: str) -> str | None:
    try:
        return next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    except Exception:  # noqa: BLE001
        return None


def _subject_number(msg: Message, prefix: str) -> str | None:
    found = find_numbers(header(msg, "Subject") or "", prefix)
    return found[0] if found else None


def _ticket_number(msg: Message, raw: bytes, prefix: str) -> str | None:
    """The ticket a bounce or complaint concerns: a tag in its subject, else one in the returned message."""
    number = _subject_number(msg, prefix)
    if number is None and raw:
        # The returned message is inside the report (headers or the whole message): its subject has the tag.
        tagged = re.findall(rf"\[({re.escape(prefix)}-\d{{4}}-\d{{6,12}})\]", raw[:500_000].decode("latin-1"))
        number = tagged[0] if tagged else None
    return number
