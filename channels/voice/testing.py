"""Test support shipped with the voice channel (as `channels/web/testing.py` is with the web one), for the voice
tests and `bench/voice.sh`: callers scripted for sipp, G.711 audio, correlation, free port blocks, baresip.

A test describes a caller as a timeline (`Caller`): speech at t seconds, a key pressed as an RFC 4733
telephone-event or as a SIP INFO `application/dtmf-relay`, hanging up at t or waiting for our BYE. From it
come two files sipp runs: one RTP stream (a pcap of G.711 µ-law and telephone-event packets with one SSRC,
continuous sequence numbers and timestamps, silence between the speech so the line is never dead) played
with `play_pcap_audio`, and the scenario XML (tests/data/sipp/caller.xml with the timed INFO requests and
the ending filled in).

Speech comes from Debian's Asterisk sound files (asterisk-core-sounds-en), µ-law encoded here, so the test
knows exactly what the gateway should have recorded: `correlation()` aligns the recording on it.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the sipp scenarios are test data, not package data
SIPP_DIR = ROOT / "tests" / "data" / "sipp"
SOUND_DIRS = (Path("/usr/share/asterisk/sounds/en"), Path("/usr/share/asterisk/sounds/en_US_f_Allison"))
RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
EVENT_PT = 101
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


# -- G.711 µ-law (ITU-T G.711), as a phone line carries it ------------------------------------------------------
def ulaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -mag, mag).astype(np.int16)


# -- audio files -----------------------------------------------------------------------------------------------
def sound_file(name: str) -> Path | None:
    """An Asterisk sound file by name (e.g. "tt-weasels"), or None when the package is not installed."""
    for d in SOUND_DIRS:
        p = d / f"{name}.wav"
        if p.exists():
            return p
    return None


def read_wav(path: Path) -> np.ndarray:
    """A WAV file as 8 kHz mono int16 (converted by sox when it is anything else)."""
    with wave.open(str(path), "rb") as w:
        ok = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()) == (1, 2, RATE, "NONE")
        if ok:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    raw = subprocess.run(["sox", "-D", str(path), "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def line_audio(pcm: np.ndarray) -> np.ndarray:
    """What the far end decodes from `pcm` sent as µ-law: the reference a recording is compared with."""
    return ulaw_decode(ulaw_encode(pcm))


def correlation(sent: np.ndarray, recorded: np.ndarray, *, piece: float = 0.1, slip: float = 0.04) -> float:
    """How faithfully `recorded` holds `sent`: normalised cross-correlation after aligning (1.0: the same
    waveform). `sent` is found in `recorded` as a whole, then each `piece` seconds of it may slip by up to
    `slip` seconds, since a jitter buffer may conceal a late packet (a frame added) and catch up later (one
    dropped). At least 90 % of `sent` must be inside the recording."""
    a, b = sent.astype(np.float64), recorded.astype(np.float64)
    if len(a) == 0 or len(b) < 0.9 * len(a):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lag = int(np.argmax(np.concatenate([xc[n - len(a) + 1 :], xc[: len(b)]]))) - (len(a) - 1)
    step, max_slip = int(piece * RATE), int(slip * RATE)
    dot = ea = eb = 0.0
    covered, drift = 0, 0
    for start in range(0, len(a), step):
        x = a[start : start + step]
        best = None
        quiet = np.dot(x, x) < 1e-3 * np.dot(a, a) / max(1, len(a) // len(x))  # nothing to align on
        for d in ([drift] if quiet else range(drift - max_slip, drift + max_slip + 1)):
            at = start + lag + d
            if at < 0 or at + len(x) > len(b):
                continue
            y = b[at : at + len(x)]
            fit = np.dot(x, y) / (np.sqrt(np.dot(y, y)) or 1.0)
            if best is None or fit > best[0]:
                best = (fit, d, y)
        if best is None:
            continue
        _, d, y = best
        score = np.dot(x, y)
        drift = d  # slips add up: the next piece starts from this one's alignment
        dot, ea, eb, covered = dot + score, ea + np.dot(x, x), eb + np.dot(y, y), covered + len(x)
    if covered < 0.9 * len(a) or ea == 0 or eb == 0:
        return 0.0
    return float(dot / np.sqrt(ea * eb))


# -- one RTP stream as a pcap ----------------------------------------------------------------------------------
class RtpStream:
    """G.711 µ-law frames every 20 ms from t=0, with speech and RFC 4733 events placed at given times."""

    def __init__(self, seconds: float, ssrc: int = 0x48454C50):
        self.frames = int(np.ceil(seconds * 1000 / 20))
        self.audio = np.zeros(self.frames * FRAME, dtype=np.int16)
        self.events: dict[int, str] = {}  # first frame -> key
        self.ssrc = ssrc

    def speech(self, at: float, pcm: np.ndarray) -> None:
        start = int(at * RATE)
        end = min(len(self.audio), start + len(pcm))
        self.audio[start:end] = pcm[: end - start]

    def key(self, at: float, key: str) -> None:
        self.events[int(at * 1000 / 20)] = key

    def packets(self):
        """(time in seconds, RTP packet) in sending order."""
        seq, frame = 1000, 0
        event_frames = 8  # 160 ms of tone
        while frame < self.frames:
            ts = frame * FRAME
            if frame in self.events:
                code = DTMF_EVENTS[self.events[frame]]
                for i in range(event_frames + 2):  # the end packet is sent three times (RFC 4733 §2.5.1.4)
                    end = i >= event_frames - 1
                    duration = min(i + 1, event_frames) * FRAME
                    payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
                    header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | EVENT_PT, seq & 0xFFFF, ts, self.ssrc)
                    yield (frame + min(i, event_frames - 1)) * 0.02, header + payload
                    seq += 1
                frame += event_frames
                continue
            chunk = self.audio[frame * FRAME : (frame + 1) * FRAME]
            header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts, self.ssrc)
            yield frame * 0.02, header + ulaw_encode(chunk)
            seq += 1
            frame += 1

    def write_pcap(self, path: Path) -> None:
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
        for t, rtp in self.packets():
            udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
            frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
            sec, usec = int(t), int(round((t - int(t)) * 1e6))
            out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        path.write_bytes(b"".join(out))


# -- a scripted caller -----------------------------------------------------------------------------------------
@dataclass
class Caller:
    """What one sipp caller does, second by second from the moment the call is answered."""

    seconds: float  # length of the RTP stream (the caller stays on the line at least this long)
    caller_id: str = "+390000000000"
    hang_up_at: float | None = None  # None: wait for the gateway's BYE
    bye_timeout: float = 60.0
    stream: RtpStream = field(init=False)
    infos: list[tuple[float, str]] = field(default_factory=list)
    sent: dict[str, np.ndarray] = field(default_factory=dict)  # label -> the speech as the line carries it

    def __post_init__(self):
        self.stream = RtpStream(self.seconds)

    def say(self, at: float, sound: str, label: str | None = None) -> float:
        """Speak an Asterisk sound file at `at`; returns when it ends."""
        path = sound_file(sound)
        if path is None:
            raise FileNotFoundError(sound)
        pcm = read_wav(path)
        self.stream.speech(at, pcm)
        self.sent[label or sound] = line_audio(pcm)
        return at + len(pcm) / RATE

    def key(self, at: float, key: str) -> None:
        """A key as an RFC 4733 telephone-event in the RTP stream."""
        self.stream.key(at, key)

    def info(self, at: float, key: str) -> None:
        """A key as a SIP INFO with application/dtmf-relay."""
        self.infos.append((at, key))

    def write(self, directory: Path, name: str = "caller", *, via_proxy: bool = False) -> Path:
        """The scenario and its pcap in `directory`; returns the scenario's path. `via_proxy`: the gateway
        answers behind a record-routing proxy (Kamailio), see `through_proxy()`."""
        directory.mkdir(parents=True, exist_ok=True)
        pcap = directory / f"{name}.pcap"
        self.stream.write_pcap(pcap)
        steps, now = [], 0.0
        for at, key in sorted(self.infos):
            if at > now:
                steps.append(f'  <pause milliseconds="{int((at - now) * 1000)}"/>')
                now = at
            steps.append(INFO.replace("@KEY@", key))
        if self.hang_up_at is not None:
            if self.hang_up_at > now:
                steps.append(f'  <pause milliseconds="{int((self.hang_up_at - now) * 1000)}"/>')
            steps.append(HANG_UP)
        else:
            steps.append(WAIT_BYE.replace("@TIMEOUT@", str(int(self.bye_timeout * 1000))))
        template = (SIPP_DIR / "caller.xml").read_text()
        xml = template.replace("<!-- @STEPS@ -->", "\n".join(steps)).replace("@CALLER@", self.caller_id).replace("@PCAP@", str(pcap))
        scenario = directory / f"{name}.xml"
        scenario.write_text(through_proxy(xml) if via_proxy else xml)
        return scenario


def through_proxy(xml: str) -> str:
    """A caller scenario made to follow the dialog's route set (RFC 3261 §12.2.1.1), as a UA behind a
    record-routing proxy must: the 200 OK's Record-Route and Contact are kept (sipp's `rrs`), and ACK, INFO
    and BYE go to the callee's Contact ([next_url]) with the Route headers ([routes]), through the proxy."""
    xml = xml.replace('<recv response="200" rtd="true"/>', '<recv response="200" rtd="true" rrs="true"/>')
    out = []
    for line in xml.splitlines():
        m = re.match(r"^(\s*)(ACK|INFO|BYE) sip:helpdesk@\[remote_ip\]:\[remote_port\] SIP/2.0$", line)
        if m:
            out += [f"{m[1]}{m[2]} [next_url] SIP/2.0", f"{m[1]}[routes]"]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


INFO = """  <send>
    <![CDATA[
      INFO sip:helpdesk@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] INFO
      Contact: <sip:@CALLER@@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal=@KEY@
      Duration=160
    ]]>
  </send>
  <recv response="200"/>"""

HANG_UP = """  <send>
    <![CDATA[
      BYE sip:helpdesk@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] BYE
      Contact: <sip:@CALLER@@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>"""

WAIT_BYE = """  <recv request="BYE" timeout="@TIMEOUT@"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>"""


# -- running sipp ------------------------------------------------------------------------------------------------
@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str  # sipp's -trace_err file

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def sipp_command(scenario: Path, port: int, *, transport: str = "u1", calls: int = 1, rate: float | None = None,
                 limit: int | None = None, media_port: int | None = None, local_port: int | None = None,
                 extra: list[str] | None = None) -> list[str]:
    cmd = ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-m", str(calls), "-i", "127.0.0.1", "-mi", "127.0.0.1",
           "-t", transport, "-nostdin", "-trace_err", "-timeout", "300s", "-timeout_error", "-max_recv_loops", "1000"]
    if rate is not None:
        cmd += ["-r", str(rate)]
    if limit is not None:
        cmd += ["-l", str(limit)]
    cmd += ["-mp", str(media_port or free_udp_pair())]
    cmd += ["-p", str(local_port or free_port(transport))]
    return cmd + (extra or [])


def run_sipp(scenario: Path, port: int, *, timeout: float = 180, cwd: Path | None = None, **kw) -> SippResult:
    cwd = cwd or scenario.parent
    p = subprocess.run(sipp_command(scenario, port, **kw), cwd=cwd, capture_output=True, text=True, errors="replace",
                       timeout=timeout)  # sipp's screen may hold bytes that are not UTF-8
    return SippResult(p.returncode, p.stdout[-3000:], p.stderr[-3000:], _errors(cwd, scenario))


def start_sipp(scenario: Path, port: int, *, cwd: Path | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(sipp_command(scenario, port, **kw), cwd=cwd or scenario.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")


def _errors(cwd: Path, scenario: Path) -> str:
    found = sorted(Path(cwd).glob(f"{scenario.stem}_*_errors.log"))
    return "\n".join(f.read_text(errors="replace")[-2000:] for f in found)


def free_port(transport: str = "u1") -> int:
    """A port free for the caller's SIP socket (UDP or TCP, as sipp's -t says)."""
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_pair() -> int:
    """An even UDP port whose next one is free too (RTP and RTCP), for a caller's media."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1] & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port pair")


def free_port_block(n: int) -> int:
    """A port that is free, with the n - 1 after it, for UDP and TCP on loopback. Taken below the kernel's
    ephemeral range, so no outgoing connection of another process grabs one before our listener binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, max(10001, low - n))
        held = []
        try:
            for port in range(base, base + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    held.append(sock)
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def have(*binaries: str) -> str | None:
    """The first of `binaries` that is not installed, else None."""
    for b in binaries:
        if shutil.which(b) is None:
            return b
    return None


def corpora_dir() -> Path:
    return Path(os.environ.get("HELPDESK_CORPORA", "/work/shared/corpora"))


# -- baresip, a second, independent SIP stack ----------------------------------------------------------------
BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
sip_trans_def		udp
audio_player		aubridge,nil
audio_alert		aubridge,nil
audio_source		aufile,{audio}
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
rtp_ports		{rtp_port}-{rtp_end}
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
"""


class Baresip:
    """baresip run headless: its audio source is a WAV file (aufile), commands and events go over ctrl_tcp
    (JSON in netstrings), keys are sent with `sndcode` (RFC 4733 telephone-events)."""

    def __init__(self, directory: Path, caller: str, audio: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ctrl_port = free_port("t1")
        rtp = free_udp_pair()
        (self.dir / "config").write_text(BARESIP_CONFIG.format(sip_port=free_port(), audio=audio, rtp_port=rtp,
                                                               rtp_end=rtp + 1, ctrl_port=self.ctrl_port))
        (self.dir / "accounts").write_text(f"<sip:{caller}@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict] = []
        self._buf = b""

    def start(self, max_seconds: int = 120) -> None:
        self.log = open(self.dir / "baresip.log", "wb")
        self.proc = subprocess.Popen(["baresip", "-4", "-n", "127.0.0.1", "-f", str(self.dir), "-t", str(max_seconds)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("baresip did not start: " + (self.dir / "baresip.log").read_text(errors="replace")[-1500:])
                time.sleep(0.1)

    def command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def wait_event(self, kind: str, timeout: float = 15.0) -> dict:
        """Read events until one of type `kind` (e.g. CALL_ESTABLISHED, CALL_CLOSED) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("type") == kind:
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"baresip: no {kind} event; saw {[e.get('type') for e in self.events]}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"baresip closed its control socket; saw {[e.get('type') for e in self.events]}")
            self._buf += chunk
            while b":" in self._buf:
                n, rest = self._buf.split(b":", 1)
                if len(rest) < int(n) + 1:
                    break
                msg, self._buf = rest[: int(n)], rest[int(n) + 1 :]
                self.events.append(json.loads(msg))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        if self.sock is not None:
            self.sock.close()
        if getattr(self, "log", None):
            self.log.close()


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
