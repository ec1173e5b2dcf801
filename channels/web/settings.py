"""Configuration of the web channel: the `[web]` section (public form, status page, operator desk, REST API,
outbound webhooks in `[[web.webhooks]]`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEBHOOK_EVENTS = ("ticket.created", "ticket.updated", "ticket.escalated", "ticket.resolved", "ticket.sla.warning", "ticket.sla.breached")


class WebhookSettings(BaseModel):
    """One receiver of outbound webhooks: a signed JSON POST per ticket event of the kinds in `events`."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    url: str = Field(description="http:// or https:// address that receives the POSTs")
    secret: str | None = Field(None, min_length=16, description="HMAC-SHA256 key of the signature header")
    secret_file: Path | None = None
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        if not v.startswith(("http://", "https://")) or len(v) > 2000 or any(c.isspace() for c in v):
            raise ValueError("expected an http:// or https:// URL")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        names = [e if e.startswith("ticket.") else f"ticket.{e}" for e in v]  # "created" is short for "ticket.created"
        bad = [e for e in names if e not in WEBHOOK_EVENTS]
        if bad:
            raise ValueError(f"unknown event {bad[0]!r} (events: {', '.join(WEBHOOK_EVENTS)})")
        return names

    @model_validator(mode="after")
    def _secret(self) -> WebhookSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("expected secret or secret_file (one of them)")
        return self

    def key(self) -> bytes:
        if self.secret is not None:
            return self.secret.encode()
        assert self.secret_file is not None
        key = self.secret_file.read_bytes().strip()
        if len(key) < 16:
            raise ValueError(f"{self.secret_file}: a webhook secret needs at least 16 bytes")
        return key


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0: any free port (tests)")
    # Signs CSRF tokens and operator session cookies (channels/web/security.py: load_signer). Unset: a key made
    # once in <data_dir>/web-secret (mode 0600), so forms and sessions survive a restart.
    secret: str | None = Field(None, min_length=16, description="the key itself (HELPDESK_GATEWAY__WEB__SECRET)")
    secret_file: Path | None = Field(None, description="a file holding the key (shared by several gateways)")
    secret_key_file: Path | None = Field(None, description="older name of secret_file")
    secret_grace_hours: float = Field(24.0, ge=0, description="after a rotation the previous key is accepted this long")
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
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed: behind them, rate limits
    # count per real client instead of per proxy. Empty: the TCP peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Public address of the site, for links in messages (acknowledgements); default: the request's own.
    public_url: str | None = None
    # Outbound webhooks, and how they are retried: the wait doubles after each failure, up to the cap.
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_retry_seconds: float = Field(2.0, gt=0, description="the first wait after a failed delivery")
    webhook_max_retry_seconds: float = Field(600.0, gt=0)
    webhook_poll_seconds: float = Field(1.0, gt=0, description="how often new events are looked for")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return v

    @field_validator("webhooks")
    @classmethod
    def _one_per_url(cls, v: list[WebhookSettings]) -> list[WebhookSettings]:
        urls = [w.url for w in v]
        dup = next((u for u in urls if urls.count(u) > 1), None)
        if dup:
            raise ValueError(f"the webhook URL {dup} is listed twice (one entry per URL, with all its events)")
        return v
