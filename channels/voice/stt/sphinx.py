"""The pocketsphinx engine (CMU Sphinx, `pocketsphinx` package): the fallback that needs no model download.

English only, with the en-us acoustic model, dictionary and language model bundled in the wheel; 16 kHz.
Its accuracy on telephone speech is poor (see bench/stt.py): it is chosen only when nothing better has a
model for the language.
"""

from __future__ import annotations

import re
from pathlib import Path
import threading

from .base import EngineError, Grammar, Transcript, Word, make_transcript

_FRAME = 0.01  # pocketsphinx frames are 10 ms
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
_ALT = re.compile(r"\(\d+\)$")  # "get(2)": the dictionary's second pronunciation of "get"


class PocketsphinxEngine:
    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, language: str = "en"):
        if language != "en":
            raise EngineError("pocketsphinx has a bundled model for English only")
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError as e:  # pragma: no cover
            raise EngineError("the 'pocketsphinx' package is not installed") from e
        self.language = language
        self.model = str(Path(get_model_path()) / "en-us")
        self._decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL")
        self._lock = threading.Lock()  # one decoder: one utterance at a time

    def transcribe(self, pcm: bytes, grammar: Grammar | None = None) -> Transcript:
        with self._lock:
            d = self._decoder
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            segs = list(d.seg()) if d.hyp() is not None else []
        words = [
            Word(_ALT.sub("", s.word), round(s.start_frame * _FRAME, 3), round(s.end_frame * _FRAME, 3), round(min(1.0, s.prob), 4))
            for s in segs
            if not _FILLER.match(s.word)
        ]
        return make_transcript(self, pcm, words)
