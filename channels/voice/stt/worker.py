"""Transcription workers: claim a job from the core's durable queue, transcribe its recording, hand back text.

A worker loads each engine once and keeps it; while it decodes, a heartbeat thread renews the job's lease,
so only a worker that died (kill -9, power cut) lets its lease run out and the job go to another worker.
Failures are sorted by kind: a recording ffmpeg cannot decode is the sender's (failed at once, with the
reason, on the ticket); anything else is ours (retried with backoff by the queue).

`WorkerPool` runs N worker processes (the `helpdesk-gateway worker` command, and `serve` in-process); each
process builds its own core from the configuration, as a process started anywhere that reaches the database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from dataclasses import asdict
from typing import Callable

from ticketing.storage import BlobStore
from ticketing.transcription import Claim, JobQueue, Recognised

from .audio import AudioError
from .transcriber import Transcriber

log = logging.getLogger(__name__)


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class Worker:
    def __init__(self, queue: JobQueue, blobs: BlobStore, transcriber: Transcriber, *, name: str | None = None,
                 default_language: str = "it", poll_seconds: float = 0.5):
        self.queue, self.blobs, self.transcriber = queue, blobs, transcriber
        self.name = name or worker_name()
        self.default_language = default_language
        self.poll = poll_seconds
        self.renew_every = max(0.2, queue.lease.total_seconds() / 3)

    def run_once(self) -> bool:
        """Claim and process one job; False when none was due."""
        claim = self.queue.claim(self.name)
        if claim is None:
            return False
        self._process(claim)
        return True

    def run(self, stop: threading.Event) -> None:
        self.transcriber.preload()
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
                t = self.transcriber.transcribe(data, language)
            except AudioError as e:
                self.queue.fail(claim, f"the recording cannot be read: {e}", retry=False)
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
    )
    models_dir = settings.models_dir or (core.config.storage.data_dir / "models")
    return Worker(queue, core.blobs, Transcriber(settings, models_dir, engine), name=worker_name(index), poll_seconds=settings.poll_seconds)


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
