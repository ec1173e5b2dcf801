"""The faster-whisper engine (Whisper weights in CTranslate2 format, `faster-whisper` package, a dependency of the gateway).

The most accurate offline engine here. The model is a local directory (`model.bin`, `config.json`,
`tokenizer.json`, `vocabulary.txt`): never a hub name, so nothing is downloaded at run time. Silero
voice-activity detection (shipped inside faster-whisper) trims silence first, so silence costs nothing and
cannot make Whisper hallucinate text. Decoding is a beam search (5 by default) at temperature 0: deterministic.
No generic initial prompt: a help-desk vocabulary given as a prompt made Whisper repeat it on one-word clips
(bench/stt.py: 19.6 % WER against 5.2 %). Contextual hints are another matter: `grammar(phrases)` turns the
names a question expects (the directory's people, the inventory's assets) into hints given as `hotwords`
(or as the initial prompt, `hints="prompt"`), which bias the decoding toward them without constraining it
(bench/stt_bias.py measures each against no hints). English-only models (`*.en`, 51864-token vocabulary)
serve English only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from pathlib import Path

from .base import EngineError, Grammar, Transcript, Word, make_transcript

ENGLISH_ONLY_VOCAB = 51864  # the .en models' vocabulary; multilingual ones have 51865 or more


def is_model_dir(path: Path) -> bool:
    p = Path(path)
    return (p / "model.bin").exists() and (p / "config.json").exists() and ((p / "tokenizer.json").exists() or (p / "vocabulary.txt").exists())


def model_languages(path: Path) -> str | None:
    """'en' for an English-only model, None for a multilingual one."""
    vocab = Path(path) / "vocabulary.txt"
    if vocab.exists():
        with open(vocab, "rb") as f:
            n = sum(1 for _ in f)
        return "en" if n <= ENGLISH_ONLY_VOCAB else None
    return "en" if Path(path).name.endswith(".en") else None


ECHO_MAX_PROBABILITY = 0.05  # a word Whisper itself gave less than this, at the end, after the speech


def trim_hint_echo(words: list[Word]) -> list[Word]:
    """Whisper given hints sometimes goes on, after the speech, by reciting them ("My name is Sergio Colombo.
    Francesca Romano, Alessandro Colombo"). Those trailing words have no duration (squeezed at the end of the
    audio) or a probability near zero (bench/stt_bias.py: 0.01–0.03, against 0.4–0.99 for the words said):
    drop them from the end until a word that has both."""
    end = len(words)
    while end > 0 and (words[end - 1].end - words[end - 1].start < 0.02 or words[end - 1].confidence < ECHO_MAX_PROBABILITY):
        end -= 1
    return words[:end]


LOOP_REPEATS = 3  # the same run of words this many times in a row is Whisper looping, not a caller speaking
MAX_LENGTH = 448  # Whisper's decoder context: prompt (hints) + sot sequence + new tokens must fit in it
TOKENS_PER_SECOND = 10  # speech is 3-6 tokens a second; past this a window is looping (cap per 30-s window)
PREPEND_PUNCTUATION, APPEND_PUNCTUATION = "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、"  # faster-whisper's defaults
SHORT_SECONDS = 28  # `short` decodes up to this in one window (Whisper's is 30 s); longer goes to `transcribe`


def collapse_loops(words: list[Word], longest: int = 6) -> list[Word]:
    """Whisper base at temperature 0 can loop on a short clip ("cinque" → "c'è il c'è il …" ×55): a run of 1 to
    `longest` words repeated `LOOP_REPEATS` times or more in a row is kept once. People do repeat a word
    ("no, no"), hardly the same phrase three times running, so a real answer is left as it was said."""
    out = list(words)
    key = [w.word.strip(".,;:!?").lower() for w in out]
    for n in range(1, longest + 1):
        i = 0
        while i + n * LOOP_REPEATS <= len(out):
            run = key[i:i + n]
            j = i + n
            while key[j:j + n] == run:
                j += n
            if (j - i) // n >= LOOP_REPEATS:
                del out[i + n:j], key[i + n:j]
            i += 1
    return out


class WhisperEngine:
    name = "whisper"
    sample_rate = 16000

    def __init__(self, model_dir: str | Path, language: str, *, compute_type: str = "int8", cpu_threads: int = 1, beam_size: int = 5,
                 hints: str = "hotwords", num_workers: int = 1):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise EngineError("the 'faster-whisper' package is not installed (pip install faster-whisper)") from e
        path = Path(model_dir)
        if not is_model_dir(path):
            raise EngineError(f"{path} is not a CTranslate2 Whisper model directory (model.bin, config.json, tokenizer)")
        only = model_languages(path)
        if only is not None and language != only:
            raise EngineError(f"the Whisper model {path} is English-only; it cannot transcribe {language!r}")
        self.model = str(path)
        self.language = language
        self.beam_size = beam_size
        self.hints = hints  # "hotwords" | "prompt" | "off": how a question's expected phrases reach the decoder
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every call at INFO
        self._model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads,
                                   num_workers=num_workers, local_files_only=True)
        # One decoding at a time per model, unless it was built with several workers: CTranslate2 then runs
        # that many requests from different threads in parallel (the IVR's at-once transcriptions).
        self._lock = threading.Lock() if num_workers == 1 else contextlib.nullcontext()

    def for_language(self, language: str) -> "WhisperEngine":
        """The same loaded model for another language (a multilingual model is loaded once, not per language)."""
        only = model_languages(Path(self.model))
        if only is not None and language != only:
            raise EngineError(f"the Whisper model {self.model} is English-only; it cannot transcribe {language!r}")
        twin = object.__new__(WhisperEngine)
        twin.__dict__.update(self.__dict__)
        twin.language = language
        return twin

    def quick(self, pcm: bytes, grammar: Grammar | None = None, *, beam_size: int = 1, window: float = 0.0,
              vad: bool = False) -> tuple[str, float]:
        """One short answer decoded for a caller who waits (`short` without word timings). `vad`: Silero (shipped
        with faster-whisper) first cuts the silence around and inside the answer. Returns (text, confidence)."""
        import numpy as np

        if vad:
            from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

            samples = np.frombuffer(pcm, dtype=np.int16)
            spans = get_speech_timestamps(samples.astype(np.float32) / 32768.0, VadOptions(min_silence_duration_ms=300, speech_pad_ms=200))
            if not spans:
                return "", 0.0
            pcm = np.concatenate(collect_chunks(samples, spans)[0]).astype(np.int16).tobytes()
        t = self.short(pcm, grammar, beam_size=beam_size, window=window, words=False)
        return t.text, t.confidence

    def short(self, pcm: bytes, grammar: Grammar | None = None, *, beam_size: int | None = None, window: float = 0.0,
              words: bool = True) -> Transcript:
        """A short recording (up to `SHORT_SECONDS`) in one window: the encoder's input is `window` seconds of
        features (the recording padded with silence), or as long as the recording plus a second when it is longer;
        `window=0`: as long as the recording (at least 5 s); 30: Whisper's own padded window. The encoder is most
        of the cost and grows with its input (bench/confirm.py `--variants`); CTranslate2 takes a shorter input as
        it is, where faster-whisper's `transcribe` always pads to 30 s. No timestamp tokens, the new tokens
        capped by the recording's seconds (a short answer cannot loop for long), the hints in the previous-text
        prompt as faster-whisper's hotwords are; `words`: word timings and probabilities from the same encoder
        output (faster-whisper's alignment), as the ticket shows them. Longer recordings go to `transcribe`."""
        import math

        import numpy as np

        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        seconds = len(samples) / self.sample_rate
        if seconds > SHORT_SECONDS:
            return self.transcribe(pcm, grammar, beam_size=beam_size, word_timestamps=words)
        m = self._model
        features = m.feature_extractor(samples)
        frames = int(min(3000, 100 * max(window or 5, math.ceil(seconds + 1))))
        frames += frames % 2  # the encoder's convolution halves the frames
        features = features[:, :frames] if features.shape[1] >= frames else np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        tok = m.hf_tokenizer
        eot = tok.token_to_id("<|endoftext|>")
        start = [tok.token_to_id(t) for t in ("<|startoftranscript|>", f"<|{self.language}|>", "<|transcribe|>", "<|notimestamps|>")]
        prompt = start
        hinted = grammar is not None and grammar.phrases and self.hints != "off"
        if hinted:
            hints = tok.encode(" " + ", ".join(grammar.phrases), add_special_tokens=False).ids[: m.max_length // 2 - 1]
            prompt = [tok.token_to_id("<|startofprev|>"), *hints, *start]
        with self._lock:
            encoded = m.encode(np.ascontiguousarray(features.astype(np.float32)))
            r = m.model.generate(encoded, [prompt], beam_size=beam_size or self.beam_size, return_scores=True, suppress_blank=True,
                                 max_length=min(m.max_length, len(prompt) + TOKENS_PER_SECOND * math.ceil(seconds) + 16))[0]
            tokens = [i for i in r.sequences_ids[0] if i < eot]
            aligned = []
            if words and tokens:
                from faster_whisper.tokenizer import Tokenizer
                from faster_whisper.transcribe import merge_punctuations

                tokenizer = Tokenizer(tok, True, task="transcribe", language=self.language)
                aligned = m.find_alignment(tokenizer, [tokens], encoded, min(frames, math.ceil(seconds * 100)))[0]
                merge_punctuations(aligned, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)  # as faster-whisper's own words
        text = tok.decode(tokens).strip()
        confidence = round(math.exp(r.scores[0]), 4) if text else 0.0
        found = [Word(w["word"].strip(), round(float(w["start"]), 3), round(float(w["end"]), 3), round(float(w["probability"]), 4))
                 for w in aligned if w["word"].strip()]
        return self._finish(pcm, found, text, hinted, None if words else confidence)

    def grammar(self, phrases) -> Grammar | None:
        """Whisper takes no grammar: the phrases become hints that bias the decoding (None when hints are off)."""
        kept = tuple(dict.fromkeys(" ".join(p.split()) for p in phrases if p and p.strip()))
        return Grammar(kept, bias=True) if kept and self.hints != "off" else None

    def transcribe(self, pcm: bytes, grammar: Grammar | None = None, *, beam_size: int | None = None,
                   word_timestamps: bool = True, max_new_tokens: int | None = None) -> Transcript:
        import numpy as np  # comes with faster-whisper; not needed to look at model directories

        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        hints = ", ".join(grammar.phrases) if grammar is not None and grammar.phrases and self.hints != "off" else None
        if max_new_tokens is None:  # a window cannot say more than its seconds allow: a loop stops early
            import math

            max_new_tokens = 24 + TOKENS_PER_SECOND * math.ceil(min(30.0, len(samples) / self.sample_rate))
        if hints:  # the hints take up to half of Whisper's 448-token context: what is said gets the rest
            max_new_tokens = min(max_new_tokens, MAX_LENGTH // 2 - 8)
        with self._lock:
            segments, _ = self._model.transcribe(
                samples,
                language=self.language,
                beam_size=beam_size or self.beam_size,
                # faster-whisper cuts hints to the prompt's half of the context (223 tokens).
                hotwords=hints if self.hints == "hotwords" else None,
                initial_prompt=hints if self.hints == "prompt" else None,
                # No sampling fallback at higher temperatures: the same recording always gives the same text
                # (an operator re-running a job, a test), and VAD already keeps the windows that loop out.
                temperature=0.0,
                word_timestamps=word_timestamps,  # per-word confidences for the ticket; the IVR's quick path skips them
                vad_filter=True,
                vad_parameters={"min_silence_duration_ms": 500},
                condition_on_previous_text=False,
                max_new_tokens=max_new_tokens,  # the IVR's quick path: a short answer cannot loop for long
            )
            segments = list(segments)
        words = [
            Word(w.word.strip(), round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4))
            for s in segments
            for w in (s.words or ())
            if w.word.strip()
        ]
        text = " ".join(s.text.strip() for s in segments).strip()
        confidence = None
        if not word_timestamps and segments:  # no word probabilities: the segments' mean token probability
            import math

            confidence = round(sum(math.exp(s.avg_logprob) for s in segments) / len(segments), 4)
        return self._finish(pcm, words, text, bool(hints), confidence)

    def _finish(self, pcm: bytes, words: list[Word], text: str, hinted: bool, confidence: float | None) -> Transcript:
        """Loops collapsed, hints recited after the speech dropped; the confidence from the words unless given."""
        if words and len(kept := collapse_loops(words)) < len(words):
            words, text = kept, re.sub(r" (?=['’,.;:!?])", "", " ".join(w.word for w in kept))
        if hinted and words:
            kept = trim_hint_echo(words)
            if len(kept) < len(words):
                words, text = kept, re.sub(r" (?=['’,.;:!?])", "", " ".join(w.word for w in kept))
        t = make_transcript(self, pcm, words, text)
        if confidence is not None:
            from dataclasses import replace

            t = replace(t, confidence=confidence)
        return t
