"""Configuration of the voice channel: the `[voice]` section (`voice.sip`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SipSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)


class VoiceSettings(Section):
    enabled: bool = False
    sip: SipSettings = Field(default_factory=SipSettings)
