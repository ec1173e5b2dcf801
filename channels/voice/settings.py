"""Configuration of the voice channel: the `[voice]` section (`voice.sip`, `voice.twilio`, the IVR, prompts, speech).

With the defaults one call-handling worker process, supervised by the gateway, answers SIP on `voice.sip.port`
(up to `max_calls` calls). `voice.sip.workers = N` runs N worker processes on the ports after it, with
Kamailio answering for all of them on `voice.sip.port` (`voice.sip.kamailio`). `voice.sip.limits` are the
per-source limits every worker applies before answering. Twilio's webhooks are served by
the web channel under `/twilio/voice/` when `voice.twilio.enabled`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from .stt.settings import SttSettings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RegistrationSettings(Section):
    """Register the SIP workers to an existing PBX or trunk (the set-up without Kamailio)."""

    enabled: bool = False
    registrar: str = Field("", description="sip:pbx.example.org")
    user: str = ""
    password: str | None = None
    password_file: Path | None = None
    expires_seconds: int = Field(300, ge=60)

    def secret(self) -> str:
        if self.password is not None:
            return self.password
        return self.password_file.read_text(encoding="utf-8").strip() if self.password_file else ""


class KamailioSettings(Section):
    """The SIP proxy in front of several call-handling processes (used when `voice.sip.workers` > 1)."""

    binary: str = "kamailio"
    extra_destinations: list[str] = Field(default_factory=list, description="sip:host:port of workers on other machines")
    # pike counts every request from an address (ACK, INFO, BYE too): a PBX or trunk sends all its calls from one
    # address, so the limit must hold its busiest second (about 10 requests per call set up) with room to spare.
    pike_requests: int = Field(500, ge=1, description="requests per pike_seconds from one address before it is blocked")
    pike_seconds: int = Field(2, ge=1)


class SipLimitSettings(Section):
    """Per-source limits a SIP worker applies before answering (with or without Kamailio in front).

    A source is the caller's IP address (behind Kamailio: the address Kamailio saw, in its X-Helpdesk-Source
    header). A PBX or trunk sends every call from one address: list it in `exempt`.
    """

    attempts_per_second: float = Field(2.0, gt=0, description="call attempts (INVITEs) a source may make per second, sustained")
    attempts_burst: int = Field(8, ge=1, description="attempts a source may make at once before the rate applies")
    calls_per_source: int = Field(2, ge=1, description="calls one source may have open at the same time (486 beyond)")
    ban_after: int = Field(20, ge=1, description="attempts refused in a row for going too fast before the source is banned")
    ban_seconds: int = Field(60, ge=1, description="how long a banned source gets 403")
    exempt: list[str] = Field(default_factory=list, description="addresses no limit applies to (the PBX, the trunk)")
    refuse_after_seconds: float = Field(1.0, ge=0, le=10, description="past 10 refusals a second, a refused INVITE keeps its call slot this long before its answer (so a flood cannot churn pjlib's sockets)")
    proxy: str | None = Field(None, description="set by the supervisor: the address of Kamailio, whose header names the source")


class SipSettings(Section):
    enabled: bool = Field(True, description="answer SIP (pjsua2); off: Twilio only")
    host: str = "127.0.0.1"
    port: int = Field(5060, ge=0, le=65535, description="0: any free port (tests)")
    transports: list[Literal["udp", "tcp"]] = Field(default_factory=lambda: ["udp", "tcp"])
    public_address: str | None = Field(None, description="address to put in Contact/SDP when behind NAT")
    rtp_port: int = Field(40000, ge=0, le=65535, description="first RTP port (0: any)")
    max_calls: int = Field(4, ge=1, le=4, description="simultaneous calls per process (the pjsua2 wheel's cap is 4)")
    workers: int = Field(1, ge=1, le=64, description="call-handling processes; more than 1 puts Kamailio in front")
    max_call_seconds: int = Field(900, ge=30, description="watchdog: hang up a call that lasts longer")
    no_rtp_seconds: int = Field(30, ge=5, description="watchdog: hang up a call whose audio stopped")
    ack_timeout_seconds: int = Field(10, ge=1, description="watchdog: free the slot of an answered INVITE never ACKed")
    limits: SipLimitSettings = Field(default_factory=SipLimitSettings)
    recover_every_seconds: float = Field(60.0, ge=0.5, description="how often a worker delivers the calls left in its spool")
    log_level: int = Field(2, ge=0, le=6, description="pjsip's log level, routed into Python logging")
    registration: RegistrationSettings = Field(default_factory=RegistrationSettings)
    kamailio: KamailioSettings = Field(default_factory=KamailioSettings)


class TwilioSettings(Section):
    """Cloud telephony: Twilio's voice webhooks, served by the web channel under /twilio/voice/."""

    enabled: bool = False
    public_base_url: HttpUrl | None = Field(None, description="the URL Twilio calls, e.g. https://desk.example.org (behind the proxy)")
    account_sid: str = ""
    auth_token: str | None = None
    auth_token_file: Path | None = None
    speech: bool = Field(False, description='Gather input="dtmf speech" instead of "dtmf"')
    download_attempts: int = Field(8, ge=1, description="recording downloads tried while Twilio answers 404")
    download_backoff_seconds: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> TwilioSettings:
        if self.enabled and (self.public_base_url is None or (self.auth_token is None and self.auth_token_file is None)):
            raise ValueError("voice.twilio.enabled needs public_base_url and auth_token (or auth_token_file)")
        return self

    def token(self) -> str:
        if self.auth_token is not None:
            return self.auth_token
        return self.auth_token_file.read_text(encoding="utf-8").strip() if self.auth_token_file else ""


class IvrSettings(Section):
    default_language: str = Field("it", pattern=r"^(it|fr|en)$")
    confirm: bool = Field(True, description="say the asset (and a spoken name the directory knows) back: 1 confirm, 2 again")
    max_retries: int = Field(3, ge=1, le=10)
    gather_timeout: float = Field(6.0, gt=0, le=60)
    max_problem_seconds: int = Field(120, ge=10, le=900)
    operator: str | None = Field(None, description="SIP URI or number for 0 / fallback; none: record a message")


class VoiceSettings(Section):
    enabled: bool = True
    prompts_dir: Path = Path("config/prompts")
    spool_dir: Path | None = Field(None, description="calls in progress (recordings, IVR state); default <data_dir>/calls")
    sip: SipSettings = Field(default_factory=SipSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    stt: SttSettings = Field(default_factory=SttSettings)

    @field_validator("prompts_dir")
    @classmethod
    def _shipped_prompts(cls, v: Path) -> Path:
        from channels.datafiles import shipped

        return shipped(v)  # an installed wheel: the prompts shipped with it (channels/datafiles.py)
