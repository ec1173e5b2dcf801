"""The SIP transport against real SIP peers on loopback: sipp (Debian's sip-tester) and baresip call the
gateway's pjsua2 endpoint, stream real speech (Asterisk's sound files as G.711 µ-law RTP) and press keys as
RFC 4733 telephone-events and as SIP INFO; what the desk ends up with is checked the way an operator would:
the ticket, its recordings (which must be the audio the caller sent), the transcription jobs.

One endpoint serves the whole module (pjsua2 is one library instance per process), with short IVR timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from sqlalchemy import select

from tests.conftest import ROOT, make_config, missing, wait_for
from tests.voice_support import (
    RATE, SIPP_DIR, Baresip, Caller, corpora_dir, correlation, have, line_audio, read_wav, require_sip_peers, run_sipp,
    sipp_command, sound_file, start_sipp, write_wav,
)

PROMPTS = ROOT / "config" / "prompts"
GATHER_TIMEOUT = 2.0
ACK_TIMEOUT = 2


@pytest.fixture(scope="module")
def sip(tmp_path_factory):
    """A gateway core on SQLite and the SIP service on a free port, UDP and TCP."""
    require_sip_peers("hello-world")
    from channels.voice import prompts
    from channels.voice.settings import VoiceSettings
    from channels.voice.sip.service import SipService
    from gateway.app import build_core, channel_context, seed_directory

    prompts.build(PROMPTS)
    tmp = tmp_path_factory.mktemp("sip")
    core = build_core(make_config(tmp, f"sqlite:///{tmp / 'helpdesk.sqlite3'}"))
    seed_directory(core)
    settings = VoiceSettings(
        enabled=True,
        prompts_dir=PROMPTS,
        # Every test caller is 127.0.0.1: room for the four calls a worker takes (the limits have their own tests).
        sip={"port": 0, "rtp_port": 0, "ack_timeout_seconds": ACK_TIMEOUT, "log_level": 3,
             "limits": {"calls_per_source": 4, "attempts_burst": 40}},
        ivr={"gather_timeout": GATHER_TIMEOUT},
    )
    service = SipService(channel_context(core, settings), settings, tmp / "calls" / "sip")
    asyncio.run(service.start())
    service.core, service.tmp = core, tmp
    yield service
    asyncio.run(service.stop())
    core.close()


@pytest.fixture
def work(sip, tmp_path):
    yield tmp_path
    wait_for(lambda: sip.open_calls == 0 and sip.slots_in_use() == 0, timeout=15)  # the next test starts with every slot free


def tickets_of(sip, phone: str):
    """The tickets whose contact came from `phone`, as the desk shows them."""
    from ticketing.models import Message

    with sip.core.sessions() as s:
        rows = s.scalars(select(Message).where(Message.sender_phone == phone)).all()
        numbers = [sip.core.desk.number(m.ticket) for m in rows]
    return [sip.core.desk.ticket(n) for n in numbers]


def recordings(sip, ticket) -> dict[str, np.ndarray]:
    out = {}
    for m in ticket.messages:
        for a in m.attachments:
            assert a.kind == "recording" and a.content_type == "audio/wav"
            out[a.filename.removeprefix("answer-").removesuffix(".wav")] = read_wav(sip.core.blobs.path(a.sha256))
    return out


def jobs_of(sip, ticket_number: str) -> list[str]:
    from ticketing.models import Ticket
    from ticketing.transcription import TranscriptionJob

    with sip.core.sessions() as s:
        ids = [t.id for t in s.scalars(select(Ticket)) if sip.core.desk.number(t) == ticket_number]
        return sorted(j.question for j in s.scalars(select(TranscriptionJob).where(TranscriptionJob.ticket_id.in_(ids))))


def check(result):
    assert result.ok, f"sipp failed (rc={result.returncode}):\n{result.errors}\n{result.stderr}\n{result.stdout[-1500:]}"


# -- the caller id ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("from_header, expected", [
    ('"Mario Rossi" <sip:+390554382101@pbx.example.org>;tag=1', "+390554382101"),
    ("<sip:0554382101@10.0.0.1;user=phone>", "0554382101"),
    ('"+39 055 438 2144" <sip:ext204@pbx.example.org>', "+390554382144"),  # a PBX puts the number in the name
    ("<tel:+39-055-438-2290>", "+390554382290"),
    ('"Reception" <sip:reception@pbx.example.org>', "reception"),
    ("<sip:pbx.example.org>", None),
])
def test_the_caller_id_is_the_number_in_the_from_header(from_header, expected):
    from channels.voice.sip.media import caller_id

    assert caller_id(from_header) == expected


# -- whole calls ---------------------------------------------------------------------------------------------
def test_a_full_report_call_makes_a_ticket_with_the_recordings_the_caller_sent(sip, work):
    """English, menu 1, name (ended with #), asset (ended by silence: "weasels have eaten our phone system",
    which the gateway says back as the VoIP telephony, confirmed with 1), problem (ended with # as SIP INFO),
    "whole office blocked?" yes; the ticket number and PIN are read back and the gateway hangs up."""
    c = Caller(78, caller_id="+4989100001", bye_timeout=95)
    c.key(1.0, "3")  # English, as a telephone-event
    c.info(1.5, "1")  # report a problem, as SIP INFO
    end = c.say(6.0, "hello-world", "name")
    c.key(end + 0.5, "#")
    # the name is transcribed and looked up in the directory before the next question (no match: no question back)
    end = c.say(17.0, "tt-weasels", "asset")  # ended by three seconds of silence
    c.key(end + 4.0, "1")  # "I understood: Telefonia VoIP. Press 1 to confirm": yes (kept if pressed before it is asked)
    end = c.say(end + 17.0, "something-terribly-wrong", "anomaly")
    c.info(end + 0.6, "#")
    c.info(end + 1.5, "1")  # the whole office is blocked
    check(run_sipp(c.write(work), sip.port, timeout=150))  # the scenario only succeeds on the gateway's BYE

    (ticket,) = tickets_of(sip, "+4989100001")
    assert ticket.language == "en"
    assert ticket.field("urgency").value in ("high", "critical")
    assert ticket.field("asset").value.startswith("TEL-VOIP") and ticket.field("asset").source == "caller"
    heard = recordings(sip, ticket)
    assert set(heard) == {"name", "asset", "anomaly"}
    for question, audio in heard.items():
        assert correlation(c.sent[question], audio) >= 0.9, question
    assert jobs_of(sip, ticket.number) == ["anomaly", "asset", "name"]


def test_a_status_call_over_tcp_reads_the_status_after_the_pin(sip, work, caplog):
    """Ticket number keyed as telephone-events then #, PIN keyed as SIP INFO, from a number that did not
    report it; the caller hears the status and level, then the gateway hangs up."""
    from channels.voice.flow import Report

    caplog.set_level(logging.DEBUG, logger="channels.voice.sip")
    blob = sip.core.blobs.put((PROMPTS / "en" / "digit-1.wav").read_bytes())
    number, pin = sip.calls.submit(Report("seeded-status-call", "+4989100002", "en", recordings={"anomaly": blob}))
    digits = "".join(ch for ch in number if ch.isdigit())

    c = Caller(25, caller_id="+4989100003", bye_timeout=40)
    c.info(1.0, "3")  # English
    c.key(1.5, "2")  # status of a ticket
    t = 2.0
    for d in digits + "#":
        c.key(t, d)
        t += 0.3
    for d in pin:
        c.info(t + 1.0, d)
        t += 0.3
    check(run_sipp(c.write(work), sip.port, transport="t1", timeout=60))

    played = [r.getMessage() for r in caplog.records if "playing" in r.getMessage()]
    assert any("enter-pin.wav" in p for p in played)
    assert any("status-new.wav" in p for p in played) and any("level-1.wav" in p for p in played)
    assert not any("ticket-not-found" in p for p in played)


def test_a_known_caller_who_hangs_up_mid_answer_still_leaves_a_ticket(sip, work):
    """Mario Rossi's number: Italian, confirms the synthesised name, hangs up while describing the asset.
    The answer cut by the hang-up is kept, and the ticket says the caller hung up."""
    c = Caller(13, caller_id="+390554382101", hang_up_at=13.0)
    c.info(1.0, "1")  # Italiano
    c.key(1.5, "1")  # report
    c.info(2.5, "1")  # "Lei è Mario Rossi?" yes
    c.say(9.5, "tt-weasels", "asset")
    check(run_sipp(c.write(work), sip.port, timeout=40))

    (ticket,) = wait_for(lambda: tickets_of(sip, "+390554382101"), timeout=10)
    assert ticket.language == "it"
    (message,) = ticket.messages
    assert "hung up" in message.text and message.sender_name == "Mario Rossi"
    heard = recordings(sip, ticket)
    assert set(heard) == {"asset"}
    assert correlation(c.sent["asset"], heard["asset"]) >= 0.9
    assert jobs_of(sip, ticket.number) == ["asset"]


def test_a_baresip_caller_reaches_the_ivr_and_leaves_a_ticket(sip, work):
    """A second SIP stack: baresip dials, keys English and menu 1 (telephone-events), says its name from a
    WAV file, presses #, and hangs up during the next question."""
    if have("baresip"):
        missing("baresip is not installed")
    speech = read_wav(sound_file("hello-world"))
    audio = np.concatenate([np.zeros(int(7.0 * RATE), np.int16), speech, np.zeros(20 * RATE, np.int16)])
    write_wav(work / "caller.wav", audio)
    phone = "+390600000042"
    b = Baresip(work / "baresip", phone, work / "caller.wav")
    b.start(max_seconds=60)
    try:
        b.command("dial", f"sip:helpdesk@127.0.0.1:{sip.port}")
        b.wait_event("CALL_ESTABLISHED", timeout=15)
        t0 = time.monotonic()
        for at, key in ((1.0, "3"), (1.5, "1"), (7.0 + len(speech) / RATE + 1.0, "#")):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            b.command("sndcode", key)
        time.sleep(max(0.0, t0 + 11.0 - time.monotonic()))
        b.command("hangup")
        b.wait_event("CALL_CLOSED", timeout=10)
    finally:
        b.stop()

    (ticket,) = wait_for(lambda: tickets_of(sip, phone), timeout=10)
    assert ticket.language == "en"
    heard = recordings(sip, ticket)
    assert set(heard) == {"name"}
    assert correlation(line_audio(speech), heard["name"]) >= 0.9


# -- capacity and robustness ---------------------------------------------------------------------------------
def test_a_fifth_simultaneous_caller_is_turned_away_while_four_are_answered(sip, work):
    for f in ("hold.xml", "busy.xml"):
        shutil.copy(SIPP_DIR / f, work / f)
    four = start_sipp(work / "hold.xml", sip.port, calls=4, rate=100, limit=4, extra=["-d", "5000"])
    try:
        wait_for(lambda: sip.open_calls == 4, timeout=10)
        check(run_sipp(work / "busy.xml", sip.port, timeout=20))  # 486 Busy Here (or 503)
        out, err = four.communicate(timeout=30)
    finally:
        if four.poll() is None:
            four.kill()
    assert four.returncode == 0, err[-2000:]


def test_an_invite_never_acknowledged_does_not_hold_a_slot(sip, work):
    shutil.copy(SIPP_DIR / "no_ack.xml", work / "no_ack.xml")
    junk = start_sipp(work / "no_ack.xml", sip.port, extra=["-d", "20000"])
    try:
        wait_for(lambda: sip.open_calls == 1, timeout=10)
        wait_for(lambda: sip.open_calls == 0 and sip.slots_in_use() == 0, timeout=ACK_TIMEOUT + 5)  # not RFC 3261's 32 s
    finally:
        junk.kill()
        junk.wait(5)


def test_a_call_whose_audio_stops_is_hung_up(sip, work, monkeypatch):
    """sipp's hold.xml sends no RTP at all: with the no-RTP watchdog at 2 s the gateway ends the call."""
    monkeypatch.setattr(sip.settings.sip, "no_rtp_seconds", 2)
    shutil.copy(SIPP_DIR / "hold.xml", work / "hold.xml")
    silent = start_sipp(work / "hold.xml", sip.port, extra=["-d", "20000"])
    try:
        wait_for(lambda: sip.open_calls == 1, timeout=10)
        wait_for(lambda: sip.open_calls == 0, timeout=8)
    finally:
        silent.kill()
        silent.wait(5)


def test_rfc4475_torture_messages_over_udp_and_tcp_leave_the_gateway_answering(sip, work):
    corpus = corpora_dir() / "sip" / "rfc4475"
    messages = sorted(corpus.glob("*.dat"))
    if not messages:
        missing(f"the RFC 4475 torture messages are not in {corpus} (HELPDESK_CORPORA)")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for path in messages:
        udp.sendto(path.read_bytes()[:65000], ("127.0.0.1", sip.port))
        time.sleep(0.01)
    udp.close()
    for path in messages:
        with socket.create_connection(("127.0.0.1", sip.port), timeout=5) as tcp:
            tcp.sendall(path.read_bytes())
            tcp.settimeout(0.2)
            try:
                tcp.recv(4096)
            except (socket.timeout, ConnectionResetError):
                pass
    assert sip.pj.alive
    # The well-formed INVITEs among them were answered and never acknowledged: their slots come back.
    wait_for(lambda: sip.slots_in_use() == 0, timeout=ACK_TIMEOUT + 10)
    shutil.copy(SIPP_DIR / "hold.xml", work / "hold.xml")
    check(run_sipp(work / "hold.xml", sip.port, extra=["-d", "1000"], timeout=30))


# -- the caller confirms the asset -----------------------------------------------------------------------------
def test_the_caller_hears_the_asset_understood_and_confirms_it_with_1(sip, work):
    """Giulia Bianchi's number, English: she confirms her name, says "the protocol register" (festival's kal
    voice, which the prompts never use) and ends it with #. The gateway transcribes it while she waits, says
    "Protocollo informatico" back (espeak-ng at run time) and she presses 1 (as soon as her answer is over:
    a key pressed while the gateway works is kept for its next question). She hangs up at the problem question:
    the ticket's asset is PROT-01 from the caller, certain."""
    from tests.test_voice_confirm import spoken, tickets_show_json

    answer = read_wav(spoken("the protocol register", "en", work / "speech"))
    at = 12.0
    end = at + len(answer) / RATE
    c = Caller(end + 27, caller_id="+390554382144", hang_up_at=end + 25)
    c.key(1.0, "3")  # English
    c.key(1.5, "1")  # report a problem
    c.key(2.5, "1")  # "Are you Giulia Bianchi?" yes
    c.stream.speech(at, answer)
    c.sent["asset"] = line_audio(answer)
    c.key(end + 0.5, "#")
    c.key(end + 1.0, "1")  # "I understood: Protocollo informatico. Press 1 to confirm": yes
    check(run_sipp(c.write(work), sip.port, timeout=150))

    (ticket,) = wait_for(lambda: tickets_of(sip, "+390554382144"), timeout=10)
    assert ticket.language == "en" and ticket.field("reporter_name").value == "Giulia Bianchi"
    asset = ticket.field("asset")
    assert asset.value.startswith("PROT-01") and (asset.source, asset.confidence) == ("caller", 1.0)
    assert tickets_show_json(sip.core, ticket.number)["fields"]["asset"]["source"] == "caller"
    heard = recordings(sip, ticket)
    assert correlation(c.sent["asset"], heard["asset"]) >= 0.9


# -- per-source limits ------------------------------------------------------------------------------------------
def raw_invite(port: int, source: str) -> tuple[int, dict[str, str]]:
    """One INVITE over UDP from `source`; its final answer (code, headers), acknowledged (RFC 3261 §17.1.1.3)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(8)
        me = s.getsockname()[1]
        branch, call_id = f"z9hG4bK-lim-{time.monotonic_ns()}", f"lim-{time.monotonic_ns()}@{source}"
        sdp = f"v=0\r\no=c 1 1 IN IP4 {source}\r\ns=-\r\nc=IN IP4 {source}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        head = (f"sip:helpdesk@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{me};branch={branch}\r\n"
                f"From: <sip:+39001@{source}>;tag=lim\r\nTo: <sip:helpdesk@127.0.0.1:{port}>\r\nCall-ID: {call_id}\r\n"
                "Max-Forwards: 70\r\n")
        s.sendto((f"INVITE {head}CSeq: 1 INVITE\r\nContact: <sip:c@{source}:{me}>\r\nContent-Type: application/sdp\r\n"
                  f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode(), ("127.0.0.1", port))
        while True:
            lines = s.recv(65535).decode(errors="replace").split("\r\n\r\n", 1)[0].split("\r\n")
            code = int(lines[0].split()[1])
            if code >= 200:
                break
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        to = headers["to"]
        s.sendto((f"ACK {head.replace('To: <sip:helpdesk@127.0.0.1:' + str(port) + '>', 'To: ' + to)}CSeq: 1 ACK\r\n"
                  "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        return code, headers


def test_a_source_over_its_limits_is_turned_away_with_retry_after_while_another_is_answered(sip, work, monkeypatch):
    from channels.voice.settings import SipLimitSettings
    from channels.voice.sip.limits import SourceLimits

    monkeypatch.setattr(sip, "limits", SourceLimits(SipLimitSettings(
        calls_per_source=1, attempts_burst=2, attempts_per_second=0.2, ban_after=2, ban_seconds=30)))
    shutil.copy(SIPP_DIR / "hold.xml", work / "hold.xml")
    held = start_sipp(work / "hold.xml", sip.port, extra=["-d", "6000"])  # 127.0.0.1's one call
    try:
        wait_for(lambda: sip.open_calls == 1, timeout=10)
        busy = raw_invite(sip.port, "127.0.0.1")
        too_fast = raw_invite(sip.port, "127.0.0.1")
        banned = raw_invite(sip.port, "127.0.0.1")
        assert (busy[0], busy[1]["retry-after"]) == (486, "60")
        assert too_fast[0] == 503 and 1 <= int(too_fast[1]["retry-after"]) <= 5
        assert (banned[0], banned[1]["retry-after"]) == (403, "30")
        # Another address is not affected: its call is answered and completes.
        other = [a if a != "127.0.0.1" else "127.0.0.3" for a in sipp_command(work / "hold.xml", sip.port, extra=["-d", "500"])]
        done = subprocess.run(other, cwd=work, capture_output=True, text=True, errors="replace", timeout=30)
        assert done.returncode == 0, done.stderr[-1500:]
        assert held.wait(timeout=30) == 0
    finally:
        if held.poll() is None:
            held.kill()
    assert sip.refusals >= 3


def test_twenty_invites_never_acknowledged_hold_two_slots_until_the_ack_timeout_and_others_get_through(sip, work, monkeypatch):
    from channels.voice.settings import SipLimitSettings
    from channels.voice.sip.limits import SourceLimits

    monkeypatch.setattr(sip, "limits", SourceLimits(SipLimitSettings(calls_per_source=2, attempts_burst=40)))
    for f in ("no_ack.xml", "hold.xml"):
        shutil.copy(SIPP_DIR / f, work / f)
    junk = start_sipp(work / "no_ack.xml", sip.port, calls=20, rate=100, limit=20, extra=["-d", "20000"])
    try:
        wait_for(lambda: sip.open_calls == 2, timeout=10)
        started = time.monotonic()
        time.sleep(1.5)  # the refused ones kept their slot 1 s (refuse_after_seconds)
        assert sip.open_calls == 2  # one source never holds more than its share
        other = [a if a != "127.0.0.1" else "127.0.0.3" for a in sipp_command(work / "hold.xml", sip.port, extra=["-d", "500"])]
        done = subprocess.run(other, cwd=work, capture_output=True, text=True, errors="replace", timeout=30)
        assert done.returncode == 0, done.stderr[-1500:]  # another caller is answered meanwhile
        wait_for(lambda: sip.open_calls == 0 and sip.slots_in_use() == 0, timeout=ACK_TIMEOUT + 5)
        assert time.monotonic() - started < ACK_TIMEOUT + 5  # released at the ACK timeout, not RFC 3261's 32 s
    finally:
        junk.kill()
        junk.wait(5)
