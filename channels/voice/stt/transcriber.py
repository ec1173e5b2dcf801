"""One object to transcribe recordings by language: engines loaded once (per process) and reused.

`transcribe()` normalises the recording to the engine's rate, skips the engine for a silent recording (it
comes back flagged `silent`, with an empty text and zero confidence), and decodes the rest. With `window`
(seconds), a short recording goes to Whisper in one window of that length instead of faster-whisper's padded
30 s (`WhisperEngine.short`: the same words and timings for a fraction of the encoder's cost); the
transcription workers use it (`worker.SHORT_WINDOW`), the WER benches do not.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from . import audio, registry
from .base import Engine, EngineError, Grammar, Transcript

log = logging.getLogger(__name__)
from .settings import SttSettings


class Transcriber:
    def __init__(self, settings: SttSettings | None = None, models_dir: Path | None = None, engine: str | None = None,
                 window: float | None = None):
        self.settings = settings or SttSettings()
        self.window = window
        self.models_dir = models_dir if models_dir is not None else self.settings.models_dir
        self.engine_override = engine
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def engine(self, language: str) -> Engine:
        with self._lock:
            if language not in self._engines:
                info = registry.choose(language, self.settings, self.models_dir, self.engine_override)
                loaded = next((e for e in self._engines.values() if e.model == str(info.path) and hasattr(e, "for_language")), None)
                self._engines[language] = loaded.for_language(language) if loaded else registry.build(info, language, self.settings)
            return self._engines[language]

    def available(self, language: str) -> bool:
        """Whether `language` has an engine here (loading it if need be); never raises."""
        try:
            self.engine(language)
            return True
        except EngineError:
            return False

    def forget(self, language: str) -> None:
        """Drop a language's engine (its model went away): the next call chooses again."""
        with self._lock:
            self._engines.pop(language, None)

    def models_stamp(self) -> int | None:
        """Changes when a model is added to or removed from the models directory (a cheap check, a stat)."""
        try:
            return Path(self.models_dir).stat().st_mtime_ns if self.models_dir is not None else None
        except OSError:
            return None

    def preload(self, languages=None) -> dict[str, str]:
        """Load the engine of each configured language now (logging the choice at start, not at the first call).
        Returns {language: error} for the languages that have no engine here; their jobs wait for one."""
        errors = {}
        for language in languages or self.settings.languages:
            try:
                self.engine(language)
            except EngineError as e:
                log.warning("speech-to-text for %s: %s", language, e)
                errors[language] = str(e)
        return errors

    def grammar(self, language: str, phrases: list[str]) -> Grammar | None:
        engine = self.engine(language)
        prepare = getattr(engine, "grammar", None)
        return prepare(phrases) if prepare else None

    def transcribe(self, source: bytes | str | Path, language: str, grammar: Grammar | None = None, *,
                   windowed: bool = True) -> Transcript:
        """`windowed=False`: faster-whisper's padded 30 s even when this transcriber has a short `window`."""
        engine = self.engine(language)
        a = audio.load(source, engine.sample_rate, silence_floor=self.settings.silence_floor_dbfs)
        if a.silent:
            return Transcript("", 0.0, engine.name, engine.model, language, round(a.duration, 3), silent=True)
        if windowed and self.window is not None and hasattr(engine, "short"):
            t = engine.short(a.pcm, grammar, window=self.window)
            if t.text.strip():
                return t
            # nothing in one short window of a recording that is not silent (a French answer over SIP ended at
            # once): faster-whisper's own way, silence cut by its VAD, before the ticket gets an empty transcript
        return engine.transcribe(a.pcm, grammar)
