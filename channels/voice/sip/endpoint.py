"""The pjsua2 thread: the one thread in the process that touches pjsua2.

pjsua2 (PJSIP's C++ API, the `pjsua2-python` wheel) is safe only when used the way it was measured to work
here: one dedicated thread calls `libCreate()` itself, runs with `uaConfig.threadCnt = 0` and
`uaConfig.mainThreadOnly = True` (so every callback, the log writer's included, runs on it) and loops on
`libHandleEvents(10)`. Other threads never call pjsua2: they `post()` a function to this thread's queue (or
`call_later()` one), which runs between two polls. Shutting down goes in order: hang up the calls, let their
BYEs go out, delete the account, `libDestroy()`.

It listens on one host and port over UDP and TCP (RFC 3261 §18: a UA must support both), with the
conference bridge at 8 kHz so G.711 calls are never resampled, the null sound device (a server has no sound
card), and pjsip's own log routed into Python logging (`channels.voice.sip.pjsip`).

Limits measured with this wheel (bench/voice.sh): 4 calls at a time (`maxCalls`' compiled cap; a fifth
INVITE gets 486 before any media is set up). Every call opens an RTP and an RTCP socket on pjlib's select()
ioqueue, which has 64 handles and keeps a closed one for 500 ms: ~50 call set-ups a second are sustained,
at 60 a second the ioqueue runs dry and pjlib aborts the process. So this runs in a worker process of its own
(channels/voice/sipworkers.py), whose crash costs only its calls; the per-source limits (`sip/limits.py`,
answered by `RefusedCall`) and Kamailio's pike in front keep a flood from getting that far.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pjsua2 as pj

from channels.logs import Throttled

from ..settings import SipSettings

log = logging.getLogger("channels.voice.sip")
pjlog = logging.getLogger("channels.voice.sip.pjsip")

POLL_MS = 10


@dataclass(order=True)
class Timer:
    when: float
    seq: int
    fn: Callable[[], Any] | None = field(compare=False)

    def cancel(self) -> None:
        self.fn = None


class PjThread:
    """Owns the pjsua2 `Endpoint`, its transports and the account that receives calls.

    `on_incoming(account, pj_call_id, rdata)` is called (on this thread) for each new INVITE; `on_tick()` once
    a second for the watchdogs; `on_shutdown()` first thing when stopping, to hang up the calls, and
    `on_release()` once they had their chance to end, to drop every pjsua2 object before the library goes.
    """

    def __init__(self, settings: SipSettings, *, on_incoming, on_tick=None, on_shutdown=None, on_release=None, open_calls=None):
        self.settings = settings
        self.on_incoming, self.on_tick, self.on_shutdown, self.on_release = on_incoming, on_tick, on_shutdown, on_release
        self.open_calls = open_calls or (lambda: 0)
        self.port: int | None = None
        self.ep = None
        self.account = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- from any thread ------------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> int:
        """Start the thread; returns the bound SIP port once it listens (raises what stopped it otherwise)."""
        self._thread = threading.Thread(target=self._run, name="pjsua2", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the pjsua2 thread did not start in time")
        if self._error is not None:
            raise RuntimeError(f"SIP endpoint could not start: {self._error}") from self._error
        return self.port

    def post(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the pjsua2 thread, soon."""
        self._jobs.put(fn)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the pjsua2 thread did not stop within %.0f s", timeout)

    @staticmethod
    def slots_in_use() -> int:
        """Calls pjsua counts against maxCalls (a call we hung up keeps its slot until its dialog ends)."""
        return int(_library().pjsua_call_get_count())

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- on the pjsua2 thread -------------------------------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        t = Timer(time.monotonic() + delay, next(self._seq), fn)
        heapq.heappush(self._timers, t)
        return t

    def _run(self) -> None:
        try:
            self._create()
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._destroy()
            self._ready.set()
            return
        self._ready.set()
        next_tick = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                self.ep.libHandleEvents(POLL_MS)
                self._run_jobs()
                now = time.monotonic()
                self._run_timers(now)
                if now >= next_tick:
                    next_tick = now + 1.0
                    self._guard(self.on_tick)
                    self._guard(self._writer.throttled.flush)
        except BaseException:  # noqa: BLE001 - the loop itself broke: log, and still shut down in order
            log.exception("the pjsua2 loop failed")
        self._shutdown()

    def _run_jobs(self) -> None:
        while True:
            try:
                fn = self._jobs.get_nowait()
            except queue.Empty:
                return
            self._guard(fn)

    def _run_timers(self, now: float) -> None:
        while self._timers and self._timers[0].when <= now:
            t = heapq.heappop(self._timers)
            if t.fn is not None:
                self._guard(t.fn)

    @staticmethod
    def _guard(fn) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:  # noqa: BLE001 - one call's error must not stop the thread that carries all calls
            log.exception("error on the pjsua2 thread")

    def _create(self) -> None:
        s = self.settings
        _library().pj_log_set_level(min(s.log_level, 1))  # libCreate's banner would go to stdout: the writer comes with libInit
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = s.max_calls
        cfg.uaConfig.userAgent = "helpdesk-gateway"
        self._writer = _LogWriter()
        cfg.logConfig.writer = self._writer
        cfg.logConfig.level = s.log_level
        cfg.logConfig.consoleLevel = s.log_level
        cfg.logConfig.msgLogging = s.log_level >= 5
        cfg.logConfig.decor = 0
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.ecTailLen = 0  # no sound card, so no echo to cancel
        cfg.medConfig.noVad = True  # keep RTP flowing, so the caller's side never takes us for a dead line
        cfg.medConfig.maxMediaPorts = 4 * s.max_calls + 8  # per call: its stream, a player, a recorder
        cfg.medConfig.audioFramePtime = 20  # the bridge ticks at the RTP packet size: half the work of 10 ms
        # An IVR records, it does not converse: latency costs nothing, a late packet concealed (a frame made
        # up, another dropped later) costs a glitch in the recording. So the jitter buffer keeps 60-240 ms.
        cfg.medConfig.jbInit = 60
        cfg.medConfig.jbMinPre = 60
        cfg.medConfig.jbMaxPre = 240
        cfg.medConfig.jbMax = 500
        self.ep.libInit(cfg)
        _set_transaction_timeout(max(2, s.ack_timeout_seconds))
        self.ep.audDevManager().setNullDev()
        self.port = self._transports()
        self.ep.libStart()
        self.account = _Account(self)
        acfg = pj.AccountConfig()
        address = s.public_address or s.host
        reg = s.registration
        if reg.enabled:
            acfg.idUri = f"sip:{reg.user}@{reg.registrar.removeprefix('sip:').split(';')[0]}"
            acfg.regConfig.registrarUri = reg.registrar
            acfg.regConfig.timeoutSec = reg.expires_seconds
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", reg.user, 0, reg.secret()))
        else:
            acfg.idUri = f"sip:helpdesk@{address}:{self.port}"
        mt = acfg.mediaConfig.transportConfig
        mt.port = s.rtp_port
        mt.portRange = 0 if s.rtp_port == 0 else 4 * s.max_calls * 2 + 100
        mt.boundAddress = s.host
        if s.public_address:
            mt.publicAddress = s.public_address
        self.account.create(acfg, True)
        log.info("SIP listening on %s:%d (%s), up to %d calls", s.host, self.port, "/".join(s.transports), s.max_calls)

    def _transports(self) -> int:
        """Bind every configured transport on one port; port 0 picks one free for all of them."""
        s = self.settings
        for attempt in range(20):
            ids, port = [], s.port
            try:
                for kind in s.transports:
                    tc = pj.TransportConfig()
                    tc.port = port
                    tc.boundAddress = s.host
                    if s.public_address:
                        tc.publicAddress = s.public_address
                    ttype = pj.PJSIP_TRANSPORT_UDP if kind == "udp" else pj.PJSIP_TRANSPORT_TCP
                    ids.append(self.ep.transportCreate(ttype, tc))
                    if port == 0:
                        port = int(self.ep.transportGetInfo(ids[-1]).localName.rsplit(":", 1)[1])
                return port
            except pj.Error as e:
                for tid in ids:
                    self.ep.transportClose(tid)
                if s.port != 0 or attempt == 19:
                    raise RuntimeError(f"cannot listen on {s.host}:{port}: {e.info()}") from None
        raise AssertionError("unreachable")

    def _shutdown(self) -> None:
        self._guard(self.on_shutdown)
        # Let the BYEs go out and the DISCONNECTED callbacks run before the account and the library go.
        deadline = time.monotonic() + 3.0
        while self.open_calls() and time.monotonic() < deadline:
            self.ep.libHandleEvents(POLL_MS)
            self._run_jobs()
        for _ in range(10):
            self.ep.libHandleEvents(POLL_MS)
            self._run_jobs()
        self._timers.clear()
        self._guard(self.on_release)
        self._destroy()

    def _destroy(self) -> None:
        if self.account is not None:
            try:
                self.account.shutdown()
            except Exception:  # noqa: BLE001
                log.exception("account shutdown")
            self.account = None
        if self.ep is not None:
            try:
                self.ep.libDestroy()
            except Exception:  # noqa: BLE001
                log.exception("libDestroy")
            self.ep = None


def _library():
    """The wheel's own C library: a few public PJSIP C functions pjsua2 does not wrap."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjsip_tsx_set_timers.argtypes = [ctypes.c_uint] * 4
    lib.pjsip_tsx_set_timers.restype = None
    lib.pjsua_call_get_count.restype = ctypes.c_uint
    lib.pj_log_set_level.argtypes = [ctypes.c_int]
    return lib


def _set_transaction_timeout(seconds: int) -> None:
    """How long pjsip waits for the ACK of our 200 OK (and for any transaction's final answer).

    RFC 3261 says 64*T1 = 32 s; until then a call whose 200 OK is never acknowledged holds one of the 4 call
    slots even after we hung it up. `pjsip_tsx_set_timers` (sip_transaction.h; 0 keeps a timer as it is)
    sets pjsip's Td, which it uses as that timeout, to `voice.sip.ack_timeout_seconds`, so a junk INVITE
    frees its slot then. The cost: our own BYE or REFER also gives up after that long without an answer.
    """
    _library().pjsip_tsx_set_timers(0, 0, 0, seconds * 1000)


class _Account(pj.Account):
    """The one account calls arrive on (any request-URI reaches it: it is the default account)."""

    def __init__(self, owner: PjThread):
        super().__init__()
        self.owner = owner

    def onIncomingCall(self, prm):
        try:
            self.owner.on_incoming(self, prm.callId, prm.rdata)
        except Exception:  # noqa: BLE001 - an exception into C++ would take the process down
            log.exception("incoming call")

    def onRegState(self, prm):
        try:
            log.info("registration: %s %s", prm.code, prm.reason)
        except Exception:  # noqa: BLE001
            pass


class RefusedCall(pj.Call):
    """An INVITE turned away before anything is set up for it (a per-source limit): a final answer with
    Retry-After, and nothing logged per call. Kept referenced until pjsua says it is over (`on_end()`): a
    pjsua2 Call collected earlier would hang up a slot pjsua may have given to another call."""

    def __init__(self, account, pj_call_id: int, on_end: Callable[[RefusedCall], None]):
        super().__init__(account, pj_call_id)
        self.on_end: Callable[[RefusedCall], None] | None = on_end

    def refuse(self, code: int, reason: str, retry_after: int) -> None:
        try:
            prm = pj.CallOpParam()
            prm.statusCode = code
            prm.reason = reason
            h = pj.SipHeader()
            h.hName, h.hValue = "Retry-After", str(int(retry_after))
            prm.txOption.headers.append(h)
            self.answer(prm)
        except pj.Error:
            self._ended()

    def onCallState(self, prm):
        try:
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self._ended()
        except Exception:  # noqa: BLE001 - an exception into C++ would take the process down
            pass

    def _ended(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(self)


PROXY_SOURCE_HEADER = "x-helpdesk-source"  # added by config/kamailio/kamailio.cfg: the address Kamailio saw


def request_source(rdata, proxy: str | None = None) -> str:
    """The address an INVITE came from; behind our Kamailio (`proxy`), the caller's address it names."""
    src = rdata.srcAddress or ""
    host = src.rsplit(":", 1)[0].strip("[]") if src.count(":") == 1 or src.startswith("[") else src
    if proxy and host == proxy:
        head = rdata.wholeMsg.split("\r\n\r\n", 1)[0]
        for line in head.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == PROXY_SOURCE_HEADER:
                return value.strip() or host
    return host


class _LogWriter(pj.LogWriter):
    """pjsip's log lines into Python logging, at the matching level. Its warnings and errors repeat per
    request under a flood ("Unable to accept incoming call (too many calls)" for each INVITE turned away):
    they go through `Throttled`, one line per kind of message (digits aside) every 10 s, with a count."""

    def __init__(self):
        super().__init__()
        self.throttled = Throttled(pjlog, every=10.0, max_keys=200)

    def write(self, entry):
        try:
            level = _LEVELS.get(entry.level, logging.DEBUG)
            if not pjlog.isEnabledFor(level):
                return
            msg = entry.msg.rstrip()
            if level >= logging.WARNING:
                self.throttled.log(level, _DIGITS.sub("#", msg), "%s", msg)
            else:
                pjlog.log(level, "%s", msg)
        except Exception:  # noqa: BLE001
            pass


_DIGITS = re.compile(r"\d+")


_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}
