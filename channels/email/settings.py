"""Configuration of the email channel: the `[email]` section (`email.smtp`, `email.imap`, `email.addresses`,
`email.ack`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SmtpSettings(Section):
    """The SMTP receiver (RFC 5321) the desk's MX or relay delivers to."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=1, le=65535)
    hostname: str | None = Field(None, description="name in the greeting and EHLO reply; default: the machine's")
    max_message_bytes: int = Field(30 * 1024 * 1024, ge=1024, description="advertised with SIZE, enforced with 552")
    max_recipients: int = Field(100, ge=100, description="RCPT TO beyond this count answers 452 (RFC 5321 §4.5.3.1.8)")
    parse_workers: int = Field(2, ge=0, description="worker processes that parse mail off the event loop (0: threads)")
    max_batch: int = Field(64, ge=1, description="unused: the core's one batched committer groups every channel's contacts")
    timeout_seconds: float = Field(300, gt=0, description="idle timeout of a session (RFC 5321 §4.5.3.2)")
    stress_timeout_seconds: float = Field(10, gt=0, description="idle timeout once connections pass half of max_connections")
    max_connections: int = Field(1000, ge=1, description="SMTP connections at once; beyond: 421 4.7.0")
    max_connections_per_ip: int = Field(50, ge=1, description="SMTP connections at once from one address; beyond: 421 4.7.0")
    max_data_in_flight_bytes: int = Field(
        128 * 1024 * 1024, ge=1024 * 1024, description="mail bytes held in memory across sessions; beyond: 451 4.3.1"
    )
    # STARTTLS (RFC 3207) and AUTH (RFC 4954) for the relays that use them; all off by default.
    tls_cert: Path | None = Field(None, description="PEM certificate (with its chain) offered with STARTTLS; None: no STARTTLS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert; None: it is in the tls_cert file")
    require_tls: bool = Field(False, description="refuse MAIL until the client has issued STARTTLS (530)")
    auth: Literal["off", "optional", "required"] = Field(
        "off", description="AUTH PLAIN/LOGIN: optional offers it, required refuses MAIL without it (530 5.7.0)"
    )
    auth_users_file: Path | None = Field(None, description="'user:argon2-hash' lines: python -m channels.email.access USER")
    auth_require_tls: bool = Field(True, description="offer AUTH only after STARTTLS, so that no password crosses in clear")

    @model_validator(mode="after")
    def _tls_and_auth(self) -> SmtpSettings:
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("tls_key is set but tls_cert is not")
        if self.require_tls and self.tls_cert is None:
            raise ValueError("require_tls needs tls_cert (and tls_key): there is no STARTTLS without a certificate")
        if self.auth != "off":
            if self.auth_users_file is None:
                raise ValueError(f"auth = {self.auth!r} needs auth_users_file")
            if self.auth_require_tls and self.tls_cert is None:
                raise ValueError("auth with auth_require_tls needs tls_cert: without STARTTLS no client could authenticate")
        if self.max_data_in_flight_bytes < self.max_message_bytes:
            raise ValueError("max_data_in_flight_bytes is below max_message_bytes: a mail of the largest size could never be taken in")
        return self


class ImapMailbox(Section):
    """One mailbox the IMAP fetcher (RFC 9051) drains."""

    host: str
    port: int = Field(993, ge=1, le=65535)
    tls: bool = True
    user: str
    password: str | None = None
    password_file: Path | None = None
    folder: str = "INBOX"
    processed_folder: str | None = Field("Processed", description="MOVE processed mail here; None: flag it \\Seen+$Helpdesk")
    poll_seconds: float = Field(60, gt=0, description="when the server has no IDLE; also the IDLE renewal bound")
    batch: int = Field(100, ge=1, le=1000)

    @model_validator(mode="after")
    def _password(self) -> ImapMailbox:
        if self.password is None and self.password_file is None:
            raise ValueError("expected password or password_file")
        return self

    def secret(self) -> str:
        if self.password is not None:
            return self.password
        assert self.password_file is not None
        return self.password_file.read_text(encoding="utf-8").strip()


class AckSettings(Section):
    """Outgoing mail: acknowledgements of new tickets (RFC 3834 auto-replies), operators' replies and
    notifications, all through the durable outbox and the relay. No relay_host: the mails wait in the outbox."""

    enabled: bool = True
    relay_host: str | None = Field(None, description="the relay (smarthost) outgoing mail goes through; None: mails wait")
    relay_port: int = Field(25, ge=1, le=65535)
    relay_starttls: bool = Field(False, description="STARTTLS to the relay (RFC 3207) before sending")
    sender: str = Field("assistenza@example.org", description="From: and the envelope sender of outgoing mail")
    sender_name: str = "Help desk"
    per_address_per_hour: int = Field(5, ge=0, description="acknowledgements to one address per hour at most (all gateways)")
    global_per_hour: int = Field(500, ge=0, description="acknowledgements per hour in all (all gateways)")
    # Backscatter: only senders the channel authenticated (DMARC alignment) or the desk knows are acknowledged.
    trusted_authserv_ids: list[str] = Field(
        default_factory=list, description="Authentication-Results from these authserv-ids (our MTA) are believed"
    )
    verify_dkim: bool = Field(True, description="check DKIM signatures aligned with From: ourselves (needs DNS)")
    verify_spf: bool = Field(True, description="check SPF of the SMTP client ourselves (meaningful when we are the MX)")
    dns_timeout_seconds: float = Field(2.0, gt=0)
    known_domains: list[str] = Field(default_factory=list, description="senders at these domains count as known")
    timeout_seconds: float = Field(15, gt=0)
    retry_seconds: float = Field(30, gt=0, description="first wait after a temporary failure, doubling each time")
    max_retry_seconds: float = Field(3600, gt=0)
    give_up_hours: float = Field(120, gt=0, description="a mail still not taken after this long is marked failed")
    batch: int = Field(50, ge=1, le=1000, description="mails claimed and sent over one connection")
    poll_seconds: float = Field(1.0, gt=0)

    @field_validator("relay_host")
    @classmethod
    def _relay(cls, v: str | None) -> str | None:
        return (v or "").strip() or None

    @field_validator("known_domains", "trusted_authserv_ids")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower() for x in v if x.strip()]


class EmailSettings(Section):
    enabled: bool = True
    addresses: list[str] = Field(default_factory=lambda: ["assistenza@example.org"])
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=0, description="larger attachments are noted, not kept")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    imap: list[ImapMailbox] = Field(default_factory=list)
    ack: AckSettings = Field(default_factory=AckSettings)

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if "@" not in a or " " in a.strip()]
        if bad:
            raise ValueError(f"expected email addresses, got {bad[0]!r}")
        return [a.strip().lower() for a in v]
