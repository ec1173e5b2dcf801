"""Configuration of the voice channel: the `[voice]` section (`voice.sip`, the IVR's behaviour, its prompts)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .stt.settings import SttSettings


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SipSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)


class IvrSettings(Section):
    default_language: str = Field("it", pattern=r"^(it|en)$")
    max_retries: int = Field(3, ge=1, le=10)
    gather_timeout: float = Field(6.0, gt=0, le=60)
    max_problem_seconds: int = Field(120, ge=10, le=900)
    operator: str | None = Field(None, description="SIP URI or number for 0 / fallback; none: record a message")


class VoiceSettings(Section):
    enabled: bool = False
    prompts_dir: Path = Path("config/prompts")
    sip: SipSettings = Field(default_factory=SipSettings)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    stt: SttSettings = Field(default_factory=SttSettings)
