"""The calls layer every voice transport uses: a whole call through the real core, by phone status, and a call
cut off by a crash, recovered from its spool with its unfinished recording repaired."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.voice.calls import Calls
from channels.voice.flow import Digits, Gather, Hangup, Play, Record, SayDigits, Timeout
from ticketing.models import StoredAttachment as Attachment, Ticket
from ticketing.transcription import TranscriptionJob

from .conftest import missing


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> bytes:
    """Two seconds of real speech, 8 kHz mono 16-bit WAV (espeak-ng through ffmpeg)."""
    if not (shutil.which("espeak-ng") and shutil.which("ffmpeg")):
        missing("espeak-ng and ffmpeg (Debian packages) make the test speech")
    d = tmp_path_factory.mktemp("speech")
    subprocess.run(["espeak-ng", "-v", "it", "-w", str(d / "raw.wav"), "La stampante del terzo piano non stampa"], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(d / "raw.wav"), "-ac", "1", "-ar", "8000", str(d / "s.wav")], check=True)
    return (d / "s.wav").read_bytes()


def make_calls(core, tmp_path) -> Calls:
    return Calls(deliver=core.intake.submit, desk=core.desk, blobs=core.blobs, spool=tmp_path / "spool")


def answer(session, question: str, audio: bytes):
    session.recording_path(question).write_bytes(audio)
    return session.recorded(question)


def test_a_whole_report_call_makes_a_ticket_with_its_recordings_and_jobs(core, tmp_path, speech):
    calls = make_calls(core, tmp_path)
    session, actions = calls.open("call-abc@10.0.0.1", "+39 055 438 2101")  # Mario Rossi's office phone
    assert isinstance(actions[0], Gather)
    assert session.handle(Timeout()) == [Gather(("menu",), 1, 6.0)]  # no language key: Italian
    confirm = session.handle(Digits("1"))
    assert confirm[0].prompts[1].text == "Mario Rossi"  # the directory knew the caller id
    assert session.handle(Digits("1")) == [Record("asset", ("say-asset",), 15)]
    assert isinstance(answer(session, "asset", speech)[0], Record)
    assert isinstance(answer(session, "anomaly", speech)[0], Gather)
    end = session.handle(Digits("2"))  # the office is not blocked
    assert isinstance(end[0], Play) and end[0].prompts == ("ticket-created",)
    assert isinstance(end[1], SayDigits) and isinstance(end[-1], Hangup)
    number = session.ticket_number
    assert end[1].digits == "".join(ch for ch in number if ch.isdigit())
    pin = end[3].digits
    session.hang_up()
    assert not session.dir.exists()  # delivered: nothing left to recover
    view = core.desk.ticket(number)
    assert view.field("reporter_name").value == "Mario Rossi"
    with core.sessions() as s:
        files = s.scalars(select(Attachment.filename).where(Attachment.kind == "recording")).all()
        jobs = s.scalars(select(TranscriptionJob.question)).all()
        assert s.scalar(select(Ticket.pin)) == pin
    assert sorted(files) == ["answer-anomaly.wav", "answer-asset.wav"]
    assert sorted(jobs) == ["anomaly", "asset"]

    # Status by phone: from the reporter's phone at once, from another phone only with the PIN.
    assert core.desk.phone_status(end[1].digits, "+390554382101", None) == ("new", 1)
    assert core.desk.phone_status(end[1].digits, "+390000000000", None) is None
    assert core.desk.phone_status(end[1].digits, "+390000000000", pin) == ("new", 1)
    assert core.desk.phone_status(end[1].digits, None, "9999" if pin != "9999" else "0000") is None
    assert core.desk.phone_status("2026999999", None, pin) is None


def test_status_call_reads_the_status_to_the_reporter(core, tmp_path, speech):
    calls = make_calls(core, tmp_path)
    first, _ = calls.open("call-1", "+39 055 438 2144")
    first.handle(Timeout())
    first.handle(Digits("1"))
    first.handle(Digits("1"))
    answer(first, "asset", speech)
    answer(first, "anomaly", speech)
    digits = first.handle(Digits("1"))[1].digits
    first.hang_up()

    again, _ = calls.open("call-2", "+39 055 438 2144")
    again.handle(Timeout())
    assert again.handle(Digits("2")) == [Gather(("enter-ticket-number",), 12, 6.0)]
    heard = again.handle(Digits(digits))
    assert heard == [Play(("status-new", "level-1", "goodbye")), Hangup()]
    again.hang_up()


def test_a_call_cut_off_by_a_crash_is_delivered_at_the_next_start(core, tmp_path, speech):
    calls = make_calls(core, tmp_path)
    session, _ = calls.open("call-killed", "+39 333 000 1111")
    session.handle(Timeout())
    session.handle(Digits("1"))
    answer(session, "name", speech)
    # The process dies while the asset answer is being recorded: the recorder never finalised the header.
    unfinished = bytearray(speech)
    struct.pack_into("<I", unfinished, 4, 0)
    data_at = bytes(unfinished).find(b"data")
    struct.pack_into("<I", unfinished, data_at + 4, 0xFFFFFFFF)
    session.recording_path("asset").write_bytes(bytes(unfinished[: len(unfinished) - 3001]))

    after_restart = make_calls(core, tmp_path)
    assert after_restart.recover() == 1
    assert after_restart.recover() == 0  # once
    with core.sessions() as s:
        tickets = s.scalars(select(Ticket)).all()
        names = sorted(s.scalars(select(Attachment.filename).where(Attachment.kind == "recording")).all())
    assert len(tickets) == 1 and names == ["answer-asset.wav", "answer-name.wav"]
    view = core.desk.ticket(core.desk.number(tickets[0]))
    assert "hung up before the end" in view.messages[0].text
    stored = [a for a in view.messages[0].attachments if a.filename == "answer-asset.wav"][0]
    data = core.blobs.get(stored.sha256)
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # the header was repaired


def test_a_webhook_retried_after_a_restart_resumes_the_same_call(core, tmp_path, speech):
    calls = make_calls(core, tmp_path)
    session, _ = calls.open("CA123", "+39 333 000 2222")
    session.handle(Timeout())
    restarted = make_calls(core, tmp_path)
    resumed = restarted.get("CA123")
    assert resumed is not None and resumed.flow.state == "menu"
    again, first_actions = restarted.open("CA123", "+39 333 000 2222")
    assert again is resumed and first_actions == []
    assert restarted.get("unknown-call") is None


def test_a_call_hung_up_before_saying_anything_leaves_nothing(core, tmp_path):
    calls = make_calls(core, tmp_path)
    session, _ = calls.open("call-silent", None)
    session.hang_up()
    assert not session.dir.exists()
    assert make_calls(core, tmp_path).recover() == 0
    with core.sessions() as s:
        assert s.scalars(select(Ticket)).all() == []


def test_a_report_the_database_refused_stays_in_the_spool_until_delivered(core, tmp_path, speech):
    def down(contact):
        raise RuntimeError("database is down")

    calls = Calls(deliver=down, desk=core.desk, blobs=core.blobs, spool=tmp_path / "spool")
    session, _ = calls.open("call-db-down", "+39 333 000 3333")
    session.handle(Timeout())
    session.handle(Digits("1"))
    answer(session, "name", speech)
    session.hang_up()
    assert session.undelivered and session.dir.exists()  # nothing the caller said is lost

    calls.deliver = core.intake.submit  # the database is back: the next round of recovery delivers it
    assert calls.recover() == 1 and not session.dir.exists()
    with core.sessions() as s:
        assert len(s.scalars(select(Ticket)).all()) == 1


# -- the spool: versioned JSON, quarantined when unreadable ------------------------------------------------------
def test_the_spooled_state_is_json_that_restores_every_field_of_the_flow(core, tmp_path, speech):
    import json

    from channels.voice import spool
    from channels.voice.flow import Understood

    calls = make_calls(core, tmp_path)
    session, _ = calls.open("call-json", "+39 333 000 4444")
    session.handle(Timeout())
    session.handle(Digits("1"))
    answer(session, "name", speech)
    session.flow.candidate = Understood("asset", "PC-0042", "the printer", 0.8)  # a field added by the confirmation
    session.handle(Timeout())  # saved after every step
    doc = json.loads((session.dir / "state.json").read_text())
    assert doc["version"] == spool.VERSION and doc["call_id"] == "call-json"
    saved = spool.loads((session.dir / "state.json").read_bytes(), calls.flow_settings)
    assert vars(saved.flow) == vars(session.flow)  # every attribute, the report and its recordings included
    assert not list(session.dir.glob("*.pickle"))


@pytest.mark.parametrize("damage", ["garbage", "future-version", "unknown-class", "legacy-pickle", "recordings-only"])
def test_an_unreadable_spool_is_quarantined_with_its_recordings_and_recorded_as_ours(core, tmp_path, speech, damage):
    import json

    from ticketing.models import Rejection

    calls = make_calls(core, tmp_path)
    calls.reject = core.intake.reject
    session, _ = calls.open(f"call-{damage}", "+39 333 000 5555")
    session.handle(Timeout())
    session.handle(Digits("1"))
    answer(session, "name", speech)
    state = session.dir / "state.json"
    doc = json.loads(state.read_text())
    if damage == "garbage":
        state.write_bytes(b"\x80\x04not json at all")
    elif damage == "future-version":
        state.write_text(json.dumps({**doc, "version": 99}))
    elif damage == "unknown-class":
        doc["flow"]["report"]["__type__"] = "os:system"
        state.write_text(json.dumps(doc))
    elif damage == "legacy-pickle":
        state.rename(session.dir / "state.pickle")
    else:
        state.unlink()
    directory = session.dir

    restarted = make_calls(core, tmp_path)
    restarted.reject = core.intake.reject
    assert restarted.recover() == 0
    assert not directory.exists()
    (kept,) = (tmp_path / "spool" / "quarantine").iterdir()
    assert (kept / "answer-name.wav").read_bytes() == speech  # the caller's words are kept, never deleted
    with core.sessions() as s:
        (rejection,) = s.scalars(select(Rejection)).all()
        assert s.scalars(select(Ticket)).all() == []
    assert rejection.fault == "ours" and str(kept) in rejection.reason and rejection.channel == "voice"
    assert restarted.recover() == 0  # once: the quarantine is not taken for a call


def test_source_limits_rate_then_ban_and_concurrency():
    from channels.voice.settings import SipLimitSettings
    from channels.voice.sip.limits import SourceLimits

    now = [0.0]
    limits = SourceLimits(SipLimitSettings(attempts_per_second=1, attempts_burst=3, calls_per_source=2, ban_after=3,
                                           ban_seconds=30, exempt=["10.0.0.9"]), clock=lambda: now[0])
    assert limits.admit("a") is None and limits.admit("a") is None
    busy = limits.admit("a")  # a third call at once from a
    assert (busy.code, busy.retry_after) == (486, 60)
    assert limits.admit("b") is None  # another source is not affected
    limits.release("a")
    refused = [limits.admit("a") for _ in range(3)]  # out of tokens: 503, then banned: 403
    assert [r.code for r in refused] == [503, 503, 403] and refused[0].retry_after == 1
    now[0] += 10
    assert limits.admit("a").code == 403  # still banned, with the rest of the ban as Retry-After
    assert limits.admit("a").retry_after == 20
    now[0] += 21
    assert limits.admit("a") is None
    assert all(limits.admit("10.0.0.9") is None for _ in range(50))


def test_repeated_warnings_become_one_line_with_a_count(caplog):
    import logging

    from channels.logs import Throttled

    now = [0.0]
    log = logging.getLogger("test.throttled")
    t = Throttled(log, every=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        for _ in range(1000):
            t.warning("k", "refused %s", "1.2.3.4")
        t.warning("other", "another kind")
        now[0] += 11
        t.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused 1.2.3.4", "another kind", "refused 1.2.3.4 (999 like it in the last 11 s)"]
