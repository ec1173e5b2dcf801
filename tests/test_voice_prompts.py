"""`helpdesk-gateway prompts build` makes every prompt the IVR flow plays, as 8 kHz mono WAV a phone can play
without resampling, and never overwrites a recorded file; a call's report becomes one intake record."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

from channels.voice.flow import Report
from channels.voice.prompts import FLOW_PROMPTS, load_texts, missing_texts
from channels.voice.report import report_to_contact
from ticketing.contact import BlobRef
from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent


def test_every_flow_prompt_has_a_text_in_every_language():
    texts = load_texts(ROOT / "config" / "prompts")
    assert set(texts) == {"it", "fr", "en"} and missing_texts(texts) == {}


def test_build_synthesises_missing_prompts_and_keeps_recorded_ones(tmp_path):
    if not shutil.which("espeak-ng") or not shutil.which("ffmpeg"):
        missing("espeak-ng and ffmpeg are needed to build prompts")
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shutil.copy(ROOT / "config" / "prompts" / "texts.toml", prompts)
    recorded = prompts / "it" / "greeting.wav"
    recorded.parent.mkdir()
    recorded.write_bytes(b"RIFF-recorded-by-a-person")
    env = {**os.environ, "HELPDESK_GATEWAY__VOICE__PROMPTS_DIR": str(prompts), "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "d")}
    exe = Path(sys.executable).with_name("helpdesk-gateway")
    p = subprocess.run([str(exe), "prompts", "build", "--language", "it"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"{len(FLOW_PROMPTS) - 1} prompts synthesised, 1 already there" in p.stdout
    assert recorded.read_bytes() == b"RIFF-recorded-by-a-person"
    with wave.open(str(prompts / "it" / "menu.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() / 8000 > 3  # a sentence, not an empty file
    assert not (prompts / "en").exists()


def test_a_report_becomes_one_voice_contact_keyed_by_the_call_id():
    r = Report("call-77", "+390554382290", "it", confirmed_name="Luca Ferrari", urgent=True,
               recordings={"asset": BlobRef("a" * 64, 100), "anomaly": BlobRef("b" * 64, 900)}, abandoned=True)
    c = report_to_contact(r)
    assert (c.channel, c.external_id, c.sender.phone, c.language) == ("voice", "call-77", "+390554382290", "it")
    assert [(a.kind, a.question) for a in c.attachments] == [("recording", "asset"), ("recording", "anomaly")]
    assert c.answers["name"].value == "Luca Ferrari" and c.urgent is True
    assert c.text == "" and "hung up" in c.note  # the gateway's words are a note, never mined by extraction


def test_a_call_report_makes_a_ticket_with_its_recordings(sqlite_core):
    blob = sqlite_core.blobs.put(b"RIFF....WAVEfmt fake recording")
    r = Report("call-88", "+39 055 438 2290", "it", confirmed_name="Luca Ferrari", urgent=True, recordings={"anomaly": blob})
    first = sqlite_core.intake.submit(report_to_contact(r))
    again = sqlite_core.intake.submit(report_to_contact(r))  # the same call delivered twice
    assert str(first.outcome) == "created" and str(again.outcome) == "duplicate"
    from ticketing.models import Ticket

    with sqlite_core.sessions() as s:
        t = s.get(Ticket, first.ticket_id)
        assert t.value("reporter_name") == "Luca Ferrari" and t.urgency == "critical"
        (m,) = t.messages
        assert [(a.kind, a.sha256) for a in m.attachments] == [("recording", blob.sha256)]


def test_each_recording_gets_one_transcription_job_in_the_same_commit(core):
    from sqlalchemy import select

    from ticketing.transcription import TranscriptionJob

    name, problem = core.blobs.put(b"RIFF name"), core.blobs.put(b"RIFF problem")
    r = Report("call-99", "+39 055 438 2290", "it", recordings={"name": name, "anomaly": problem})
    core.intake.submit(report_to_contact(r))
    core.intake.submit(report_to_contact(r))  # delivered again: no second set of jobs
    with core.sessions() as s:
        jobs = s.scalars(select(TranscriptionJob).order_by(TranscriptionJob.id)).all()
        assert [(j.question, j.blob_sha256, j.status) for j in jobs] == [("name", name.sha256, "pending"), ("anomaly", problem.sha256, "pending")]
