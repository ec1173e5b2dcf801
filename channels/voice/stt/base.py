"""The engine interface: what every speech-to-text engine takes (PCM at its own rate) and gives (a `Transcript`).

Kept deliberately small (one method, four attributes) so that adding an engine never changes its callers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence


class EngineError(RuntimeError):
    """An engine or its model cannot be used (missing package, missing or broken model directory)."""


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float  # seconds from the start of the audio
    end: float
    confidence: float  # 0–1, as the engine reports it


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float  # 0–1: the mean of the word confidences (0 when nothing was recognised)
    engine: str
    model: str
    language: str
    duration: float  # seconds of audio given
    words: tuple[Word, ...] = ()
    silent: bool = False  # the recording was below the silence floor: not transcribed
    grammar: bool = False  # decoded against a constrained grammar

    def as_dict(self) -> dict:
        d = asdict(self)
        d["words"] = [asdict(w) for w in self.words]
        return d


def mean_confidence(words: Sequence[Word]) -> float:
    return round(sum(w.confidence for w in words) / len(words), 4) if words else 0.0


def make_transcript(engine: "Engine", pcm: bytes, words: Sequence[Word], text: str | None = None, **extra) -> Transcript:
    """The result every engine returns: its words, their mean confidence, and where it came from."""
    return Transcript(
        text=" ".join(w.word for w in words) if text is None else text,
        confidence=mean_confidence(words),
        engine=engine.name,
        model=engine.model,
        language=engine.language,
        duration=round(len(pcm) / 2 / engine.sample_rate, 3),
        words=tuple(words),
        **extra,
    )


@dataclass
class Grammar:
    """A constrained vocabulary prepared for one engine: the phrases it kept, the words its model lacks."""

    phrases: tuple[str, ...]
    missing: tuple[str, ...] = field(default_factory=tuple)
    bias: bool = False  # hints that bias a free decoding (Whisper hotwords / prompt), not a constraint (Vosk)


class Engine(Protocol):
    name: str  # "vosk" | "whisper" | "pocketsphinx"
    model: str  # the model directory (what the ticket records as the model used)
    language: str  # "it" | "en" | …
    sample_rate: int  # the rate the model takes: audio is normalised to it, never resampled twice

    def transcribe(self, pcm: bytes, grammar: Grammar | None = None) -> Transcript:
        """Transcribe mono 16-bit little-endian PCM at `sample_rate`."""
        ...
