"""The desk's outgoing mail: the words of acknowledgements (RFC 3834 auto-replies), and the sender that drains
the durable outbox (`ticketing/outbox.py`) to the configured relay over SMTP (RFC 5321).

An acknowledgement tells the sender of a contact that opened a ticket its number: `[HD-YYYY-NNNNNN]` in the
subject (so a reply threads back by subject tag), `In-Reply-To`/`References` to their mail, `Auto-Submitted:
auto-replied` and `X-Auto-Response-Suppress: All` (so well-behaved responders do not answer it), in the
contact's language. Whether one is sent at all is the core's decision, in the intake transaction
(`ticketing/acknowledge.py`: only authenticated or known senders, within limits kept in the database); this
module only gives the words (`AckTexts`) and sends what the outbox holds (`OutboxSender`).

Sending: one thread claims due mails in batches (a lease each, so gateways sharing a database never both send
one), sends them over one SMTP connection, and records what the relay answered (taken mails in groups of up to
20 or 0.2 s, one commit each; so a crash repeats at most those, with their Message-IDs unchanged):
- 2xx: sent; the ticket's history says so (`mail_sent`).
- 4xx, a refused or dropped connection, a timeout: temporary; retried with a doubling wait (`retry_seconds` up
  to `max_retry_seconds`), across restarts; the history says "not sent yet" with the reason, once per reason.
- 5xx: permanent; the ticket gets `mail_failed` with the relay's words.
With no `relay_host` configured (the default) nothing is attempted: the mails wait in the outbox, the desk shows
them, and configuring a relay (and restarting) sends the backlog.
"""

from __future__ import annotations

import logging
import os
import secrets
import smtplib
import socket
import threading
import time
from typing import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from ticketing.acknowledge import Composed
from ticketing.outbox import REPLY, OutgoingMail, PermanentFailure, TemporaryFailure
from ticketing.text import guess_language

from .settings import AckSettings

log = logging.getLogger("channels.email.ack")

# Acknowledgement texts by language: (subject, body). More languages are more entries here.
TEXTS = {
    "it": (
        "[{number}] Abbiamo ricevuto la sua richiesta",
        "Gentile utente,\n\nabbiamo ricevuto la sua segnalazione{about} e l'abbiamo registrata con il numero "
        "{number}.\nUn operatore la prenderà in carico al più presto.\n{pin_line}\nPer aggiungere informazioni risponda a "
        "questo messaggio lasciando il numero nell'oggetto.\n\n-- \n{desk}\n(messaggio automatico)\n",
    ),
    "en": (
        "[{number}] We have received your request",
        "Hello,\n\nwe have received your request{about} and registered it as {number}.\nAn operator will take "
        "it up as soon as possible.\n{pin_line}\nTo add information, reply to this message keeping the number in the "
        "subject.\n\n-- \n{desk}\n(automatic message)\n",
    ),
    "fr": (
        "[{number}] Nous avons reçu votre demande",
        "Bonjour,\n\nnous avons reçu votre signalement{about} et l'avons enregistré sous le numéro {number}.\n"
        "Un opérateur le prendra en charge dès que possible.\n{pin_line}\nPour ajouter des informations, répondez à ce "
        "message en gardant le numéro dans l'objet.\n\n-- \n{desk}\n(message automatique)\n",
    ),
}
DEFAULT_LANGUAGE = "it"
# The status PIN (issue 12): with the number, it lets the reporter hear the status by phone from any line.
PIN_LINES = {
    "it": "\nPer conoscere lo stato anche per telefono, da qualsiasi numero: PIN {pin}.\n",
    "en": "\nTo hear its status by phone, from any line: PIN {pin}.\n",
    "fr": "\nPour connaître son état par téléphone, depuis n'importe quelle ligne : code PIN {pin}.\n",
}
NO_RELAY = "no mail relay is configured ([email.ack] relay_host)"
# What the relay took is recorded in groups: a crash in between sends at most this many again (same Message-ID).
MARK_EVERY, MARK_SECONDS = 20, 0.2


class MailError(RuntimeError):
    """Outgoing mail that cannot be queued; the message says why, for the operator who wrote it."""


class AckTexts:
    """The words of an acknowledgement: `(contact, ticket number) -> Composed` (the core's `AckPolicy.compose`)."""

    def __init__(self, settings: AckSettings):
        self.settings = settings

    def __call__(self, contact, number: str, pin: str | None = None) -> Composed:
        language = contact.language or guess_language(f"{contact.subject or ''}\n{contact.text[:4000]}")
        language = language if language in TEXTS else DEFAULT_LANGUAGE
        subject_t, body_t = TEXTS[language]
        about = f' "{contact.subject[:120]}"' if contact.subject else ""
        return Composed(
            subject=subject_t.format(number=number),
            text=body_t.format(number=number, about=about, desk=self.settings.sender_name,
                               pin_line=PIN_LINES[language].format(pin=pin) if pin else ""),
            headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All", "Content-Language": language},
            in_reply_to=contact.thread.message_id,
        )


def to_message(settings: AckSettings, mail: OutgoingMail) -> EmailMessage:
    """The RFC 5322 message of an outbox row."""
    from datetime import datetime, timezone

    msg = EmailMessage()
    msg["From"] = formataddr((settings.sender_name, settings.sender))
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = mail.message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
        msg["References"] = mail.in_reply_to
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.text)
    return msg


class SmtpTransport:
    """`ticketing.outbox.MailTransport` over SMTP to the relay: one connection per batch."""

    def __init__(self, settings: AckSettings):
        self.settings = settings

    def send(self, mails: list[OutgoingMail]) -> Iterator[tuple[OutgoingMail, BaseException | None]]:
        """Yield each mail with None (the relay took it) or why not, as soon as the relay answered for it."""
        s = self.settings
        smtp: smtplib.SMTP | None = None
        try:
            for i, mail in enumerate(mails):
                if smtp is None:
                    try:
                        smtp = self._connect()
                    except (OSError, smtplib.SMTPException) as e:
                        error = _classify(e, f"the relay {s.relay_host}:{s.relay_port} could not be reached")
                        for rest in mails[i:]:
                            yield rest, error
                        return
                try:
                    smtp.send_message(to_message(s, mail), from_addr=s.sender, to_addrs=[mail.to])
                    error = None
                except smtplib.SMTPRecipientsRefused as e:
                    code, words = next(iter(e.recipients.values()))
                    error = _by_code(code, words)
                    _reset(smtp)
                except smtplib.SMTPResponseException as e:
                    error = _by_code(e.smtp_code, e.smtp_error)
                    _reset(smtp)
                except (OSError, smtplib.SMTPException) as e:  # the connection dropped: a new one for the next
                    error = _classify(e, "the relay dropped the connection")
                    smtp = _close(smtp)
                yield mail, error
        finally:
            _close(smtp)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.relay_host, s.relay_port, timeout=s.timeout_seconds)
        try:
            smtp.ehlo()
            if s.relay_starttls:
                smtp.starttls()
                smtp.ehlo()
        except BaseException:
            _close(smtp)
            raise
        return smtp


def _words(words) -> str:
    return (words.decode("utf-8", "replace") if isinstance(words, bytes) else str(words)).replace("\n", " ").strip()


def _by_code(code: int, words) -> BaseException:
    text = f"{code} {_words(words)}".strip()
    return PermanentFailure(text) if 500 <= code < 600 else TemporaryFailure(text)


def _classify(e: BaseException, what: str) -> BaseException:
    if isinstance(e, smtplib.SMTPResponseException):
        return _by_code(e.smtp_code, e.smtp_error)
    return TemporaryFailure(f"{what}: {type(e).__name__}: {e}".rstrip(": "))


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except (OSError, smtplib.SMTPException):
        pass


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return None


class OutboxSender:
    """Drains the outbox from a thread (`start`/`stop`); also the desk's outgoing mail offered to the other
    channels (`acknowledge_contact`, `send_reply`: `ticketing.ports.OutboundMail`)."""

    name = "email-outbox"

    def __init__(self, settings: AckSettings, outbox, *, transport=None, owner: str | None = None):
        self.settings, self.outbox = settings, outbox
        self.transport = transport or SmtpTransport(settings)
        self.owner = owner or f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.sent = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def relay(self) -> str | None:
        s = self.settings
        return f"{s.relay_host}:{s.relay_port}" if s.relay_host else None

    # -- what the other channels use ------------------------------------------------------------------------
    def acknowledge_contact(self, contact, result) -> bool:
        """Whether the new ticket's acknowledgement is in the outbox (the intake queued it in its transaction)."""
        return self.outbox.acknowledged(result.ticket_id)

    def send_reply(
        self, *, ticket_id: int, ticket_number: str, to: str, subject: str, text: str, in_reply_to: str | None = None
    ) -> str:
        """Queue an operator's reply (recorded on the ticket at once, so the user's answer threads back);
        returns its Message-ID. Raises `MailError` when the address cannot take mail."""
        to = (to or "").strip()
        if "@" not in to or any(c.isspace() for c in to):
            raise MailError(f"not an email address: {to!r}")
        tag = f"[{ticket_number}]"
        subject = subject if tag in subject else f"{tag} {subject}".strip()
        message_id = self.outbox.enqueue_reply(
            ticket_id=ticket_id, to=to, subject=subject, text=text, in_reply_to=in_reply_to,
            domain=self.settings.sender.rsplit("@", 1)[-1], kind=REPLY,
        )
        self._wake.set()
        return message_id

    # -- the thread -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.start_thread()

    async def stop(self) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.stop_thread)

    def start_thread(self) -> None:
        if self._thread is not None:
            return
        if self.relay is None:
            log.warning("%s: acknowledgements and replies wait in the outbox until one is set "
                        "(HELPDESK_GATEWAY__EMAIL__ACK__RELAY_HOST / __RELAY_PORT)", NO_RELAY)
        else:
            log.info("outgoing mail through the relay %s", self.relay)
            try:  # a relay (newly) configured: what waited, or waits out a backoff, goes now
                waiting = self.outbox.retry_now()
                if waiting:
                    log.info("outbox: %d mail(s) waiting, sending them now", waiting)
            except Exception:  # noqa: BLE001 - the database is away: the sender's loop retries anyway
                log.exception("outbox: could not look at what waits")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="email-outbox", daemon=True)
        self._thread.start()

    def stop_thread(self, timeout: float | None = None) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout if timeout is not None else self.settings.timeout_seconds + 5)
        self._thread = None
        try:
            self.outbox.release(self.owner)
        except Exception:  # noqa: BLE001 - the leases then simply expire
            log.exception("outbox: could not release this sender's leases")

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            try:
                if self.relay is None:
                    self.outbox.note_waiting(NO_RELAY)  # "not sent yet: …" on each waiting mail's ticket, once
                    self._sleep(max(s.poll_seconds, 5.0))
                    continue
                mails = self.outbox.claim(self.owner, s.batch)
                if not mails:
                    self._sleep(s.poll_seconds)
                    continue
                self.drain(mails)
            except Exception:  # noqa: BLE001 - ours (the database is away…): log, wait, go on
                log.exception("outbox: sending failed; retrying")
                self._sleep(5.0)

    def drain(self, mails: list[OutgoingMail]) -> None:
        """Send claimed mails and record what became of each: what the relay took is marked in groups (every
        `MARK_EVERY` mails or `MARK_SECONDS`, one commit each), a refusal at once."""
        taken: list[OutgoingMail] = []
        since = time.monotonic()

        def mark() -> None:
            nonlocal since
            if taken:
                self.sent += self.outbox.sent_many(taken)
                taken.clear()
            since = time.monotonic()

        try:
            for mail, error in self.transport.send(mails):
                if error is None:
                    taken.append(mail)
                    if len(taken) >= MARK_EVERY or time.monotonic() - since >= MARK_SECONDS:
                        mark()
                    continue
                permanent = isinstance(error, PermanentFailure)
                (log.warning if permanent else log.info)(
                    "outbox: %s to %s %s: %s", mail.kind, mail.to, "refused" if permanent else "not sent yet", error
                )
                self.outbox.failed(mail, str(error), permanent=permanent)
        finally:
            mark()
