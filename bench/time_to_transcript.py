"""Bench: time to transcript, from a call's hang-up to every one of its answers transcribed on the ticket.

    .venv/bin/python bench/time_to_transcript.py --models-dir <data_dir>/models              # 4 calls at once, 3 rounds
    .venv/bin/python bench/time_to_transcript.py --models-dir DIR --calls 4 --rounds 3 --workers 2

The calls are the spoken set's (bench/spoken/calls.toml: a name, an asset and a problem, a few seconds each,
said by the synthetic voices of bench/spoken/voices.py through G.711 at 8 kHz), driven through the real IVR
(`Calls` built by `channels/voice/build.py`, confirmation on, so the quick transcriber works during the call as
in production) by the scripted caller of bench/calls.py, on a core from `gateway.app.build_core` (temporary
SQLite) with the transcription workers `serve` runs in-process (`WorkerThreads`, `voice.stt.workers`).
A call's recordings are delivered, and their jobs enqueued, when it ends; what is timed is from then to the
last of its jobs done (its transcripts on the ticket). An answer the caller confirmed has its job done in the intake
transaction, with the words the IVR heard (`transcription.heard_transcripts`): the workers decode the rest. In the
same run:
- the floor: one call alone, `--rounds` times;
- `--calls` calls at once, ending within a second of each other, `--rounds` times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calls import LANGUAGES, Outcome, drive, load_set  # noqa: E402
from bench.spoken.voices import VOICES, Line, missing_tools, recording  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Rig:
    def __init__(self, tmp: Path, models_dir: Path | None, workers: int | None):
        from channels.voice.build import make_calls
        from channels.voice.stt.worker import WorkerThreads
        from gateway.app import build_core, channel_context, seed_directory
        from gateway.config import load_config

        env = {"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp)}
        if models_dir is not None:
            env["HELPDESK_GATEWAY__VOICE__STT__MODELS_DIR"] = str(models_dir)
        if workers is not None:
            env["HELPDESK_GATEWAY__VOICE__STT__WORKERS"] = str(workers)
        self.config = load_config(None, environ={**os.environ, **env})
        self.core = build_core(self.config)
        seed_directory(self.core)
        voice = self.config.voice
        self.calls = make_calls(channel_context(self.core, voice), voice, tmp / "calls")
        self.workers = WorkerThreads(self.core, voice.stt.workers)  # as `serve` runs them
        self.workers.start()
        self.n_workers = voice.stt.workers

    def close(self) -> None:
        self.workers.stop(60)
        self.core.close()

    def jobs_done(self, number: str) -> bool:
        from sqlalchemy import select

        from ticketing.models import Ticket
        from ticketing.transcription import TranscriptionJob

        with self.core.sessions() as s:
            ids = [t.id for t in s.scalars(select(Ticket)) if self.core.desk.number(t) == number]
            statuses = list(s.scalars(select(TranscriptionJob.status).where(TranscriptionJob.ticket_id.in_(ids))))
        return bool(statuses) and all(st in ("done", "failed") for st in statuses)

    def one(self, call, first: int, line: Line, index: int, out: list, lock: threading.Lock, start: threading.Barrier | None) -> None:
        if start is not None:
            start.wait()
        o = Outcome(call, "after", VOICES[call.lang][first].name)
        number = drive(self.calls, call, first, line, f"+3902{index:06d}", f"ttt-{index}-{time.time_ns()}", o)
        ended = time.perf_counter()
        if number is None:
            raise RuntimeError(f"call {call.id} made no ticket")
        while not self.jobs_done(number):
            time.sleep(0.05)
        with lock:
            out.append((time.perf_counter() - ended, call.id))


def p95(values: list[float]) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(np.ceil(0.95 * len(v))) - 1))]


def job_cpu(models_dir: Path | None, calls: list, windows: list[str], line: Line) -> None:
    """CPU seconds per transcription job, one job at a time on one thread (what a worker thread spends; on a busy
    machine the wall-clock wait measures the others' load, the CPU does not): every answer of `calls`, decoded as
    a worker does it (hints per question, beam and hints as configured) with each window."""
    import resource

    from channels.voice.stt.settings import SttSettings
    from channels.voice.stt.transcriber import Transcriber
    from channels.voice.stt.worker import directory_phrases
    from gateway.app import build_core, seed_directory
    from gateway.config import load_config

    tmp = Path(tempfile.mkdtemp(prefix="ttt-cpu-"))
    core = build_core(load_config(None, environ={**os.environ, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp)}))
    seed_directory(core)
    phrases = directory_phrases(core.intake.directory.get())
    core.close()
    answers = [(recording(text, VOICES[c.lang][i % 2], line), c.lang, q) for i, c in enumerate(calls)
               for q, text in (("name", c.name), ("asset", c.asset), ("anomaly", c.problem))]
    print(f"| window | jobs | CPU s per job (1 thread) | answer s (mean) | load before → after |")
    print("|---|---|---|---|---|")
    texts = {}
    for w in windows:
        load0 = loadavg()
        t = Transcriber(SttSettings(models_dir=models_dir), models_dir, window=None if w == "padded" else float(w))
        for lang in {a[1] for a in answers}:
            t.engine(lang)
        cpu = 0.0
        seconds = 0.0
        for path, lang, q in answers:
            g = t.grammar(lang, phrases[q])
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            got = t.transcribe(path, lang, g)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu += (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
            seconds += got.duration
            texts.setdefault(str(path), {})[w] = got.text
        print(f"| {w} | {len(answers)} | {cpu / len(answers):.2f} | {seconds / len(answers):.1f} | {load0} → {loadavg()} |", flush=True)
    same = sum(len(set(v.values())) == 1 for v in texts.values())
    print(f"same text with every window: {same}/{len(texts)}")
    for k, v in texts.items():
        if len(set(v.values())) > 1:
            print(f"  {Path(k).name}: {v}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, help="transcription worker threads (default: voice.stt.workers)")
    ap.add_argument("--lang", action="append", choices=LANGUAGES)
    ap.add_argument("--window", default=None, help="the workers' Whisper window for short recordings, seconds, or "
                    "'padded' for faster-whisper's own 30 s (default: channels/voice/stt/worker.py SHORT_WINDOW)")
    ap.add_argument("--job-cpu", help="instead: CPU s per job for these windows (comma-separated, e.g. padded,10), "
                    "on the answers of --rounds × (--calls + 1) calls")
    args = ap.parse_args()
    if args.window is not None:
        from channels.voice.stt import worker

        worker.SHORT_WINDOW = None if args.window == "padded" else float(args.window)
    if missing_tools():
        print(f"missing: {', '.join(missing_tools())}", file=sys.stderr)
        return 2
    pool = [c for c in load_set() if not args.lang or c.lang in args.lang]
    pool = [c for i in range(len(pool)) for c in pool[i::7][:1]][: (args.rounds * (args.calls + 1))]  # spread over the set
    line = Line()
    if args.job_cpu:
        job_cpu(args.models_dir, pool, args.job_cpu.split(","), line)
        return 0
    for c in pool:  # synthesised before anything is timed
        for v in VOICES[c.lang]:
            for text in (c.name, c.asset, c.problem, c.again):
                if text:
                    recording(text, v, line)
    load0 = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="ttt-bench-"))
    rig = Rig(tmp, args.models_dir, args.workers)
    lock = threading.Lock()
    floor: list = []
    together: list = []
    index = 0
    try:
        warm = pool[-1]  # the engines are loaded once per process
        rig.one(warm, 0, line, 999, [], lock, None)
        for r in range(args.rounds):
            rig.one(pool[index % len(pool)], r % 2, line, index, floor, lock, None)
            index += 1
        for r in range(args.rounds):
            barrier = threading.Barrier(args.calls)
            threads = []
            for i in range(args.calls):
                threads.append(threading.Thread(target=rig.one, args=(pool[index % len(pool)], i % 2, line, index, together, lock, barrier)))
                index += 1
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        rig.close()
    from channels.voice.stt import worker

    print(f"time to transcript (hang-up → every answer of the call transcribed), {os.cpu_count()} cores, "
          f"{rig.n_workers} worker thread(s), window {worker.SHORT_WINDOW or 'padded 30'} s, "
          f"load average {load0} before, {loadavg()} after")
    print(f"| calls at once | calls timed | p50 s | p95 s | max s |")
    print(f"|---|---|---|---|---|")
    for label, rows in (("1 (floor)", floor), (str(args.calls), together)):
        v = [s for s, _ in rows]
        print(f"| {label} | {len(v)} | {np.median(v):.2f} | {p95(v):.2f} | {max(v):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
