"""Configuration of speech-to-text: the `[voice.stt]` section (engine and model per language, worker tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineName = Literal["auto", "vosk", "whisper", "pocketsphinx"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class LanguageChoice(_Section):
    engine: EngineName = "auto"  # auto: the best engine with a model for the language on this machine
    model: Path | None = None  # a model directory; None: the one found for the engine and language


class SttSettings(_Section):
    # Where `models install` unpacks Vosk models (and where Whisper directories may be put); default
    # <storage.data_dir>/models.
    models_dir: Path | None = None
    # The languages callers speak: `models install --defaults` gets a model for each, in this order.
    languages: dict[str, LanguageChoice] = Field(default_factory=lambda: {"it": LanguageChoice(), "fr": LanguageChoice(), "en": LanguageChoice()})
    # One base URL replacing every model host of the catalog (a mirror; a local server in the tests).
    models_url: str | None = None
    # Whisper: how the names a question expects (the directory's people for "name", the inventory's assets for
    # "asset" and "anomaly") bias the decoding: as hotwords, as the initial prompt, or not at all
    # (bench/stt_bias.py; BENCHMARKS.md).
    whisper_hints: Literal["hotwords", "prompt", "off"] = "hotwords"
    silence_floor_dbfs: float = Field(-50.0, le=0)
    grammars: bool = Field(True, description="decode asset and name answers against the inventory/directory first (Vosk)")
    whisper_compute_type: str = "int8"
    whisper_threads: int = Field(1, ge=1, le=64)  # per worker process: workers, not threads, use the cores
    # Beam 5: tiny.en 5.8 % WER on the English telephone set against 6.2 % greedy, still 4.4 s of audio per
    # second with two workers (bench/stt.py; greedy is faster: 1 when throughput matters more than accuracy).
    whisper_beam_size: int = Field(5, ge=1, le=10)
    # Durable jobs: worker processes `serve` runs in-process (0: none, run `helpdesk-gateway worker` elsewhere).
    workers: int = Field(1, ge=0, le=64)
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(5.0, ge=0)
    poll_seconds: float = Field(0.5, gt=0)
    # How often a worker looks again for models (besides a change of the models directory): a language that
    # had none is served as soon as `models install` adds one, without a restart.
    rediscover_seconds: float = Field(30.0, gt=0)
