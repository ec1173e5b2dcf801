"""`SipService`: the voice channel's SIP transport, one pjsua2 endpoint on one port per process.

It runs in a SIP worker process (`sipworkers.py`), never in the gateway's. Before anything is set up for an
INVITE, its source passes the per-source limits (`limits.py`: attempts per second, calls open at once, a ban
for sources that keep going): a refused one gets 403/486/503 with Retry-After at once, and the refusals are
logged as one line per source and answer every 10 s with their count (`channels.logs.Throttled`).

An INVITE (RFC 3261) is answered 180 at once; the call's IVR session is opened off the pjsua2 thread (the
directory lookup of the caller id may read the database), then 200 OK and the greeting. From there each
thing the caller does (keys, an answer recorded, a timeout, hanging up) goes to the call's own serial queue
on a small worker pool, where the session may deliver a report or look up a status (database writes), and
the media steps it returns are posted back to the pjsua2 thread. One queue per call keeps a call's events
in order (a `CallSession` is used by one thread at a time); the pool keeps slow database work from ever
stalling the audio of the other calls.

When a call ends, a recording in progress is kept and the session is told (`hang_up()`), so a caller who
hangs up after saying anything still leaves a ticket. A call whose session failed (the database was
unreachable while delivering) is hung up and left in the spool, where `Calls.recover()` delivers it at its
next round (its worker process runs one a minute) or the next start, rather than losing it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from channels.logs import Throttled

from ..build import make_calls
from ..calls import Calls, CallSession
from ..settings import VoiceSettings
from .limits import SourceLimits
from .media import PromptFiles, caller_id

log = logging.getLogger("channels.voice.sip")
INSTANT_REFUSALS = 10  # refusals a second answered at once (~40 sockets opened and closed a second: safe)


class Serial:
    """Runs one call's work in order on a shared pool, one item at a time."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool
        self._q: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._q.append(fn)
            if self._running:
                return
            self._running = True
        self.pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._q:
                    self._running = False
                    return
                fn = self._q.popleft()
            try:
                fn()
            except Exception:  # noqa: BLE001 - logged; the call's next item still runs
                log.exception("SIP call work failed")


@dataclass
class Leg:
    """What the workers know of a call: no pjsua2 object ever crosses to them."""

    token: int
    call_id: str
    caller_id: str | None
    serial: Serial
    source: str = ""
    session: CallSession | None = None
    broken: bool = False  # the session failed: leave its spool for recover()


def _with_registrar_exempt(sip):
    """The limits, with the PBX we register to exempt: it sends every call it forwards from one address."""
    reg = sip.registration
    if not reg.enabled or not reg.registrar:
        return sip.limits
    host = reg.registrar.removeprefix("sip:").removeprefix("sips:").split(";")[0].split("@")[-1].rsplit(":", 1)[0].strip("[]")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        addresses = {host}
    return sip.limits.model_copy(update={"exempt": [*sip.limits.exempt, *sorted(addresses)]})


class SipService:
    name = "voice-sip"

    def __init__(self, ctx, settings: VoiceSettings, spool: Path):
        self.ctx, self.settings, self.spool = ctx, settings, Path(spool)
        self.calls: Calls | None = None
        self.port: int | None = None
        self.pj = None
        self.pool: ThreadPoolExecutor | None = None
        self.prompts: PromptFiles | None = None
        self._live: dict = {}  # token -> IvrCall; pjsua2 thread only
        self._legs: dict[int, Leg] = {}
        self._tokens = itertools.count(1)
        self.answered = 0  # calls the IVR took, since start (for the bench and the logs)
        self.limits = SourceLimits(_with_registrar_exempt(settings.sip))  # pjsua2 thread only
        self._refused: set = set()  # RefusedCall objects until pjsua is done with them; pjsua2 thread only
        self.refusals = 0
        self._recent_refusals: list[float] = []
        self._refusal_log = Throttled(log, every=10.0)

    def local_calls(self) -> list[Calls]:
        if self.calls is None:
            self.calls = make_calls(self.ctx, self.settings, self.spool)
        return [self.calls]

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def start_sync(self) -> None:
        from .endpoint import PjThread

        self.local_calls()
        self.prompts = PromptFiles(self.settings.prompts_dir, self.spool.parent / (self.spool.name + "-tts"))
        self.pool = ThreadPoolExecutor(max_workers=max(2, self.settings.sip.max_calls), thread_name_prefix="sip-call")
        self.pj = PjThread(
            self.settings.sip,
            on_incoming=self._incoming,
            on_tick=self._tick,
            on_shutdown=self._hang_up_all,
            on_release=self._release,
            open_calls=lambda: len(self._live),
        )
        try:
            self.port = self.pj.start()
        except BaseException:
            self.pool.shutdown(wait=False)
            raise

    def stop_sync(self) -> None:
        if self.pj is not None:
            self.pj.stop()  # hangs up every call; their endings are queued to the pool
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # reports of calls cut by the stop are delivered before we return
        self.pj = self.pool = None

    @property
    def open_calls(self) -> int:
        """Calls the IVR is handling (answered or being answered)."""
        return len(self._legs)

    def slots_in_use(self) -> int:
        """Call slots pjsua counts (what a new caller is turned away by): open calls plus ended dialogs
        still waiting for their last SIP transaction."""
        return self.pj.slots_in_use() if self.pj is not None else 0

    # -- on the pjsua2 thread --------------------------------------------------------------------------------
    def _incoming(self, account, pj_call_id: int, rdata) -> None:
        from .call import IvrCall
        from .endpoint import RefusedCall, request_source

        source = request_source(rdata, self.settings.sip.limits.proxy)
        refusal = self.limits.admit(source)
        if refusal is not None:  # cheap: no IVR, no thread, no log line per INVITE
            call = RefusedCall(account, pj_call_id, self._refused.discard)
            self._refused.add(call)
            # pjsua opened two media sockets for it already, and pjlib keeps a closed one 500 ms out of 64:
            # refused at once, a flood would churn sockets faster than that and pjlib would abort the process.
            # So past a few refusals a second, a refusal is answered after a pause that keeps its call slot:
            # the slots fill and pjsua turns the rest away itself (486) before opening any socket.
            now = time.monotonic()
            self._recent_refusals = [t for t in self._recent_refusals if now - t < 1.0][-INSTANT_REFUSALS:] + [now]
            if len(self._recent_refusals) > INSTANT_REFUSALS:
                self.pj.call_later(self.settings.sip.limits.refuse_after_seconds,
                                   lambda: call.refuse(refusal.code, refusal.reason, refusal.retry_after))
            else:
                call.refuse(refusal.code, refusal.reason, refusal.retry_after)
            self.refusals += 1
            self._refusal_log.warning((refusal.code, source), "SIP: %s from %s refused (%s)", refusal.code, source, refusal.reason)
            return
        token = next(self._tokens)
        call = IvrCall(account, pj_call_id, loop=self.pj, token=token, settings=self.settings.sip, on_event=self._event, on_end=self._ended)
        self._live[token] = call  # without this reference the Call is collected and the caller gets 603
        ci = call.getInfo()
        call.call_id = ci.callIdString
        call.ring()
        leg = Leg(token, ci.callIdString, caller_id(ci.remoteUri), Serial(self.pool), source=source)
        self._legs[token] = leg
        log.info("call %s from %s (%s)", leg.call_id, leg.caller_id, ci.remoteUri)
        leg.serial.submit(lambda: self._open(leg))

    def _event(self, token: int, event) -> None:
        leg = self._legs.get(token)
        if leg is not None:
            leg.serial.submit(lambda: self._handle(leg, event))

    def _ended(self, token: int, recording: str | None) -> None:
        self._live.pop(token, None)  # dropped inside DISCONNECTED: a later destruction would hang up a reused slot
        leg = self._legs.pop(token, None)
        if leg is not None:
            self.limits.release(leg.source)
            leg.serial.submit(lambda: self._close(leg, recording))

    def _tick(self) -> None:
        self._refusal_log.flush()
        now = time.monotonic()
        for call in list(self._live.values()):
            call.watchdog(now)

    def _hang_up_all(self) -> None:
        for call in list(self._live.values()):
            call.hang_up("the gateway is stopping")

    def _release(self) -> None:
        """Before the library goes: calls that did not end in time are ended here, their sessions told."""
        for call in list(self._live.values()):
            call.release()
        self._refused.clear()

    def _on_call(self, token: int, fn: Callable) -> None:
        """Post `fn(call)` to the pjsua2 thread, for the call of `token` if it is still there."""

        def run():
            call = self._live.get(token)
            if call is not None:
                fn(call)

        self.pj.post(run)

    # -- on a worker ---------------------------------------------------------------------------------------------
    def _open(self, leg: Leg) -> None:
        try:
            session, actions = self.calls.open(leg.call_id, leg.caller_id)
            steps = self.prompts.steps(actions, session)
        except Exception:  # noqa: BLE001 - ours: the caller is told to try later (503), and we log it
            log.exception("call %s: the IVR could not start", leg.call_id)
            self._on_call(leg.token, lambda c: c.refuse(503))
            return
        leg.session = session
        self.answered += 1
        self._on_call(leg.token, lambda c: c.accept(steps))

    def _handle(self, leg: Leg, event) -> None:
        from .call import RecordingDone

        if leg.session is None or leg.broken:
            return
        try:
            if isinstance(event, RecordingDone):
                actions = leg.session.recorded(event.question)
            else:
                actions = leg.session.handle(event)
            steps = self.prompts.steps(actions, leg.session)
        except Exception:  # noqa: BLE001 - ours; the spool keeps what was said for recover()
            log.exception("call %s: the IVR failed; the call stays in the spool for recovery", leg.call_id)
            leg.broken = True
            self._on_call(leg.token, lambda c: c.hang_up("IVR error"))
            return
        self._on_call(leg.token, lambda c: c.perform(steps))

    def _close(self, leg: Leg, recording: str | None) -> None:
        if leg.session is None or leg.broken:
            return
        if recording is not None and not leg.session.finished:
            leg.session.recorded(recording)  # the answer cut by the hang-up still counts
        leg.session.hang_up()
