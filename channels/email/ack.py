"""Acknowledgements of new email tickets: an automatic reply (RFC 3834) through the configured relay.

The sender of a mail that opened a ticket is told its number: `[HD-YYYY-NNNNNN]` in the subject (so a reply
threads back by subject tag), `In-Reply-To`/`References` to their mail, `Auto-Submitted: auto-replied` and
`X-Auto-Response-Suppress: All` (so well-behaved responders do not answer it), in Italian unless the mail was
in English. The acknowledgement's Message-ID is recorded with the ticket (`record_outbound`), so a reply to it
from anyone — a colleague in CC included — is appended to the same ticket.

Acknowledging never blocks or fails intake: `acknowledge()` only puts work on a queue that one thread
drains; a relay that is down costs a log line. Auto-replies are never acknowledged (they are rejected before
this), nor is mail from the desk's own addresses, and each address gets at most `per_address_per_hour`
acknowledgements, so two auto-responders cannot loop through us.
"""

from __future__ import annotations

import collections
import logging
import queue
import smtplib
import threading
import time
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Callable

from ticketing.text import guess_language

from .process import Handled
from .settings import AckSettings

log = logging.getLogger("channels.email.ack")

TEXTS = {
    "it": (
        "[{number}] Abbiamo ricevuto la sua richiesta",
        "Gentile utente,\n\nabbiamo ricevuto la sua segnalazione{about} e l'abbiamo registrata con il numero "
        "{number}.\nUn operatore la prenderà in carico al più presto.\n\nPer aggiungere informazioni risponda a "
        "questo messaggio lasciando il numero nell'oggetto.\n\n-- \n{desk}\n(messaggio automatico)\n",
    ),
    "en": (
        "[{number}] We have received your request",
        "Hello,\n\nwe have received your request{about} and registered it as {number}.\nAn operator will take "
        "it up as soon as possible.\n\nTo add information, reply to this message keeping the number in the "
        "subject.\n\n-- \n{desk}\n(automatic message)\n",
    ),
    "fr": (
        "[{number}] Nous avons reçu votre demande",
        "Bonjour,\n\nnous avons reçu votre signalement{about} et l'avons enregistré sous le numéro {number}.\n"
        "Un opérateur le prendra en charge dès que possible.\n\nPour ajouter des informations, répondez à ce "
        "message en gardant le numéro dans l'objet.\n\n-- \n{desk}\n(message automatique)\n",
    ),
}
_NO_ACK_LOCALPARTS = ("noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster", "bounce")


class MailError(RuntimeError):
    """Outgoing mail the relay did not take; the message says why, for the operator who sent it."""


class RateLimit:
    """At most `limit` events per key within `window` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            q = self._seen.setdefault(key, collections.deque())
            while q and now - q[0] >= self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            if len(self._seen) > 100_000:  # forget idle addresses
                for k in [k for k, v in self._seen.items() if not v or now - v[-1] >= self.window]:
                    del self._seen[k]
            return True


def build_ack(settings: AckSettings, *, number: str, to: str, language: str, original_subject: str | None, in_reply_to: str | None) -> EmailMessage:
    subject_t, body_t = TEXTS.get(language, TEXTS["it"])
    about = f' "{original_subject[:120]}"' if original_subject else ""
    msg = EmailMessage()
    msg["From"] = formataddr((settings.sender_name, settings.sender))
    msg["To"] = to
    msg["Subject"] = subject_t.format(number=number)
    msg["Date"] = format_datetime(time_now())
    msg["Message-ID"] = make_msgid(idstring=number, domain=settings.sender.rsplit("@", 1)[-1])
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Content-Language"] = language
    msg.set_content(body_t.format(number=number, about=about, desk=settings.sender_name))
    return msg


def time_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


class AckSender:
    """Sends acknowledgements from a background thread; `acknowledge(handled)` never blocks nor raises."""

    name = "email-ack"

    def __init__(
        self,
        settings: AckSettings,
        *,
        record_outbound: Callable[..., int] | None = None,
        own_addresses: tuple[str, ...] = (),
        blobs=None,
    ):
        self.settings = settings
        self.record_outbound = record_outbound
        self.own = {a.lower() for a in (*own_addresses, settings.sender)}
        self.limit = RateLimit(settings.per_address_per_hour)
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.skipped: collections.Counter = collections.Counter()

    # -- called after a commit ------------------------------------------------------------------------------
    def acknowledge(self, handled: list[Handled]) -> None:
        for h in handled:
            if h.result is None or str(h.result.outcome) != "created":
                continue  # a rejection, a duplicate, or a message appended to a ticket: no acknowledgement
            try:
                self._queue.put_nowait(h)
            except queue.Full:
                self.skipped["queue full"] += 1
                log.warning("acknowledgement queue full: %s not acknowledged", h.result.ticket_number)

    def acknowledge_contact(self, contact, result) -> None:
        """Acknowledge a contact that came another way (the web form) when it gave an email address."""
        from .process import Prepared

        self.acknowledge([Handled(Prepared(contact), result)])

    def send_reply(
        self, *, ticket_id: int, ticket_number: str, to: str, subject: str, text: str, in_reply_to: str | None = None
    ) -> str:
        """Send an operator's reply now (blocking); returns its Message-ID. Raises `MailError` with a reason
        a person can read when the relay refuses it or cannot be reached. The reply is recorded on the ticket,
        so the user's answer threads back."""
        s = self.settings
        to = (to or "").strip()
        if "@" not in to:
            raise MailError(f"not an email address: {to!r}")
        msg = EmailMessage()
        msg["From"] = formataddr((s.sender_name, s.sender))
        msg["To"] = to
        tag = f"[{ticket_number}]"
        msg["Subject"] = subject if tag in subject else f"{tag} {subject}".strip()
        msg["Date"] = format_datetime(time_now())
        msg["Message-ID"] = make_msgid(idstring=ticket_number, domain=s.sender.rsplit("@", 1)[-1])
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
            msg["References"] = in_reply_to
        msg.set_content(text)
        try:
            with smtplib.SMTP(s.relay_host, s.relay_port, timeout=s.timeout_seconds) as smtp:
                smtp.send_message(msg, from_addr=s.sender, to_addrs=[to])
        except (OSError, smtplib.SMTPException) as e:
            raise MailError(f"the mail relay {s.relay_host}:{s.relay_port} did not take the reply: {e}") from e
        self.sent += 1
        if self.record_outbound is not None:
            self.record_outbound(ticket_id, "email", msg["Message-ID"], to=to, subject=str(msg["Subject"]), text=text)
        return str(msg["Message-ID"])

    # -- the thread -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.start_thread()

    def start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="email-ack", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.stop_thread)

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            h = self._queue.get()
            if h is None:
                return
            try:
                self.send_one(h)
            except Exception:  # noqa: BLE001 - an acknowledgement that fails is logged, never retried in a loop
                log.exception("acknowledgement for %s failed", h.result.ticket_number)

    def send_one(self, h: Handled) -> bool:
        contact = h.prepared.contact
        to = (contact.sender.email or "").lower()
        reason = self._skip_reason(to)
        if reason:
            self.skipped[reason] += 1
            log.info("no acknowledgement for %s: %s", h.result.ticket_number, reason)
            return False
        language = contact.language or guess_language(f"{contact.subject or ''}\n{contact.text[:4000]}")
        msg = build_ack(
            self.settings,
            number=h.result.ticket_number,
            to=to,
            language="en" if language == "en" else "it",
            original_subject=contact.subject,
            in_reply_to=contact.thread.message_id,
        )
        s = self.settings
        with smtplib.SMTP(s.relay_host, s.relay_port, timeout=s.timeout_seconds) as smtp:
            smtp.send_message(msg, from_addr=s.sender, to_addrs=[to])
        self.sent += 1
        if self.record_outbound is not None:
            self.record_outbound(h.result.ticket_id, "email", msg["Message-ID"], to=to, subject=str(msg["Subject"]), text=msg.get_content())
        return True

    def _skip_reason(self, to: str) -> str | None:
        if "@" not in to:
            return "no sender address"
        if to in self.own:
            return "sent by the desk itself"
        if to.split("@", 1)[0] in _NO_ACK_LOCALPARTS:
            return "a no-reply address"
        if not self.limit.allow(to):
            return f"rate limit ({self.settings.per_address_per_hour} per hour)"
        return None
