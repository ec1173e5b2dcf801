"""Configuration of the web channel: the `[web]` section (public form, status page, operator desk, REST API)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0: any free port (tests)")
    # Signs CSRF tokens and operator session cookies. Unset: a random key per start (sessions end on restart).
    secret_key_file: Path | None = None
    # Secure flag on cookies: keep it on behind TLS; only plain-HTTP test setups turn it off.
    cookie_secure: bool = True
    session_hours: float = Field(10.0, gt=0, le=24 * 7)
    # Abuse limits (per client address, per minute), 0 = no limit.
    submit_per_minute: int = Field(20, ge=0)
    status_per_minute: int = Field(10, ge=0)
    login_per_minute: int = Field(10, ge=0)
    api_per_minute: int = Field(600, ge=0)
    # Request size: the whole body, and each attachment of the form.
    max_request_bytes: int = Field(12 * 1024 * 1024, ge=4096)
    max_attachment_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(3, ge=0, le=20)
    attachment_types: list[str] = Field(
        default_factory=lambda: ["image/png", "image/jpeg", "image/gif", "application/pdf", "text/plain"]
    )
    # Lockout after failed logins: after `lockout_failures` in a row, `lockout_seconds` doubling per failure.
    lockout_failures: int = Field(5, ge=1)
    lockout_seconds: int = Field(30, ge=1)
    # Public address of the site, for links in messages (acknowledgements); default: the request's own.
    public_url: str | None = None
