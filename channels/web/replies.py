"""Operators' replies to the reporter by email (the desk page and `POST /api/v1/tickets/{number}/replies`).

The reply is queued in the durable outbox (`ctx.shared.mail.send_reply`, the email channel's sender) and recorded
on the ticket at once as an outbound message, so the user's answer threads back; the sender delivers it through
the relay, retrying while the relay is away, and the ticket's history says when it went ("mail_sent") or why
not yet ("mail_waiting", "mail_failed" with the relay's words). It is addressed to the reporter's email (the
ticket's `reporter_email` field, else the first inbound message's sender) with `In-Reply-To` the Message-ID of
their latest mail (RFC 5322 §3.6.4), so it lands in the same conversation in their client.
"""

from __future__ import annotations

from ticketing.desk import Desk

from .i18n import Texts


class ReplyError(Exception):
    """A reply that cannot go; `status` is the HTTP answer, the message says why to the operator."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def send_reply(ctx, desk: Desk, number: str, text: str) -> tuple[str, str]:
    """Queue the reply (blocking: run it in a thread); returns (its Message-ID, the address it goes to).
    Raises `ticketing.desk.TicketNotFound` or `ReplyError`."""
    target = desk.reply_target(number)
    text = (text or "").strip()
    if not text:
        raise ReplyError(422, "the reply is empty: write its text")
    mail = getattr(getattr(ctx, "shared", None), "mail", None)
    if mail is None:
        raise ReplyError(503, "the email channel is off (or its acknowledgements are): replies by email cannot be sent")
    if not target.to:
        raise ReplyError(409, "no email address is known for the reporter of this ticket")
    from channels.email.ack import MailError  # the email channel is loaded: it is the one that offered `mail`

    if target.subject:
        subject = target.subject if target.subject.lower().startswith("re:") else f"Re: {target.subject}"
    else:
        subject = Texts(target.language or "it")("reply_subject")
    try:
        message_id = mail.send_reply(
            ticket_id=target.ticket_id, ticket_number=target.number, to=target.to, subject=subject, text=text,
            in_reply_to=target.in_reply_to,
        )
    except MailError as e:
        raise ReplyError(502, str(e)) from None
    return message_id, target.to
