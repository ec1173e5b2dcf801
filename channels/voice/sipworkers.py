"""SIP is answered by supervised worker processes: pjsua2 never runs in the process that serves SMTP and the web.

pjlib aborts its whole process when its socket table runs dry (a flood of call set-ups) and the pjsua2 wheel
takes at most 4 calls per process. So every call is carried by a worker process, a complete `SipService` (its
own pjsua2 endpoint, its own spool `<spool>/sip-<index>`), and this supervisor, in the gateway, only starts
them, watches them and starts again one that died:
- `voice.sip.workers = 1` (the default): one worker listening on `voice.sip.port` itself, no Kamailio;
- `voice.sip.workers = N > 1`: N workers on the ports after `voice.sip.port` and Kamailio on `voice.sip.port`
  spreading the calls over them (config/kamailio/kamailio.cfg), its pike blocking flooding sources, its OPTIONS
  probes keeping new calls away from a worker until it answers again.
A worker that dies costs the calls it carried and nothing else: it is started again (after 1 s, longer when it
keeps dying at once) and, at its start and then every minute, delivers the calls left in its spool
(`Calls.recover`), so what those callers said still becomes tickets.

A worker is `python -m gateway.workers sip CONFIG_JSON VOICE_JSON INDEX PORT` (its core is built in
`gateway/`, like every process entry point): the gateway's configuration as the parent resolved it, the voice
section this channel was given, its index and port. It dies with the gateway (`PR_SET_PDEATHSIG`, see
gateway/children.py), prints `ready PORT` once it listens and answers until SIGTERM. `run_worker` below is
what it runs once its core is built.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from .build import make_calls, recover_now, recover_periodically
from .settings import VoiceSettings

log = logging.getLogger("channels.voice.sipworkers")

WORKER_ENTRY = ("-m", "gateway.workers", "sip")  # the worker's entry point, wired in gateway/workers.py
PARENT_ENV = "HELPDESK_GATEWAY_PARENT_PID"  # gateway/children.py: the pid a child checks its parent against
RTP_PORTS_PER_WORKER = 200  # pjsua's media port range per endpoint is 4 * max_calls * 2 + 100 (sip/endpoint.py)
START_TIMEOUT = 60.0
QUICK_DEATH = 10.0  # a worker that dies sooner than this after its start is started again more slowly
MAX_RESTART_DELAY = 8.0  # so SIP answers again within ~10 s of a crash, however often it crashed before


def worker_port(base: int, index: int, workers: int) -> int:
    return base if workers == 1 else base + 1 + index


def worker_settings(voice: VoiceSettings, index: int, port: int) -> VoiceSettings:
    """Worker `index`'s voice settings: its own SIP port and, when RTP ports are fixed and there are several
    workers, its own RTP range. Behind Kamailio the caller's address comes in the proxy's header."""
    sip = voice.sip
    several = sip.workers > 1
    rtp = sip.rtp_port + index * RTP_PORTS_PER_WORKER if sip.rtp_port and several else sip.rtp_port
    limits = sip.limits.model_copy(update={"proxy": sip.host}) if several else sip.limits
    own = sip.model_copy(update={"port": port, "workers": 1, "rtp_port": rtp, "limits": limits})
    return voice.model_copy(update={"sip": own})


class SipWorkers:
    """The supervisor in the gateway process: the worker processes, and Kamailio in front of more than one."""

    name = "voice-sip-workers"

    def __init__(self, ctx, settings: VoiceSettings, spool: Path, *, restart_delay: float = 1.0):
        self.ctx, self.settings, self.spool = ctx, settings, Path(spool)
        self.sip = settings.sip
        self.restart_delay = restart_delay
        self.run_dir = Path(ctx.data_dir) / "sip-workers"  # their configuration, and Kamailio's files
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.started_at: dict[int, float] = {}
        self.listening: dict[int, int] = {}  # index -> the port it answers on (known once it said "ready")
        self.kamailio = None
        self._watches: list[asyncio.Task] = []
        self._stopping = False
        self.restarts = 0

    def local_calls(self) -> list:
        return []  # every worker recovers its own spool

    @property
    def ports(self) -> list[int]:
        """The workers' ports (with one worker and `voice.sip.port = 0`, the port it bound)."""
        n = self.sip.workers
        return [self.listening.get(i) or worker_port(self.sip.port, i, n) for i in range(n)]

    @property
    def port(self) -> int:
        """Where callers reach SIP: Kamailio's port, or the one worker's."""
        return self.sip.port if self.sip.workers > 1 else self.ports[0]

    def ready(self) -> bool:
        """SIP is answered: some worker is listening (and Kamailio runs when it is in front). Cheap: no I/O."""
        if self._stopping:
            return False
        alive = any(p.returncode is None and i in self.listening for i, p in self.procs.items())
        if self.sip.workers > 1:
            k = self.kamailio
            return alive and k is not None and k.proc is not None and k.proc.returncode is None
        return alive

    async def start(self) -> None:
        if self.sip.workers > 1 and self.sip.port == 0:
            raise ValueError("voice.sip.workers > 1 needs a fixed voice.sip.port (the workers take the ports after it)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = self.run_dir / "gateway-config.json"
        self.voice_file = self.run_dir / "voice-config.json"
        config = self.ctx.worker_config(self.settings) if getattr(self.ctx, "worker_config", None) else "{}"
        for path, text in ((self.config_file, config), (self.voice_file, self.settings.model_dump_json())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # they may hold secrets
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        await asyncio.gather(*(self._spawn(i) for i in range(self.sip.workers)))
        if self.sip.workers > 1:
            await self._start_kamailio()
        self._watches = [asyncio.create_task(self._keep(i), name=f"sip-worker-{i}") for i in range(self.sip.workers)]
        if self.sip.workers > 1:
            log.info("%d SIP workers on ports %s behind Kamailio on %s:%d", self.sip.workers, self.ports, self.sip.host, self.sip.port)

    async def _start_kamailio(self) -> None:
        from .kamailio import KamailioProcess, render

        destinations = [f"sip:{self.sip.host}:{p}" for p in self.ports] + list(self.sip.kamailio.extra_destinations)
        rendered = render(
            self.run_dir, host=self.sip.host, port=self.sip.port, destinations=destinations,
            pike_requests=self.sip.kamailio.pike_requests, pike_seconds=self.sip.kamailio.pike_seconds,
        )
        self.kamailio = KamailioProcess(rendered, kamailio=self.sip.kamailio.binary, run_dir=self.run_dir)
        await self.kamailio.start()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._watches:
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        if self.kamailio is not None:
            await self.kamailio.stop()
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()

    async def _spawn(self, index: int) -> None:
        port = self.ports[index]
        # Spawned from the event loop's thread, which lives as long as the gateway: PR_SET_PDEATHSIG follows
        # the thread that forked (gateway/children.py).
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *WORKER_ENTRY, str(self.config_file), str(self.voice_file), str(index), str(port),
            stdout=asyncio.subprocess.PIPE, cwd=os.getcwd(), env=env,
        )
        self.procs[index] = proc
        self.listening.pop(index, None)
        self.started_at[index] = time.monotonic()
        line = b""
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while not line.startswith(b"ready"):  # anything a library printed before it is passed on
                if line:
                    log.info("SIP worker %d: %s", index, line.decode(errors="replace").rstrip())
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
                if not line:
                    break  # it exited
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"ready"):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"SIP worker {index} did not start (exit status {proc.returncode}); see its log above")
        self.listening[index] = int(line.split()[-1])
        asyncio.ensure_future(_drain(proc.stdout))  # the worker writes nothing more there; never let a pipe fill
        log.info("SIP worker %d (pid %d) listening on port %d", index, proc.pid, self.listening[index])

    async def _keep(self, index: int) -> None:
        """Start worker `index` again whenever it dies (each worker on its own, so one slow start delays no other)."""
        delay = self.restart_delay
        while not self._stopping:
            status = await self.procs[index].wait()
            if self._stopping:
                return
            lived = time.monotonic() - self.started_at.get(index, 0.0)
            delay = min(MAX_RESTART_DELAY, delay * 2) if lived < QUICK_DEATH else self.restart_delay
            log.error("SIP worker %d exited with status %s after %.0f s: starting it again in %.0f s (its calls "
                      "in progress are delivered from its spool)", index, status, lived, delay)
            while not self._stopping:
                await asyncio.sleep(delay)
                try:
                    await self._spawn(index)
                    self.restarts += 1
                    break
                except Exception:  # noqa: BLE001 - try again later; the other workers go on
                    log.exception("SIP worker %d could not be started again", index)
                    delay = MAX_RESTART_DELAY


async def _drain(stream: asyncio.StreamReader) -> None:
    try:
        while await stream.read(65536):
            pass
    except Exception:  # noqa: BLE001 - the worker is gone
        pass


# -- the worker process, once gateway/workers.py built its core ------------------------------------------------
async def run_worker(ctx, voice: VoiceSettings, index: int, *, spool: Path, announce: Callable[[int], None]) -> None:
    """Answer SIP with one pjsua2 endpoint until SIGTERM; recover this worker's spool at start and every minute."""
    from .sip.service import SipService

    service = SipService(ctx, voice, spool)
    calls = list(service.local_calls())
    legacy = spool.parent / "sip"  # where the one in-process endpoint of earlier releases spooled its calls
    if index == 0 and legacy.is_dir():
        calls.append(make_calls(ctx, voice, legacy))  # delivered, or quarantined when they are old pickles
    recover_now(calls, f"cut off by worker {index}'s previous stop")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    announce(service.port)
    recovery = asyncio.create_task(recover_periodically(calls, voice.sip.recover_every_seconds), name="sip-recovery")
    try:
        await stop.wait()
        signal.alarm(30)  # a stop that hangs (a stuck library) must not leave the worker behind: SIGALRM ends it
    finally:
        recovery.cancel()
        await asyncio.gather(recovery, return_exceptions=True)
        await service.stop()
