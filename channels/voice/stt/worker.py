"""Transcription workers: claim a job from the core's durable queue, transcribe its recording, hand back text.

A worker loads each engine once and keeps it; while it decodes, a heartbeat thread renews the job's lease,
so only a worker that died (kill -9, power cut) lets its lease run out and the job go to another worker.
Failures are sorted by kind: a recording ffmpeg cannot decode is the sender's (failed at once, with the
reason, on the ticket); anything else is ours (retried with backoff by the queue).

Constrained answers: the answer to "which asset?" is decoded first against a grammar of the inventory's names,
aliases and tags (and "who are you?" against the directory's names) where the engine takes runtime grammars
(Vosk small and lgraph models); when the caller said something else (nothing of the grammar recognised, or
with low confidence) the recording is decoded freely, so the operator always gets what was said.

`WorkerPool` runs N worker processes (the `helpdesk-gateway worker` command, and `serve` in-process); each
process builds its own core from the configuration, as a process started anywhere that reaches the database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from dataclasses import asdict
from typing import Callable

from ticketing.storage import BlobStore
from ticketing.transcription import Claim, JobQueue, Recognised

from .audio import AudioError
from .base import EngineError
from .transcriber import Transcriber

log = logging.getLogger(__name__)


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


GRAMMAR_MIN_CONFIDENCE = 0.6  # below this a grammar result is not trusted: decode freely
# Seconds of Whisper window for a recording of up to 28 s (`WhisperEngine.short`, with word timings), or None for
# faster-whisper's padded 30 s. Measured on the real speech corpus with Whisper base (bench/stt.py wer --window,
# BENCHMARKS.md "Time to transcript"), quiet machine: Italian WER padded 18.8 %, 10 s 17.9 %, 15 s 17.1 %;
# English 5.1 / 6.5 / 5.6 %; CPU per second of audio 0.56 / 0.18 / 0.21 (it). 15 s: Italian better, English
# within its 6 % target, 2.6x less CPU, and 4 calls at once p95 6.5 s after the hang-up against 23 s padded
# (bench/time_to_transcript.py, one worker). It was off for a while because CI misread synthetic answers with it;
# those runs' audio was dithered at random by sox (now -D), and a confirmed answer is no longer decoded again.
SHORT_WINDOW: float | None = 15.0
# The questions whose answers get the padded 30 s all the same: an asset answer reaches a job only when the caller
# did not confirm what the IVR heard (`transcription.heard_transcripts`), a hard answer then, and padded, Whisper
# read a synthetic "the printer on the second floor" over SIP that 10 and 15 s both misheard ("print around the
# second flower"). Names stay in the window: an unknown caller's is never confirmed, so it is decoded on most
# calls, and padding it as well took 4 calls' p95 from 6.5 to 13.8 s.
PADDED_QUESTIONS = frozenset({"asset"})

# A problem decoded with hints that gives fewer words than this per second of speech (people say 2–3) wrote the
# hints or a few numbers instead of what was said: decoded again without hints. Answers under THIN_SPEECH_SECONDS
# of speech are short by nature ("la stampante").
THIN_WORDS_PER_SECOND = 1.0
THIN_SPEECH_SECONDS = 2.0


def directory_phrases(directory) -> dict[str, list[str]]:
    """The phrases callers may answer with, per question: asset names, aliases and tags; people's names."""
    assets: list[str] = []
    for a in getattr(directory, "assets", ()):
        assets.extend(p for p in (a.name, *a.aliases, a.tag) if p)
    names = [u.name for u in getattr(directory, "users", ())]
    clean = lambda items: sorted({" ".join(_words_of(p)) for p in items} - {""})  # noqa: E731
    # The problem question: callers name the thing that is broken, so its hints are the assets' names
    # (a hint for Whisper; never a grammar, a problem is free speech).
    return {"asset": clean(assets), "name": clean(names), "anomaly": clean(a.name for a in getattr(directory, "assets", ()))}


def _words_of(phrase: str) -> list[str]:
    return "".join(ch.lower() if ch.isalnum() else " " for ch in phrase).split()


def waiting_note(language: str | None) -> str:
    """What the desk's ticket page shows while a language has no model (the desk's language is Italian)."""
    return f"trascrizione non disponibile: nessun modello per {language or '?'}"


class Worker:
    def __init__(self, queue: JobQueue, blobs: BlobStore, transcriber: Transcriber, *, name: str | None = None,
                 default_language: str = "it", poll_seconds: float = 0.5, phrases: Callable[[], dict[str, list[str]]] | None = None,
                 rediscover_seconds: float = 30.0):
        self.queue, self.blobs, self.transcriber = queue, blobs, transcriber
        self.phrases = phrases  # question -> the phrases of its grammar (from the directory), when grammars are used
        self.name = name or worker_name()
        self.default_language = default_language
        self.poll = poll_seconds
        self.renew_every = max(0.2, queue.lease.total_seconds() / 3)
        self.rediscover = rediscover_seconds
        self._served: set[str] = set()
        self._checked: tuple[float, int | None] | None = None  # (when, models directory stamp) of the last look
        self._unserved_said: set[str | None] = set()

    # -- which languages this worker serves ---------------------------------------------------------------------
    def served(self) -> set[str]:
        """The languages this worker has a model for, looked at again when the models directory changes (a
        stat per poll) or every `rediscover_seconds`: a model `models install` adds is used with no restart.
        Languages of waiting jobs with no model are marked on their tickets, once."""
        now, stamp = time.monotonic(), self.transcriber.models_stamp()
        if self._checked is not None and self._checked[1] == stamp and now - self._checked[0] < self.rediscover:
            return self._served
        self._checked = (now, stamp)
        wanted = set(self.transcriber.settings.languages) | self.queue.pending_languages()
        languages = {lang or self.default_language for lang in wanted}
        served = {lang for lang in languages if self.transcriber.available(lang)}
        for lang in sorted(served - self._served):
            if lang in self._unserved_said:
                log.info("speech-to-text for %s: a model is here now; its waiting jobs are picked up", lang)
                self._unserved_said.discard(lang)
        self._served = served
        for lang in sorted(wanted - {None} - served) + ([None] if None in wanted and self.default_language not in served else []):
            if lang not in self._unserved_said:
                log.warning("speech-to-text for %s: no model on this machine (helpdesk-gateway models install --defaults); "
                            "its jobs wait", lang or self.default_language)
                self._unserved_said.add(lang)
            self.queue.mark_waiting(lang, waiting_note(lang or self.default_language))
        return served

    def run_once(self) -> bool:
        """Claim and process one job of a language this worker serves; False when none was due."""
        served = self.served()
        if not served:
            return False
        claim = self.queue.claim(self.name, served, unlabelled=self.default_language in served)
        if claim is None:
            return False
        self._process(claim)
        return True

    def run(self, stop: threading.Event) -> None:
        self.served()  # loads the engines now and says, once, which languages have no model
        log.info("transcription worker %s started", self.name)
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the database went away: wait and try again, never die on it
                log.exception("worker %s: claiming failed", self.name)
                busy = False
            if not busy:
                stop.wait(self.poll)
        log.info("transcription worker %s stopped", self.name)

    def _process(self, claim: Claim) -> None:
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(claim, done), daemon=True)
        beat.start()
        try:
            language = claim.language or self.default_language
            try:
                data = self.blobs.get(claim.blob_sha256)
            except FileNotFoundError:
                self.queue.fail(claim, f"recording {claim.blob_sha256} is not in the blob store")
                return
            try:
                t = self._transcribe(data, language, claim.question)
            except AudioError as e:
                self.queue.fail(claim, f"the recording cannot be read: {e}", retry=False)
                return
            except EngineError as e:  # the model went away under us: not the job's fault, no attempt spent
                self.transcriber.forget(language)
                self._checked = None
                self.queue.defer(claim, str(e), self.poll)
                return
            except Exception as e:
                log.exception("job %d: transcription failed", claim.job_id)
                self.queue.fail(claim, f"{type(e).__name__}: {e}")
                return
            result = Recognised(t.text, t.confidence, t.engine, t.model, [asdict(w) for w in t.words], t.silent)
            if self.queue.complete(claim, result):
                log.info("job %d (%s, ticket %d) done by %s: %.2f %r", claim.job_id, claim.question, claim.ticket_id, t.engine, t.confidence, t.text[:80])
        finally:
            done.set()
            beat.join()

    def _transcribe(self, data: bytes, language: str, question: str):
        grammar = self._grammar(language, question)
        windowed = question not in PADDED_QUESTIONS
        if grammar is not None and grammar.bias:  # hints, not a constraint: one decoding with them
            t = self.transcriber.transcribe(data, language, grammar, windowed=windowed)
            if question == "anomaly" and not t.silent and self._says_too_little(t.text, data, language):
                # The problem's hints are only a nudge (the assets' names): a decoding that wrote them, or a few
                # numbers, for seconds of speech ("2, stampante ufficio") is decoded again without them.
                free = self.transcriber.transcribe(data, language, windowed=windowed)
                if len(free.text.split()) > len(t.text.split()):
                    log.info("hinted problem transcript %r said too little for the speech: %r kept instead", t.text, free.text)
                    return free
            return t
        if grammar is not None and question != "anomaly":
            t = self.transcriber.transcribe(data, language, grammar, windowed=windowed)
            if t.silent or (t.text and t.confidence >= GRAMMAR_MIN_CONFIDENCE):
                return t
        return self.transcriber.transcribe(data, language, windowed=windowed)

    def _says_too_little(self, text: str, data: bytes, language: str) -> bool:
        from . import audio

        rate = self.transcriber.engine(language).sample_rate
        seconds = audio.speech_seconds(audio.load(data, rate).pcm, rate)
        return seconds >= THIN_SPEECH_SECONDS and len(text.split()) < THIN_WORDS_PER_SECOND * seconds

    def _grammar(self, language: str, question: str):
        if self.phrases is None:
            return None
        try:
            phrases = self.phrases().get(question)
            return self.transcriber.grammar(language, phrases) if phrases else None
        except Exception as e:  # noqa: BLE001 - no usable grammar (no phrase in the vocabulary): decode freely
            log.debug("no grammar for %s/%s: %s", language, question, e)
            return None

    def _heartbeat(self, claim: Claim, done: threading.Event) -> None:
        while not done.wait(self.renew_every):
            try:
                if not self.queue.renew(claim):
                    log.warning("job %d: lease lost while working on it", claim.job_id)
                    return
            except Exception:
                log.exception("job %d: renewing the lease failed", claim.job_id)


# -- running workers from a configuration -------------------------------------------------------------------------
def stt_settings(config):
    """The `[voice.stt]` section when the configuration has one, else the defaults."""
    from .settings import SttSettings

    return getattr(getattr(config, "voice", None), "stt", None) or SttSettings()


def worker_from_core(core, index: int = 0, engine: str | None = None, lease_seconds: float | None = None) -> Worker:
    settings = stt_settings(core.config)
    if lease_seconds is not None:
        settings = settings.model_copy(update={"lease_seconds": lease_seconds})
    queue = JobQueue(
        core.sessions,
        core.lifecycle,
        core.intake.directory.get,
        lease_seconds=settings.lease_seconds,
        backoff_seconds=settings.backoff_seconds,
        pipeline=core.intake.pipeline,  # a call's answers go through the configured extraction steps
    )
    models_dir = settings.models_dir or (core.config.storage.data_dir / "models")
    cache: dict = {}

    def phrases() -> dict[str, list[str]]:
        directory = core.intake.directory.get()  # a snapshot, reloaded by the cache when stale
        if cache.get("of") is not directory:
            cache.update({"of": directory, "phrases": directory_phrases(directory)})
        return cache["phrases"]

    return Worker(queue, core.blobs, Transcriber(settings, models_dir, engine, window=SHORT_WINDOW), name=worker_name(index),
                  poll_seconds=settings.poll_seconds, phrases=phrases if settings.grammars else None,
                  rediscover_seconds=settings.rediscover_seconds)


def _process_main(config_path: str | None, index: int, engine: str | None, lease_seconds: float | None, stop) -> None:
    from gateway.app import build_core
    from gateway.config import load_config

    core = build_core(load_config(config_path), upgrade=False)
    try:
        worker_from_core(core, index, engine, lease_seconds).run(stop)
    finally:
        core.close()


class WorkerThreads:
    """Workers as threads of the current process (`serve`'s in-process default): each has its own engines;
    the engines decode in C/C++ outside the GIL."""

    def __init__(self, core, count: int, engine: str | None = None):
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=worker_from_core(core, i, engine).run, args=(self.stop_event,), name=f"stt-worker-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout)


class WorkerPool:
    """N worker processes, started and stopped together (`serve` in-process, or `helpdesk-gateway worker`)."""

    def __init__(self, config_path: str | None, processes: int, engine: str | None = None,
                 lease_seconds: float | None = None, target: Callable = _process_main):
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine or DB connection inherited
        self.stop_event = ctx.Event()
        self.procs = [ctx.Process(target=target, args=(config_path, i, engine, lease_seconds, self.stop_event), name=f"stt-worker-{i}") for i in range(processes)]

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for p in self.procs:
            p.join(timeout)
            if p.is_alive():
                p.terminate()

    def join(self) -> None:
        for p in self.procs:
            p.join()
