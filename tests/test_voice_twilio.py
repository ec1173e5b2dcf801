"""The Twilio transport at the protocol level: the gateway as `serve` wires it (the voice channel's webhooks
mounted on the web channel's app, served by uvicorn on a loopback port) and this file playing Twilio's part —
every request signed with the twilio package's own algorithm for the public URL, the TwiML answered followed
like Twilio follows it, the callers' answers served as Twilio serves recordings (a local HTTP server that says
404 before the file is ready, then gives real speech: Debian's Asterisk sound files, 8 kHz WAV).

The public URL is `https://desk.example.org/helpdesk`, a reverse proxy in front that strips `/helpdesk`: the
signature must be checked against that URL and never against what the local server sees.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import shutil
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tests.conftest import CONFIG_DIR, missing

PUBLIC = "https://desk.example.org/helpdesk"
HOOKS = PUBLIC + "/twilio/voice"
ACCOUNT = "AC" + "4f" * 16
TOKEN = "0b1d3e5f7a9c2e4f6a8b0d2f4e6a8c0e"
PROMPTS = CONFIG_DIR / "prompts"
SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SPEECH = {"name": "vm-rec-name.wav", "asset": "sorry-youre-having-problems.wav", "anomaly": "all-circuits-busy-now.wav"}
UNKNOWN_CALLER = "+41446681800"  # not in the directory
MARIO = "+39 055 438 2101"  # Mario Rossi in config/users.csv
_sids = itertools.count(1)


# -- Twilio's side ---------------------------------------------------------------------------------------------
class RecordingServer:
    """Twilio's Recording media resource on a local port: each recording answers 404 (not ready) the first
    time it is asked for, then the WAV; every request is noted with its credentials."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen = any(p == self.path for p, _, _ in outer.requests)
                body = outer.files.get(self.path)
                status = 200 if body is not None and seen else 404
                outer.requests.append((self.path, self.headers.get("Authorization"), status))
                self.send_response(status)
                self.send_header("Content-Type", "audio/x-wav" if status == 200 else "application/json")
                payload = body if status == 200 else b'{"code": 20404, "status": 404}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, wav: Path) -> str:
        """A new recording of `wav`; returns its RecordingUrl (without extension, as Twilio sends it)."""
        sid = f"RE{next(_sids):032x}"
        path = f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}"
        self.files[path + ".wav"] = wav.read_bytes()
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def statuses(self, recording_url: str) -> list[int]:
        path = recording_url.split(str(self.server.server_port), 1)[1] + ".wav"
        return [s for p, _, s in self.requests if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TwiML:
    """A webhook's answer, read the way Twilio reads it."""

    def __init__(self, response: httpx.Response):
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/xml")
        self.text = response.text
        self.root = ET.fromstring(response.text)
        assert self.root.tag == "Response"

    @property
    def verbs(self) -> list[str]:
        return [e.tag for e in self.root]

    @property
    def heard(self) -> list[str]:
        """What the caller hears, in order: prompt files as `<lang>/<name>`, spoken words as `say:<text>`."""
        out = []
        for e in self.root.iter():
            if e.tag == "Play":
                assert e.text.startswith(HOOKS + "/prompts/") and e.text.endswith(".wav"), e.text
                out.append(e.text.removeprefix(HOOKS + "/prompts/").removesuffix(".wav"))
            elif e.tag == "Say":
                out.append(f"say:{e.text}")
        return out

    def one(self, tag: str) -> ET.Element:
        (e,) = self.root.iter(tag)
        return e


class Twilio:
    """Signs each request as Twilio does (X-Twilio-Signature over the public URL and the form) and posts it to
    the gateway through the 'proxy' (the public prefix mapped onto the local server)."""

    def __init__(self, local: str, token: str = TOKEN):
        self.local = local
        self.validator = RequestValidator(token)
        self.http = httpx.Client(timeout=60)

    def post(self, url: str, params: dict, *, signed_for: str | None = None, signature: str | None = None,
             headers: dict | None = None) -> httpx.Response:
        sig = signature if signature is not None else self.validator.compute_signature(signed_for or url, params)
        assert url.startswith(PUBLIC)
        return self.http.post(self.local + url.removeprefix(PUBLIC), data=params,
                              headers={"X-Twilio-Signature": sig, **(headers or {})})


@dataclass
class Call:
    """One caller, driven through the TwiML the gateway answers."""

    twilio: Twilio
    caller: str
    sid: str = field(default_factory=lambda: f"CA{next(_sids):032x}")
    twiml: TwiML | None = None

    @property
    def params(self) -> dict:
        return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": self.sid, "CallStatus": "in-progress",
                "Called": "+390554380000", "Caller": self.caller, "Direction": "inbound", "From": self.caller,
                "FromCountry": "IT", "To": "+390554380000", "ToCountry": "IT"}

    def _step(self, url: str, extra: dict | None = None, **kw) -> TwiML:
        self.twiml = TwiML(self.twilio.post(url, {**self.params, **(extra or {})}, **kw))
        return self.twiml

    def start(self, **kw) -> TwiML:
        return self._step(HOOKS + "/incoming", **kw)

    def press(self, digits: str, **kw) -> TwiML:
        return self._step(self.twiml.one("Gather").get("action"), {"Digits": digits}, **kw)

    def speak(self, words: str) -> TwiML:
        return self._step(self.twiml.one("Gather").get("action"), {"SpeechResult": words, "Confidence": "0.91"})

    def wait(self) -> TwiML:
        """Press nothing: Twilio goes on to the <Redirect> after the <Gather>."""
        return self._step(self.twiml.one("Redirect").text)

    def answer(self, recording_url: str, digits: str = "#") -> TwiML:
        """Say something at the beep: Twilio requests the <Record> action with the recording."""
        extra = {"RecordingUrl": recording_url, "RecordingSid": recording_url.rsplit("/", 1)[1],
                 "RecordingDuration": "3", "Digits": digits}
        return self._step(self.twiml.one("Record").get("action"), extra)

    def end(self, status: str = "completed") -> httpx.Response:
        r = self.twilio.post(HOOKS + "/status", {**self.params, "CallStatus": status, "CallDuration": "42"})
        assert r.status_code == 200, r.text
        return r


# -- the gateway ------------------------------------------------------------------------------------------------
@dataclass
class Gateway:
    core: object
    calls: object
    spool: Path
    twilio: Twilio
    recordings: RecordingServer

    def call(self, caller: str = UNKNOWN_CALLER) -> Call:
        return Call(self.twilio, caller)

    def spooled(self) -> list[Path]:
        return [p for p in self.spool.iterdir() if p.is_dir()] if self.spool.exists() else []


@pytest.fixture(scope="session")
def prompts():
    """The prompt files, synthesised once (config/prompts/<lang>/ is not in git; `prompts build` makes it)."""
    if not shutil.which("espeak-ng") or not shutil.which("ffmpeg"):
        missing("espeak-ng and ffmpeg are needed to build the prompts (Debian packages 'espeak-ng', 'ffmpeg')")
    from channels.voice.prompts import build

    build(PROMPTS)
    return PROMPTS


@pytest.fixture
def recordings():
    if not all((SOUNDS / f).is_file() for f in SPEECH.values()):
        missing(f"Asterisk's sound files are not in {SOUNDS} (Debian package 'asterisk-core-sounds-en-wav')")
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture
def gateway(tmp_path, prompts, recordings):
    """start(core, twilio={...}, ivr={...}): the voice channel (Twilio only) and the web channel, as wired by
    the gateway, serving on a loopback port; stopped at the end of the test."""
    from channels.voice import plugin as voice
    from channels.voice.settings import VoiceSettings
    from channels.web import plugin as web
    from channels.web.settings import WebSettings
    from channels.web.testing import ServerThread
    from gateway.app import channel_context

    running = []

    def start(core, twilio: dict | None = None, ivr: dict | None = None) -> Gateway:
        settings = VoiceSettings(
            enabled=True, prompts_dir=prompts, spool_dir=tmp_path / "spool", sip={"enabled": False}, ivr=ivr or {},
            twilio={"enabled": True, "public_base_url": PUBLIC, "account_sid": ACCOUNT, "auth_token": TOKEN,
                    "download_backoff_seconds": 0.05, **(twilio or {})},
        )
        channel = voice.load(channel_context(core, settings))
        core.shared.offer(channel)  # as gateway/service.py does after each channel's load
        asyncio.run(channel.start())
        service = web.load(channel_context(core, WebSettings(port=0, cookie_secure=False)))
        server = ServerThread(service.app)
        server.service.mounts = service.mounts  # the web channel mounts what other channels put in ctx.shared
        server.__enter__()
        running.append((server, channel))
        (calls,) = channel.calls
        return Gateway(core, calls, tmp_path / "spool" / "twilio", Twilio(server.url), recordings)

    yield start
    for server, channel in running:
        server.__exit__(None, None, None)
        asyncio.run(channel.stop())


def ticket_of(core, call_sid: str):
    """(ticket, [(attachment kind, sha256)], [transcription job question]) of the call, or None."""
    from ticketing.models import Message
    from ticketing.transcription import TranscriptionJob

    with core.sessions() as s:
        m = s.scalar(select(Message).where(Message.channel == "voice", Message.external_id == call_sid))
        if m is None:
            return None
        jobs = s.scalars(select(TranscriptionJob).where(TranscriptionJob.ticket_id == m.ticket_id).order_by(TranscriptionJob.id))
        t = m.ticket
        info = {"number": core.desk.number(t), "pin": t.pin, "urgency": t.urgency, "phone": m.sender_phone,
                "language": t.language, "text": m.text,
                "recordings": [(a.filename, a.kind, a.sha256) for a in m.attachments],
                "jobs": [(j.question, j.status) for j in jobs]}
        return info


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digits(text: str, language: str) -> list[str]:
    return [f"{language}/digit-{d}" for d in text if d.isdigit()]


# -- a whole call -------------------------------------------------------------------------------------------------
def test_a_full_report_call_leaves_a_ticket_with_the_three_recordings(core, gateway):
    gw = gateway(core, ivr={"confirm": False})  # nothing said back nor asked again (tests/test_voice_confirm.py)
    call = gw.call()
    t = call.start()
    assert t.verbs == ["Gather", "Redirect"]
    assert t.heard == ["it/greeting", "it/recording-notice", "it/choose-language"]
    assert t.one("Gather").attrib == {"input": "dtmf", "numDigits": "1", "finishOnKey": "#", "timeout": "6",
                                      "action": HOOKS + "/gather", "method": "POST"}
    assert t.one("Redirect").text == HOOKS + "/gather"  # nothing pressed: the flow's timeout

    assert call.press("3").heard == ["en/menu"]  # 3: English
    t = call.press("1")  # report a problem; the caller id is not in the directory: say your name
    assert t.verbs == ["Play", "Record", "Redirect"] and t.heard == ["en/say-name"]
    assert t.one("Record").attrib == {
        "maxLength": "8", "finishOnKey": "#", "playBeep": "true", "action": HOOKS + "/recorded?question=name",
        "method": "POST", "recordingStatusCallback": HOOKS + "/recording-status", "recordingStatusCallbackMethod": "POST",
    }
    urls = {}
    steps = (("name", "8", ["en/say-asset"]), ("asset", "15", ["en/say-problem"]), ("anomaly", "120", ["en/office-blocked", "en/yes-no"]))
    for question, seconds, then in steps:
        record = t.one("Record")
        assert (record.get("action"), record.get("maxLength")) == (f"{HOOKS}/recorded?question={question}", seconds)
        urls[question] = gw.recordings.add(SOUNDS / SPEECH[question])
        t = call.answer(urls[question])
        assert t.heard == then
        callback = {"AccountSid": ACCOUNT, "CallSid": call.sid, "RecordingStatus": "completed",
                    "RecordingSid": urls[question].rsplit("/", 1)[1], "RecordingUrl": urls[question]}
        assert gw.twilio.post(record.get("recordingStatusCallback"), callback).status_code == 204
    assert t.one("Gather").get("numDigits") == "1"

    t = call.press("1")  # the whole office is blocked
    ticket = ticket_of(core, call.sid)
    assert ticket is not None
    assert t.verbs[-1] == "Hangup"
    assert t.heard == ["en/ticket-created", *digits(ticket["number"], "en"), "en/your-pin", *digits(ticket["pin"], "en"), "en/goodbye"]
    assert (ticket["phone"], ticket["language"], ticket["urgency"]) == (UNKNOWN_CALLER, "en", "critical")
    assert ticket["recordings"] == [(f"answer-{q}.wav", "recording", sha(SOUNDS / SPEECH[q])) for q in ("name", "asset", "anomaly")]
    assert ticket["jobs"] == [("name", "pending"), ("asset", "pending"), ("anomaly", "pending")]

    # each recording was asked for as WAV with the account's credentials, 404 while not ready, then fetched
    basic = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert {auth for _, auth, _ in gw.recordings.requests} == {basic}
    assert all(gw.recordings.statuses(u) == [404, 200] for u in urls.values())

    # every prompt the caller was played is served to Twilio, without a signature
    for prompt in set(t.heard):
        r = gw.twilio.http.get(f"{gw.twilio.local}/twilio/voice/prompts/{prompt}.wav")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"

    call.end("completed")
    assert gw.calls.open_calls() == 0 and gw.spooled() == []
    assert ticket_of(core, call.sid)["recordings"] == ticket["recordings"]  # the end of the call adds nothing


def test_status_by_phone_reads_the_status_to_the_reporter_and_asks_others_for_the_pin(sqlite_core, gateway):
    from channels.voice.flow import Report
    from channels.voice.report import report_to_contact

    gw = gateway(sqlite_core)
    blob = sqlite_core.blobs.put((SOUNDS / SPEECH["anomaly"]).read_bytes())
    created = sqlite_core.intake.submit(report_to_contact(Report("CA-earlier", MARIO, "it", recordings={"anomaly": blob})))
    number, pin = created.ticket_number, sqlite_core.desk.pin(created.ticket_number)
    keyed = "".join(ch for ch in number if ch.isdigit())

    other = gw.call(UNKNOWN_CALLER)
    other.start()
    assert other.wait().heard == ["it/menu"]  # nothing pressed at the language question: Italian
    t = other.press("2")
    assert t.heard == ["it/enter-ticket-number"] and t.one("Gather").get("numDigits") == "12"
    t = other.press(keyed)
    assert t.heard == ["it/enter-pin"] and t.one("Gather").get("numDigits") == "4"
    wrong = "0000" if pin != "0000" else "1111"
    assert other.press(wrong).heard == ["it/ticket-not-found", "it/menu"]  # the same words as a wrong number
    other.press("2")
    other.press(keyed)
    t = other.press(pin)
    assert t.heard == ["it/status-new", "it/level-1", "it/goodbye"] and t.verbs[-1] == "Hangup"

    reporter = gw.call(MARIO)  # the number the ticket was reported from: no PIN asked
    reporter.start()
    reporter.press("1")
    reporter.press("2")
    assert reporter.press(keyed).heard == ["it/status-new", "it/level-1", "it/goodbye"]
    for c in (other, reporter):
        c.end()
    assert gw.calls.open_calls() == 0


# -- signatures ----------------------------------------------------------------------------------------------------
def test_forged_requests_get_403_and_change_nothing(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    call = gw.call()
    url = HOOKS + "/incoming"
    forged = {
        "no signature": dict(signature=""),
        "another token": dict(signature=RequestValidator("not-the-token").compute_signature(url, call.params)),
        "signed for other parameters": dict(signature=gw.twilio.validator.compute_signature(url, {**call.params, "From": MARIO})),
        "signed for another webhook": dict(signed_for=HOOKS + "/status"),
    }
    for why, kw in forged.items():
        r = gw.twilio.post(url, call.params, **kw)
        assert r.status_code == 403, why
    assert gw.calls.open_calls() == 0 and gw.spooled() == []

    call.start()
    recording = gw.recordings.add(SOUNDS / SPEECH["name"])
    bad = dict(signature=RequestValidator("not-the-token").compute_signature(HOOKS + "/gather", {**call.params, "Digits": "2"}))
    assert gw.twilio.post(HOOKS + "/gather", {**call.params, "Digits": "2"}, **bad).status_code == 403
    assert gw.twilio.post(HOOKS + "/recorded?question=name", {**call.params, "RecordingUrl": recording}, signature="AAAA").status_code == 403
    assert gw.twilio.post(HOOKS + "/status", {**call.params, "CallStatus": "completed"}, signature="AAAA").status_code == 403
    assert gw.recordings.requests == [] and gw.calls.open_calls() == 1
    assert call.press("1").heard == ["it/menu"]  # still at the language question: the forged "2" did nothing
    assert ticket_of(sqlite_core, call.sid) is None


def test_the_signature_is_checked_against_the_public_url_not_the_host_the_server_sees(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    call = gw.call()
    local_url = gw.twilio.local + "/twilio/voice/incoming"
    assert gw.twilio.post(HOOKS + "/incoming", call.params, signed_for=local_url).status_code == 403
    spoofed = {"Host": "desk.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "desk.example.org"}
    r = gw.twilio.post(HOOKS + "/incoming", call.params, signed_for="https://desk.example.org/twilio/voice/incoming", headers=spoofed)
    assert r.status_code == 403
    assert gw.calls.open_calls() == 0
    assert call.start().heard[0] == "it/greeting"  # signed for the public URL: accepted
    # with the default port spelled out, as Twilio sometimes signs it
    assert gw.twilio.post(HOOKS + "/gather", call.params, signed_for="https://desk.example.org:443/helpdesk/twilio/voice/gather").status_code == 200


def test_json_bodies_are_checked_through_their_body_hash_and_shared_keys_by_their_algorithm(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    body = json.dumps({"AccountSid": ACCOUNT, "CallSid": "CA" + "1" * 32, "RecordingStatus": "completed"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    url = f"{HOOKS}/recording-status?bodySHA256={digest}"

    def post(content: str, signed_url: str = url, **kw):
        sig = gw.twilio.validator.compute_signature(signed_url, {}, **kw)
        local = gw.twilio.local + signed_url.removeprefix(PUBLIC)
        return gw.twilio.http.post(local, content=content, headers={"X-Twilio-Signature": sig, "Content-Type": "application/json"})

    assert post(body).status_code == 204
    assert post(body.replace("completed", "absent")).status_code == 403  # the body is not the one signed
    assert post(body, HOOKS + "/recording-status").status_code == 403  # a JSON body must come with its hash

    form = {"AccountSid": ACCOUNT, "CallSid": "CA" + "1" * 32, "RecordingStatus": "completed"}
    sha256_sig = gw.twilio.validator.compute_signature(HOOKS + "/recording-status", form, algorithm="HMAC_SHA256")
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    assert gw.twilio.post(HOOKS + "/recording-status", form, signature=sha256_sig, headers=settings).status_code == 204
    assert gw.twilio.post(HOOKS + "/recording-status", form, signature=sha256_sig).status_code == 403


# -- calls that end early, requests that come twice --------------------------------------------------------------
def test_a_caller_who_hangs_up_mid_call_still_leaves_a_ticket(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    call = gw.call()
    call.start()
    call.press("1")
    call.press("1")
    assert call.answer(gw.recordings.add(SOUNDS / SPEECH["name"])).heard == ["it/say-asset"]
    assert ticket_of(sqlite_core, call.sid) is None  # nothing delivered while the call goes on
    call.end("completed")  # hung up at the asset question: Twilio's status callback says so
    ticket = ticket_of(sqlite_core, call.sid)
    assert ticket["recordings"] == [("answer-name.wav", "recording", sha(SOUNDS / SPEECH["name"]))]
    assert ticket["jobs"] == [("name", "pending")] and "hung up" in ticket["text"]
    assert gw.calls.open_calls() == 0 and gw.spooled() == []
    call.end("completed")  # the callback again: still one ticket
    assert ticket_of(sqlite_core, call.sid)["recordings"] == ticket["recordings"]


def test_hanging_up_during_a_recording_keeps_that_recording(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    call = gw.call()
    call.start()
    call.press("1")
    call.press("1")
    call.answer(gw.recordings.add(SOUNDS / SPEECH["name"]))
    # Twilio still requests the <Record> action when the caller hangs up, with Digits=hangup
    assert call.answer(gw.recordings.add(SOUNDS / SPEECH["asset"]), digits="hangup").verbs == ["Hangup"]
    ticket = ticket_of(sqlite_core, call.sid)
    assert [r[0] for r in ticket["recordings"]] == ["answer-name.wav", "answer-asset.wav"]
    call.end("completed")
    assert gw.calls.open_calls() == 0 and len(ticket_of(sqlite_core, call.sid)["recordings"]) == 2


def test_a_recording_twilio_never_makes_available_is_asked_for_again(sqlite_core, gateway):
    gw = gateway(sqlite_core, twilio={"download_attempts": 3})
    call = gw.call()
    call.start()
    call.press("1")
    call.press("1")
    never = gw.recordings.add(SOUNDS / SPEECH["name"]).replace("/Recordings/RE", "/Recordings/REgone")
    assert call.answer(never).heard == ["it/not-understood", "it/say-name"]
    assert gw.recordings.statuses(never) == [404, 404, 404]  # download_attempts, then the caller is asked again
    assert call.answer(gw.recordings.add(SOUNDS / SPEECH["name"])).heard == ["it/say-asset"]


def test_a_retried_webhook_makes_one_call_and_one_step(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    call = gw.call()
    first, again = call.start(), call.start()  # Twilio sent the incoming webhook twice
    assert again.text == first.text and gw.calls.open_calls() == 1 and len(gw.spooled()) == 1
    retry = {"I-Twilio-Idempotency-Token": "b0c1d2e3-retry"}
    assert call.press("1", headers=retry).heard == ["it/menu"]
    assert call.press("1", headers=retry).heard == ["it/menu"]  # the same request again: not "1" at the menu
    assert call.press("1").heard == ["it/say-name"]  # a new request: the menu's 1
    call.end("no-answer")
    assert gw.calls.open_calls() == 0 and ticket_of(sqlite_core, call.sid) is None  # nothing said: no ticket


# -- the other ways a call goes ------------------------------------------------------------------------------------
def test_a_known_caller_is_asked_by_name_and_0_transfers_to_the_operator(sqlite_core, gateway):
    gw = gateway(sqlite_core, ivr={"operator": "sip:operator@pbx.example.org"})
    mario = gw.call(MARIO)
    mario.start()
    mario.press("1")
    t = mario.press("1")
    assert t.heard == ["it/are-you", "say:Mario Rossi", "it/yes-no"]
    assert t.one("Say").get("language") == "it-IT"
    assert mario.press("1").heard == ["it/say-asset"]  # confirmed: no name to record

    other = gw.call()
    other.start()
    other.press("3")  # English
    t = other.press("0")
    assert t.heard == ["en/transferring"] and t.verbs == ["Play", "Dial"]
    assert t.one("Sip").text == "sip:operator@pbx.example.org"


def test_spoken_answers_are_understood_when_speech_is_on(sqlite_core, gateway):
    from channels.voice.twilio.twiml import speech_keys

    assert [speech_keys(s) for s in ("sì, sono io", "No.", "2026 000123", "tre sette nove", "boh")] == ["1", "2", "2026000123", "379", ""]
    gw = gateway(sqlite_core, twilio={"speech": True})
    call = gw.call()
    t = call.start()
    g = t.one("Gather")
    assert (g.get("input"), g.get("language"), g.get("speechTimeout")) == ("dtmf speech", "it-IT", "auto")
    t = call.speak("English, please")
    assert t.heard == ["en/menu"] and t.one("Gather").get("language") == "en-GB"
    assert call.speak("hmm").heard == ["en/not-understood", "en/menu"]
    assert call.speak("one").heard == ["en/say-name"]


def test_prompts_are_served_by_name_and_nothing_else(sqlite_core, gateway):
    gw = gateway(sqlite_core)
    http, base = gw.twilio.http, gw.twilio.local + "/twilio/voice/prompts"
    r = http.get(f"{base}/it/menu.wav")
    assert r.status_code == 200 and r.content == (PROMPTS / "it" / "menu.wav").read_bytes()
    for path in ("/it/no-such-prompt.wav", "/it/..%2F..%2Fgateway.wav", "/..%2F..%2F..%2Fpyproject/x.wav", "/it/.hidden.wav",
                 "/it/menu.txt", "/it/%2E%2E.wav"):
        assert http.get(base + path).status_code == 404, path
    assert http.post(f"{base}/it/menu.wav").status_code == 405
