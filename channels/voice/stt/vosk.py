"""The Vosk engine (Kaldi models via the `vosk` package): the primary engine, with runtime grammars.

A model is a directory (`am/`, `conf/`, `graph/`…, as alphacephei publishes them). Its sample rate is read
from `conf/mfcc.conf` (`--sample-frequency`, Kaldi's default 16000): audio is normalised to that rate, so an
8 kHz telephone model gets 8 kHz audio as recorded. Runtime grammars (a list of allowed phrases: yes/no,
digits, asset names) need a lookahead graph (`graph/HCLr.fst` + `graph/Gr.fst`, the small and lgraph models);
a model with a static HCLG graph decodes freely. A grammar word the model's vocabulary lacks is dropped and
reported once when the grammar is prepared (at start), not on every call; `[unk]` is added only when the
model has it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from .base import EngineError, Grammar, Transcript, Word, make_transcript

log = logging.getLogger(__name__)


def model_rate(model_dir: Path) -> int:
    conf = Path(model_dir) / "conf" / "mfcc.conf"
    if conf.exists():
        m = re.search(r"^--sample-frequency=(\d+)", conf.read_text(encoding="utf-8", errors="replace"), re.M)
        if m:
            return int(m.group(1))
    return 16000  # Kaldi's default


def supports_grammar(model_dir: Path) -> bool:
    graph = Path(model_dir) / "graph"
    return (graph / "HCLr.fst").exists() and (graph / "Gr.fst").exists()


def is_model_dir(path: Path) -> bool:
    p = Path(path)
    return (p / "am" / "final.mdl").exists() or (p / "final.mdl").exists()


class VoskEngine:
    name = "vosk"

    def __init__(self, model_dir: str | Path, language: str):
        try:
            import vosk
        except ImportError as e:  # pragma: no cover - the package is a dependency of the voice channel
            raise EngineError("the 'vosk' package is not installed") from e
        self._vosk = vosk
        path = Path(model_dir)
        if not is_model_dir(path):
            raise EngineError(f"{path} is not a Vosk model directory (no am/final.mdl)")
        vosk.SetLogLevel(-1)
        self.model = str(path)
        self.language = language
        self.sample_rate = model_rate(path)
        self.grammar_capable = supports_grammar(path)
        self._model = vosk.Model(str(path))
        self.has_unk = self._model.vosk_model_find_word("[unk]") >= 0
        self._grammars: dict[tuple[str, ...], Grammar] = {}

    def knows(self, word: str) -> bool:
        return self._model.vosk_model_find_word(word) >= 0

    def grammar(self, phrases: list[str] | tuple[str, ...]) -> Grammar | None:
        """Prepare a grammar once: phrases with a word the model lacks are dropped and logged here, once.

        Returns None when the model cannot take a grammar (static graph): the caller decodes freely."""
        key = tuple(phrases)
        if key in self._grammars:
            return self._grammars[key]
        if not self.grammar_capable:
            log.warning("vosk model %s has no lookahead graph: grammars are ignored, decoding freely", self.model)
            return None
        kept, missing = [], []
        for phrase in key:
            words = phrase.lower().split()
            lacking = [w for w in words if not self.knows(w)]
            if lacking:
                missing.extend(w for w in lacking if w not in missing)
            elif words:
                kept.append(" ".join(words))
        if missing:
            log.warning("vosk model %s lacks the grammar word(s) %s: phrases with them are left out", self.model, ", ".join(missing))
        if not kept:
            raise EngineError(f"no phrase of the grammar is in the vocabulary of {self.model}")
        g = Grammar(tuple(kept), tuple(missing))
        self._grammars[key] = g
        return g

    def transcribe(self, pcm: bytes, grammar: Grammar | None = None) -> Transcript:
        vosk = self._vosk
        if grammar is not None and self.grammar_capable:
            phrases = list(grammar.phrases) + (["[unk]"] if self.has_unk else [])
            rec = vosk.KaldiRecognizer(self._model, self.sample_rate, json.dumps(phrases, ensure_ascii=False))
        else:
            grammar = None
            rec = vosk.KaldiRecognizer(self._model, self.sample_rate)
        rec.SetWords(True)
        words: list[Word] = []
        chunk = self.sample_rate * 2 * 4  # 4 s of audio at a time: endpointing splits long answers into utterances
        for i in range(0, len(pcm), chunk):
            if rec.AcceptWaveform(pcm[i : i + chunk]):
                words.extend(_words(json.loads(rec.Result())))
        words.extend(_words(json.loads(rec.FinalResult())))
        words = [w for w in words if w.word != "[unk]"]
        return make_transcript(self, pcm, words, grammar=grammar is not None)


def _words(result: dict) -> list[Word]:
    return [Word(r["word"], round(r["start"], 3), round(r["end"], 3), round(float(r["conf"]), 4)) for r in result.get("result", ())]
