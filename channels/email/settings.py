"""Configuration of the email channel: the `[email]` section (`email.smtp`, `email.imap`, `email.addresses`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SmtpSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=1, le=65535)


class ImapMailbox(Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    user: str
    password: str | None = None
    password_file: Path | None = None
    folder: str = "INBOX"


class EmailSettings(Section):
    enabled: bool = False
    addresses: list[str] = Field(default_factory=lambda: ["assistenza@example.org"])
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    imap: list[ImapMailbox] = Field(default_factory=list)
