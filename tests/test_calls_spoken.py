"""Spoken calls end to end: synthetic callers phone the gateway over SIP and the desk gets the right fields.

Six calls of the spoken test set (bench/spoken/calls.toml), two per language, said by voices the IVR prompts
never use (festival for Italian and English, espeak-ng variants for French; bench/spoken/voices.py) over G.711
µ-law with line noise, are placed by sipp (Debian's sip-tester) to the gateway's real SIP transport: the
caller picks the language and "report a problem" with keys, says the name, the asset and the problem (each
ended with #) and answers "is the whole office blocked?". The gateway records, makes the ticket, and its
transcription worker (the default install: `models install --defaults`, the engine the registry picks per
language) transcribes the recordings; the ticket must then hold what the caller sent, a transcript of every
answer and a problem, and (Italian and English) name the caller and the asset right, as the desk shows them. The IVR here does not say answers back (`voice.ivr.confirm = false`): the sipp caller
keeps a fixed timeline; the confirmation has its own tests (tests/test_voice_confirm.py) and its figures in
bench/calls.py.

Three calls (one per language) run at once, twice: the whole module takes about two minutes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import ROOT, make_config, missing
from tests.voice_support import Caller, correlation, line_audio, read_wav, require_sip_peers, start_sipp

PROMPTS = ROOT / "config" / "prompts"
# Two calls per language (call id, voice): assets named by an alias or by kind, place and number; names with the
# office as a hint, the surname first, or unknown to the directory. Italian and English: one call with each voice.
# French: the Swiss French variant both times; what Whisper base makes of it is checked for transcripts only
# (its asset and name figures are far under target: BENCHMARKS.md, "Calls understood").
CALLS = (("it-02", 1), ("it-13", 0), ("fr-02", 0), ("fr-05", 0), ("en-01", 0), ("en-02", 1))
UNDERSTOOD = ("it", "en")  # languages whose name and asset must come out right here
MENU_KEY = {"it": "1", "fr": "2", "en": "3"}


def spoken():
    from bench.calls import load_set
    from bench.spoken.voices import missing_tools

    gone = missing_tools()
    if gone:
        missing(f"the synthetic callers need {', '.join(gone)} (Debian: festival festvox-itapc16k festvox-italp16k "
                "festvox-kallpc16k festvox-us-slt-hts espeak-ng sox)")
    by_id = {c.id: c for c in load_set()}
    return [(by_id[i], first) for i, first in CALLS]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A core on SQLite with the default speech models, its transcription worker, and the SIP transport."""
    require_sip_peers()
    from channels.voice import prompts
    from channels.voice.settings import VoiceSettings
    from channels.voice.sip.service import SipService
    from channels.voice.stt.worker import worker_from_core
    from gateway.app import build_core, channel_context, seed_directory

    tmp = tmp_path_factory.mktemp("spoken")
    env = {**os.environ, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp / "data")}
    env.pop("HELPDESK_GATEWAY__VOICE__STT__MODELS_DIR", None)
    cli = Path(sys.executable).with_name("helpdesk-gateway")
    done = subprocess.run([str(cli), "models", "install", "--defaults"], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        missing(f"models install --defaults gave no model for every language:\n{done.stdout}\n{done.stderr}")
    prompts.build(PROMPTS)
    core = build_core(make_config(tmp, f"sqlite:///{tmp / 'helpdesk.sqlite3'}"))
    seed_directory(core)
    settings = VoiceSettings(
        enabled=True,
        prompts_dir=PROMPTS,
        sip={"port": 0, "rtp_port": 0, "log_level": 3, "limits": {"calls_per_source": 4, "attempts_burst": 40}},
        ivr={"gather_timeout": 4.0, "confirm": False},
    )
    worker = worker_from_core(core)
    for language in MENU_KEY:
        worker.transcriber.engine(language)  # loaded once, before the calls
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    service = SipService(channel_context(core, settings), settings, tmp / "calls" / "sip")
    asyncio.run(service.start())
    service.core = core
    yield service
    asyncio.run(service.stop())
    stop.set()
    thread.join(60)
    core.close()


def prompt_seconds(language: str, name: str) -> float:
    with wave.open(str(PROMPTS / language / f"{name}.wav")) as w:
        return w.getnframes() / w.getframerate()


def caller_for(call, first: int, caller_id: str) -> Caller:
    """The sipp caller's timeline: keys barge in on the prompts; each answer starts two seconds after the prompt
    that asks for it should have ended (room for a busy machine) and is ended with #."""
    from bench.spoken.voices import VOICES, recording

    voice = VOICES[call.lang][first]
    pcm = {q: read_wav(recording(text, voice)) for q, text in (("name", call.name), ("asset", call.asset), ("anomaly", call.problem))}
    ask = {"name": "say-name", "asset": "say-asset", "anomaly": "say-problem"}
    seconds = 8 + sum(len(p) / 8000 + prompt_seconds(call.lang, ask[q]) + 2.5 for q, p in pcm.items())
    c = Caller(seconds, caller_id=caller_id, bye_timeout=90)
    c.key(1.0, MENU_KEY[call.lang])
    c.key(1.6, "1")  # report a problem
    at = 1.6
    for question, audio in pcm.items():
        at += prompt_seconds(call.lang, ask[question]) + 2.0
        c.stream.speech(at, audio)
        c.sent[question] = line_audio(audio)
        at += len(audio) / 8000 + 0.4
        c.key(at, "#")
    c.key(at + 1.2, "1" if call.urgent else "2")  # is the whole office blocked?
    return c


def ticket_of(gateway, phone: str):
    from ticketing.models import Message

    with gateway.core.sessions() as s:
        rows = s.scalars(select(Message).where(Message.sender_phone == phone)).all()
        numbers = {gateway.core.desk.number(m.ticket) for m in rows}
    assert len(numbers) == 1, f"{phone}: tickets {numbers}"
    return numbers.pop()


def jobs(gateway, number: str) -> dict[str, str]:
    """question -> status of the ticket's transcription jobs."""
    from ticketing.models import Ticket
    from ticketing.transcription import TranscriptionJob

    with gateway.core.sessions() as s:
        ids = [t.id for t in s.scalars(select(Ticket)) if gateway.core.desk.number(t) == number]
        return dict(s.execute(select(TranscriptionJob.question, TranscriptionJob.status).where(TranscriptionJob.ticket_id.in_(ids))).all())


def transcribed(gateway, number: str) -> bool:
    j = jobs(gateway, number)
    return len(j) == 3 and all(st in ("done", "failed") for st in j.values())


def name_close(value: str | None, expected: str) -> bool:
    from rapidfuzz import fuzz

    from bench.calls import plain

    return bool(value) and fuzz.token_sort_ratio(plain(value), plain(expected)) >= 85


@pytest.mark.timeout(900)
def test_six_spoken_calls_over_sip_leave_tickets_naming_the_caller_the_asset_and_the_problem(gateway, tmp_path):
    from bench.calls import asset_right, name_right

    calls = spoken()
    results = []
    for batch in (calls[0::2], calls[1::2]):  # one call per language at once (a process answers four)
        running = []
        for i, (call, first) in enumerate(batch):
            phone = f"+3906{len(results) + i:07d}"
            c = caller_for(call, first, phone)
            scenario = c.write(tmp_path / call.id, call.id)
            running.append((call, phone, c, start_sipp(scenario, gateway.port)))
        for call, phone, c, proc in running:
            out, err = proc.communicate(timeout=150)
            assert proc.returncode == 0, f"{call.id}: sipp failed\n{err[-1500:]}\n{out[-1500:]}"
            results.append((call, phone, c))
    wrong = {}
    numbers = [ticket_of(gateway, phone) for _, phone, _ in results]
    # 18 recordings for one worker: about a minute on an idle machine; minutes at a load average of 15
    deadline = time.monotonic() + 600
    while not all(transcribed(gateway, n) for n in numbers):
        assert time.monotonic() < deadline, f"transcription not finished: {[jobs(gateway, n) for n in numbers]}"
        time.sleep(0.5)
    for (call, phone, c), number in zip(results, numbers):
        t = gateway.core.desk.ticket(number)
        assert t.language == call.lang
        heard = {a.filename: read_wav(gateway.core.blobs.path(a.sha256)) for m in t.messages for a in m.attachments}
        for question in ("name", "asset", "anomaly"):
            assert correlation(c.sent[question], heard[f"answer-{question}.wav"]) >= 0.9, (call.id, question)
        if call.urgent:
            assert t.field("urgency").value in ("high", "critical"), call.id
        for question in ("name", "asset", "anomaly"):  # every answer was transcribed, by the engine for the language
            transcript = t.field(f"transcript_{question}")
            assert transcript is not None and transcript.value, (call.id, question)
        f = {name: (t.field(name).value if t.field(name) else None) for name in ("reporter_name", "asset", "anomaly")}
        assert f["anomaly"], call.id
        # A directory user's name exactly; an unknown caller's as an operator can still read it: nothing checks its
        # spelling, and over a live SIP line Whisper hears "Sarah Johnson" as "Sarah Johnston" now and then.
        named = name_right(f["reporter_name"], call.expect_name) or (not call.directory and name_close(f["reporter_name"], call.expect_name))
        if call.lang in UNDERSTOOD and not (named and asset_right(f["asset"], call.expect_asset)):
            wrong[call.id] = f
    assert not wrong, f"fields not understood: {wrong}"
