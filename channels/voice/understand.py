"""What a caller's answer says, at once, while the caller waits: the IVR's confirmation step ("I understood …").

The flow asks `Understand(question, recording)` right after the name and the asset answers; the call's session
answers it with this object's reading, an `Understood`. Two ports do the work:
- `interpret(question, text, language) -> reading`, with `interpret.phrases(question)`: the core's own asset
  and name steps (`ticketing/answers.py`, `extraction.interpret_answer`), handed to the channel by `gateway/`
  as `ChannelContext.interpret`, so a spoken answer is matched exactly as an email or a form field would be,
  and the words the answer may name (the inventory's, the directory's);
- `transcribe(path, language, question, phrases) -> text`: the quick transcriber (`QuickTranscriber`): the
  engines the transcription jobs use, loaded once more for this process and ready before the first call,
  listening for those phrases where the engine takes a grammar (Vosk; free decoding when it fits badly), one
  greedy Whisper pass on every core otherwise, the answer padded to a 10-s window rather than Whisper's 30 s
  (`QuickWay`, chosen by bench/confirm.py `--variants`), since a caller is waiting. The transcription job still
  decodes the recording later (beam 5, hints, word timings), for the ticket.

Nothing here is an error the caller hears: no model for the language, an empty transcript, a reading that is no
known asset or user, all come back as "nothing understood" (with the words heard, if any: the flow asks once
more for an asset it could not match). The recording still has its transcription job, which fills the field in
later.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from ticketing.contact import BlobRef

from .flow import Understood

log = logging.getLogger("channels.voice.understand")

Transcribe = Callable[[Path, str, str, list[str]], str]
# (question, text, language[, context]) with .phrases(question) -> list[str] when it can say what to listen for;
# context: earlier answers, {"name": "Luca Ferrari"}, given only when the flow has some
Interpret = Callable[..., Any]
GRAMMAR_MIN_CONFIDENCE = 0.6  # a constrained (Vosk grammar) result under this is decoded again freely


class Understander:
    """`understander(question, recording, language[, context]) -> Understood`; thread-safe, called by many calls at
    once. `context`: the call's earlier answers (`Understand.context`), handed to the interpret port."""

    def __init__(self, transcribe: Transcribe, interpret: Interpret, blobs):
        self.transcribe, self.interpret, self.blobs = transcribe, interpret, blobs
        self._no_model: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, question: str, recording: BlobRef, language: str, context: dict[str, str] | None = None) -> Understood:
        if language in self._no_model:
            return Understood(question)
        phrases = getattr(self.interpret, "phrases", None)
        try:
            text = self.transcribe(self.blobs.path(recording.sha256), language, question, phrases(question) if phrases else [])
        except LookupError as e:  # no engine for this language here: said once, then never tried again
            with self._lock:
                if language not in self._no_model:
                    self._no_model.add(language)
                    log.warning("no confirmation of answers in %s: %s", language, e)
            return Understood(question)
        if not text or not text.strip():
            return Understood(question, said="")
        reading = self.interpret(question, text, language, context) if context else self.interpret(question, text, language)
        understood = as_understood(question, reading, text)
        log.info("the %s answer %r was taken for %r (%.2f)", question, text, understood.value, understood.confidence)
        return understood


def as_understood(question: str, reading: Any, said: str | None = None) -> Understood:
    """The interpret port's answer as the flow's event: an `Understood`, an object with `value`, `spoken`
    (or `name`) and `confidence`, or None. `said`: the transcript it was read from."""
    if reading is None:
        return Understood(question, said=said)
    if isinstance(reading, Understood):
        return reading
    value = getattr(reading, "value", None)
    spoken = getattr(reading, "spoken", None) or getattr(reading, "name", None) or value
    confidence = float(getattr(reading, "confidence", 0.0) or 0.0)
    return Understood(question, value, spoken, confidence, said) if value else Understood(question, said=said)


@dataclass(frozen=True)
class QuickWay:
    """How the quick transcriber decodes with Whisper (bench/confirm.py `--variants` measures each against the
    others on the same answers: BENCHMARKS.md, "IVR confirmation")."""

    window: float = 10.0  # seconds of encoder input: the answer padded to this (0: as long as the answer; 30: Whisper's)
    hints: bool = False  # the question's expected phrases in the prompt (the inventory's assets, the directory's names)
    vad: bool = False  # cut the silence first (Silero)
    beam_size: int = 1
    threads: int = 0  # CTranslate2 threads per decoding (0: every core)
    parallel: int = 1  # decodings at once on the one loaded model (the calls of a process take turns beyond it)


class QuickTranscriber:
    """Answers of a few seconds, transcribed while the caller waits: `(path, language, question, phrases) -> text`.

    Whisper: one model loaded per process for every language it serves (`WhisperEngine.quick`: greedy, the answer
    padded to a short window instead of Whisper's 30 s, no timestamps, tokens capped by the answer's length); the
    calls of a process take turns on it, each on every core. Vosk: the phrases as a grammar first, decoded freely
    when that fits badly. Loaded in the background from the start, so the first caller does not wait for it.
    Raises LookupError when a language has no engine here."""

    def __init__(self, stt_settings, models_dir: Path | None = None, *, preload: bool = True, way: QuickWay | None = None):
        from .stt.transcriber import Transcriber

        self.way = way or QuickWay()
        self.settings, self.models_dir = stt_settings, models_dir
        self.transcriber = Transcriber(stt_settings.model_copy(update={"whisper_beam_size": self.way.beam_size}), models_dir=models_dir)
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()
        if preload:
            threading.Thread(target=self.preload, name="stt-quick-preload", daemon=True).start()

    def preload(self) -> None:
        for language in self.settings.languages:
            try:
                self.engine(language)
            except LookupError as e:
                log.warning("no confirmation of answers in %s: %s", language, e)

    def engine(self, language: str):
        """The engine for `language`: a Whisper model shared by every language and every call of the process."""
        from .stt import registry
        from .stt.base import EngineError
        from .stt.whisper import WhisperEngine

        with self._lock:
            if language in self._engines:
                return self._engines[language]
            try:
                info = registry.choose(language, self.settings, self.models_dir)
                if info.engine == "whisper":
                    key = (info.path, self.way.threads, self.way.parallel)
                    with _shared_lock:
                        loaded = _shared.get(key)
                        if loaded is None:
                            threads = self.way.threads or max(1, (os.cpu_count() or 1) // self.way.parallel)
                            loaded = _shared[key] = WhisperEngine(
                                info.path, language, compute_type=self.settings.whisper_compute_type, cpu_threads=threads,
                                beam_size=self.way.beam_size, hints=self.settings.whisper_hints, num_workers=self.way.parallel)
                    engine = loaded.for_language(language)
                else:
                    engine = self.transcriber.engine(language)
            except EngineError as e:
                raise LookupError(str(e)) from e
            self._engines[language] = engine
            return engine

    def __call__(self, path: Path, language: str, question: str, phrases: list[str]) -> str:
        from .stt import audio

        engine = self.engine(language)
        pcm = _upsampled(path, engine.sample_rate)  # a phone recording, 8 kHz: resampled here, no ffmpeg to start
        if pcm is None:
            pcm = audio.load(path, engine.sample_rate, silence_floor=self.settings.silence_floor_dbfs).pcm
        if audio.rms_dbfs(pcm, engine.sample_rate) < self.settings.silence_floor_dbfs:
            return ""
        if engine.name == "whisper":
            grammar = engine.grammar(phrases) if phrases and self.way.hints else None
            w = self.way
            return engine.quick(pcm, grammar, beam_size=w.beam_size, window=w.window, vad=w.vad)[0]
        grammar = None
        if phrases and self.settings.grammars:
            try:
                grammar = self.transcriber.grammar(language, phrases)
            except Exception as e:  # noqa: BLE001 - none of the phrases in the model's vocabulary: decode freely
                log.debug("no grammar for %s/%s: %s", language, question, e)
        if grammar is not None and not getattr(grammar, "bias", False):  # a constraint (Vosk): only when it fits
            t = engine.transcribe(pcm, grammar)
            if t.text and t.confidence >= GRAMMAR_MIN_CONFIDENCE:
                return t.text
        return engine.transcribe(pcm).text


_shared: dict[tuple, Any] = {}  # (model path, threads, parallel) -> the loaded Whisper model, one per process
_shared_lock = threading.Lock()


def _upsampled(path: Path, rate: int) -> bytes | None:
    """A 16-bit mono PCM WAV at `rate` or an integer fraction of it, as PCM at `rate` (linear interpolation: a
    phone line carries nothing above 4 kHz, so 8 → 16 kHz loses nothing); None for any other file."""
    import wave

    import numpy as np

    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getcomptype() != "NONE" or rate % w.getframerate():
                return None
            factor = rate // w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
    except (wave.Error, EOFError, OSError, ZeroDivisionError):
        return None
    if factor == 1 or len(x) < 2:
        return x.astype("<i2").tobytes()
    t = np.arange(len(x) * factor, dtype=np.float32) / factor
    return np.interp(t, np.arange(len(x), dtype=np.float32), x).astype("<i2").tobytes()


def from_context(ctx, settings, way: QuickWay | None = None) -> Understander | None:
    """The channel's understander, when the gateway gave an interpret port and confirmation is on."""
    interpret = getattr(ctx, "interpret", None)
    if interpret is None or not settings.ivr.confirm:
        return None
    models_dir = settings.stt.models_dir or Path(ctx.data_dir) / "models"  # where `models install` puts them
    return Understander(QuickTranscriber(settings.stt, models_dir, way=way), interpret, ctx.blobs)
