"""More calls than one pjsua2 process takes: `voice.sip.workers = 3` puts Kamailio (Debian's `kamailio`) on
`voice.sip.port` in front of three call-handling worker processes, and everything here is real: Kamailio's
dispatcher and record-routing, the workers' pjsua2 endpoints, sipp callers streaming G.711 speech through it.

The channel is built the way `serve` builds it (`channels.voice.plugin.load`) and runs on an event loop in
its own thread, as in the gateway; the workers build their own core from the configuration, so the database
is an SQLite file they all open. What is checked is what an operator would check: a ticket per caller whose
recording is the audio the caller sent, calls answered by every worker (Kamailio logs which one answered),
and, when a worker is killed with SIGKILL in the middle of a call, the caller's words up to the kill in a
ticket after the supervisor started the worker again, while the calls on the other workers go on unharmed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.conftest import ROOT, make_config, missing, wait_for
from tests.voice_support import RATE, Caller, correlation, free_port_block, read_wav, require_sip_peers, sound_file, start_sipp

PROMPTS = ROOT / "config" / "prompts"
WORKERS = 3
SPEAKS_AT = 7.0  # seconds after the answer: the caller has keyed English and "report", the name prompt is over
ANSWERED = re.compile(r"call (\S+) from (\S+) answered by sip:127\.0\.0\.1:(\d+)")


class LoopThread:
    """An asyncio loop running in a thread for the whole module, as the gateway's runs for its lifetime:
    the supervisor of the workers is a task on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """The voice channel with 3 workers behind Kamailio, on a fixed port block, short IVR timeouts."""
    require_sip_peers("tt-weasels", "vm-intro")
    from channels.voice import kamailio

    try:
        kamailio.binary()
        kamailio.module_dir()
    except RuntimeError as e:
        missing(str(e))
    from channels.voice import plugin, prompts
    from channels.voice.settings import VoiceSettings
    from gateway.app import build_core, channel_context, seed_directory

    prompts.build(PROMPTS)
    tmp = tmp_path_factory.mktemp("kamailio")
    core = build_core(make_config(tmp, f"sqlite:///{tmp / 'helpdesk.sqlite3'}"))
    seed_directory(core)
    settings = VoiceSettings(
        enabled=True,
        prompts_dir=PROMPTS,
        sip={"port": free_port_block(WORKERS + 1), "rtp_port": 0, "workers": WORKERS, "ack_timeout_seconds": 2,
             "limits": {"calls_per_source": 4, "attempts_burst": 40}},  # every test caller is 127.0.0.1
        ivr={"gather_timeout": 2.0, "confirm": False},  # no transcription while the caller waits: this is about Kamailio
    )
    channel = plugin.load(channel_context(core, settings))
    (workers,) = channel.services
    loop = LoopThread()
    try:
        loop.run(channel.start(), timeout=120)
    except BaseException:
        loop.run(channel.stop(), timeout=60)
        loop.close()
        core.close()
        raise
    workers.core, workers.tmp = core, tmp
    yield workers
    loop.run(channel.stop(), timeout=60)
    loop.close()
    core.close()


# -- helpers ---------------------------------------------------------------------------------------------------
def tickets_of(core, phone: str):
    from ticketing.models import Message

    with core.sessions() as s:
        numbers = [core.desk.number(m.ticket) for m in s.scalars(select(Message).where(Message.sender_phone == phone))]
    return [core.desk.ticket(n) for n in numbers]


def attachments(ticket) -> dict[str, object]:
    return {a.filename.removeprefix("answer-").removesuffix(".wav"): a for m in ticket.messages for a in m.attachments}


def answered(caplog) -> dict[str, tuple[str, int, float]]:
    """Kamailio's log: caller -> (SIP Call-ID, the port of the worker that answered, when)."""
    out = {}
    for r in caplog.records:
        if r.name == "channels.voice.kamailio":
            m = ANSWERED.search(r.getMessage())
            if m:
                out[m[2]] = (m[1], int(m[3]), r.created)
    return out


def short_call(phone: str, sound: str = "tt-weasels") -> Caller:
    """English, "report a problem", says its name (ended with #) and hangs up during the next question."""
    speech = len(read_wav(sound_file(sound))) / RATE
    c = Caller(11.0 + speech, caller_id=phone, hang_up_at=10.0 + speech)
    c.key(1.0, "3")  # English
    c.key(1.5, "1")
    end = c.say(SPEAKS_AT, sound, "name")
    c.key(end + 0.6, "#")
    return c


def start_callers(callers: dict[str, Caller], work: Path, port: int, stagger: float = 0.1) -> dict:
    procs = {}
    for phone, c in callers.items():
        scenario = c.write(work / phone.lstrip("+"), via_proxy=True)
        procs[phone] = start_sipp(scenario, port, extra=["-timeout", "90s"])
        time.sleep(stagger)
    return procs


def finish(procs: dict, timeout: float = 60) -> dict[str, tuple[int, str]]:
    out = {}
    deadline = time.monotonic() + timeout
    for phone, p in procs.items():
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
        out[phone] = (p.returncode, (stderr or "")[-1500:] + (stdout or "")[-1500:])
    return out


def speech_onset(pcm: np.ndarray) -> int:
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 300)
    return int(loud[0]) * 160 if len(loud) else len(pcm)


def wav_header_claims(path: Path) -> int:
    """How many bytes of audio a WAV file's header claims (its data chunk's size; 0 for one never finalised)."""
    head = path.read_bytes()[:4096]
    at = head.find(b"data")
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE" and at > 0, head[:64]
    return struct.unpack("<I", head[at + 4 : at + 8])[0]


def audio_bytes(path: Path) -> int:
    head = path.read_bytes()[:4096]
    return path.stat().st_size - (head.find(b"data") + 8)


# -- the tests ---------------------------------------------------------------------------------------------------
def sip_request(port: int, first_line: str, headers: str = "") -> str:
    """Send one SIP request over UDP to Kamailio and return its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        me = s.getsockname()[1]
        method = first_line.split()[0]
        s.sendto(
            (f"{first_line}\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-probe-{me}\r\n"
             f"From: <sip:probe@127.0.0.1>;tag=1\r\n{headers}Call-ID: probe-{me}@127.0.0.1\r\n"
             f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(),
            ("127.0.0.1", port),
        )
        return s.recv(4096).decode()


def test_kamailio_answers_on_the_public_port_for_the_workers(gateway):
    port = gateway.sip.port
    reply = sip_request(port, f"OPTIONS sip:127.0.0.1:{port} SIP/2.0", f"To: <sip:127.0.0.1:{port}>\r\n")
    assert reply.startswith("SIP/2.0 200")
    assert "helpdesk-gateway (kamailio)" in reply
    assert sorted(gateway.procs) == list(range(WORKERS))
    assert all(p.returncode is None for p in gateway.procs.values())
    assert gateway.ready()  # what /readyz reports: the workers listen and Kamailio runs


def test_kamailio_relays_in_dialog_requests_only_to_the_workers(gateway):
    port = gateway.sip.port
    to = f"To: <sip:helpdesk@127.0.0.1:{port}>;tag=abc\r\n"
    elsewhere = sip_request(port, "BYE sip:someone@192.0.2.1:5060 SIP/2.0", f"Route: <sip:127.0.0.1:{port};lr>\r\n{to}")
    assert elsewhere.startswith("SIP/2.0 403")
    # The same request to a worker is relayed; the worker knows no such dialog.
    worker = sip_request(port, f"BYE sip:helpdesk@127.0.0.1:{gateway.ports[0]} SIP/2.0", f"Route: <sip:127.0.0.1:{port};lr>\r\n{to}")
    assert worker.startswith("SIP/2.0 481")


def test_ten_simultaneous_calls_are_spread_over_the_workers_and_all_make_tickets(gateway, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="channels.voice.kamailio")
    callers = {f"+39055100{i:04d}": short_call(f"+39055100{i:04d}") for i in range(10)}
    results = finish(start_callers(callers, tmp_path, gateway.sip.port))
    failed = {phone: out for phone, out in results.items() if out[0] != 0}
    assert not failed, failed

    by_worker = {port for _, port, _ in answered(caplog).values()}
    assert set(answered(caplog)) == set(callers)
    assert by_worker == set(gateway.ports)  # every worker took calls
    for phone, c in callers.items():
        (ticket,) = wait_for(lambda: tickets_of(gateway.core, phone), timeout=15)
        assert ticket.language == "en"
        heard = attachments(ticket)
        assert set(heard) == {"name"}, phone
        assert correlation(c.sent["name"], read_wav(gateway.core.blobs.path(heard["name"].sha256))) >= 0.9, phone


def test_a_worker_killed_mid_call_leaves_its_callers_words_and_spares_the_other_calls(gateway, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="channels.voice.kamailio")
    wait_for(lambda: all(p.returncode is None for p in gateway.procs.values()), timeout=30)
    victim = "+390551200000"
    callers = {victim: short_call(victim, "vm-intro")}  # 5.7 s of speech, cut at about 3 s
    callers.update({p: short_call(p) for p in ("+390551200001", "+390551200002")})
    procs = start_callers(callers, tmp_path, gateway.sip.port, stagger=0.05)
    try:
        seen = wait_for(lambda: (a := answered(caplog)) and len(a) == 3 and a, timeout=15)
        assert len({port for _, port, _ in seen.values()}) == 3  # one call per worker
        call_id, port, at = seen[victim]
        index = gateway.ports.index(port)
        proc = gateway.procs[index]
        time.sleep(max(0.0, at + SPEAKS_AT + 3.0 - time.time()))  # 3 s into the caller's name
        os.kill(proc.pid, signal.SIGKILL)

        # What the killed worker left: the recording in progress, its WAV header never finalised.
        (wav,) = Path(gateway.tmp, "data", "calls", f"sip-{index}").glob("*/answer-name.wav")
        assert audio_bytes(wav) > RATE * 2  # more than a second of audio had reached the disk
        assert wav_header_claims(wav) < audio_bytes(wav)

        others = finish({p: procs.pop(p) for p in list(procs) if p != victim})
    finally:
        for p in procs.values():
            p.kill()
            p.wait(5)

    # The calls on the other workers went on to the end.
    assert all(rc == 0 for rc, _ in others.values()), others
    for phone in others:
        (ticket,) = wait_for(lambda: tickets_of(gateway.core, phone), timeout=15)
        heard = attachments(ticket)
        assert correlation(callers[phone].sent["name"], read_wav(gateway.core.blobs.path(heard["name"].sha256))) >= 0.9

    # The supervisor started the worker again, and it delivered the call it was killed in.
    wait_for(lambda: gateway.procs[index].pid != proc.pid and gateway.procs[index].returncode is None, timeout=30)
    (ticket,) = wait_for(lambda: tickets_of(gateway.core, victim), timeout=60)
    (message,) = ticket.messages
    assert "hung up" in message.text
    heard = attachments(ticket)
    assert set(heard) == {"name"}
    path = gateway.core.blobs.path(heard["name"].sha256)
    assert wav_header_claims(path) == audio_bytes(path) > 0  # the header was repaired
    recorded = read_wav(path)
    sent = callers[victim].sent["name"]
    kept = len(recorded) - speech_onset(recorded)  # the caller's words up to the kill
    assert RATE * 1.5 < kept < len(sent) - RATE
    start = speech_onset(sent)
    assert correlation(sent[start : start + kept - RATE // 5], recorded) >= 0.9
    assert not wav.parent.exists()  # the spool of the cut-off call is gone once delivered


def test_behind_kamailio_a_worker_takes_the_callers_address_from_its_header_and_only_from_it():
    """Kamailio appends X-Helpdesk-Source: $si to each INVITE it relays (config/kamailio/kamailio.cfg); a worker
    believes it only in a request that came from the proxy's address, so a caller cannot pick its own key."""
    from types import SimpleNamespace

    from channels.voice.sip.endpoint import request_source

    msg = "INVITE sip:helpdesk@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nX-Helpdesk-Source: 198.51.100.7\r\n\r\nv=0\r\n"
    assert request_source(SimpleNamespace(srcAddress="127.0.0.1:5060", wholeMsg=msg), proxy="127.0.0.1") == "198.51.100.7"
    assert request_source(SimpleNamespace(srcAddress="203.0.113.9:5060", wholeMsg=msg), proxy="127.0.0.1") == "203.0.113.9"
    assert request_source(SimpleNamespace(srcAddress="203.0.113.9:5060", wholeMsg=msg)) == "203.0.113.9"
    assert request_source(SimpleNamespace(srcAddress="[2001:db8::1]:5060", wholeMsg=msg)) == "2001:db8::1"
    rendered = (ROOT / "config" / "kamailio" / "kamailio.cfg").read_text()
    assert 'remove_hf("X-Helpdesk-Source")' in rendered and "append_hf(\"X-Helpdesk-Source: $si" in rendered
