"""Several call-handling processes behind Kamailio, for more calls than one pjsua2 endpoint takes.

The pjsua2 wheel handles at most 4 calls per process, so `voice.sip.workers = N` (N > 1) runs N worker
processes, each a complete `SipService` (its own endpoint, its own spool) on the ports after `voice.sip.port`,
and Kamailio on `voice.sip.port` itself spreads the calls over them (config/kamailio/kamailio.cfg). A worker
that dies is started again; at its start it delivers the calls it was killed in the middle of (its spool,
`Calls.recover`), while Kamailio's OPTIONS probes keep new calls away from it until it answers again.

A worker is `python -m channels.voice.sipworkers CONFIG_JSON INDEX`: it reads the gateway's configuration as the
parent resolved it (file and environment), builds its own core on the same database, and answers SIP until
SIGTERM. It prints `ready PORT` once it listens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("channels.voice.sipworkers")


def worker_port(base: int, index: int) -> int:
    return base + 1 + index


class SipWorkers:
    """The supervisor in the gateway process: N worker processes and the Kamailio in front of them."""

    name = "voice-sip-workers"

    def __init__(self, ctx, settings, spool: Path, *, restart_delay: float = 1.0):
        self.ctx, self.settings, self.spool = ctx, settings, Path(spool)
        self.sip = settings.sip
        self.restart_delay = restart_delay
        self.run_dir = Path(ctx.core_config.storage.data_dir) / "kamailio"
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.kamailio = None
        self._watch: asyncio.Task | None = None
        self._stopping = False
        self.restarts = 0

    def local_calls(self) -> list:
        return []  # each worker recovers its own spool when it starts

    @property
    def ports(self) -> list[int]:
        return [worker_port(self.sip.port, i) for i in range(self.sip.workers)]

    async def start(self) -> None:
        from .kamailio import KamailioProcess, render

        if self.sip.port == 0:
            raise ValueError("voice.sip.workers > 1 needs a fixed voice.sip.port (the workers take the ports after it)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = self.run_dir / "gateway-config.json"
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold secrets
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # The voice section the channel was given (`serve` passes config.voice; a test or an embedding may not).
            f.write(self.ctx.core_config.model_copy(update={"voice": self.settings}).model_dump_json())
        await asyncio.gather(*(self._spawn(i) for i in range(self.sip.workers)))
        destinations = [f"sip:{self.sip.host}:{p}" for p in self.ports] + list(self.sip.kamailio.extra_destinations)
        rendered = render(
            self.run_dir, host=self.sip.host, port=self.sip.port, destinations=destinations,
            pike_requests=self.sip.kamailio.pike_requests, pike_seconds=self.sip.kamailio.pike_seconds,
        )
        self.kamailio = KamailioProcess(rendered, kamailio=self.sip.kamailio.binary, run_dir=self.run_dir)
        await self.kamailio.start()
        self._watch = asyncio.create_task(self._supervise(), name="sip-workers")
        log.info("%d SIP workers on ports %s behind Kamailio on %s:%d", self.sip.workers, self.ports, self.sip.host, self.sip.port)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
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
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "channels.voice.sipworkers", str(self.config_file), str(index),
            stdout=asyncio.subprocess.PIPE, cwd=os.getcwd(),
        )
        self.procs[index] = proc
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"ready"):
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"SIP worker {index} did not start (exit status {proc.returncode}); see its log above")
        log.info("SIP worker %d (pid %d) listening on port %s", index, proc.pid, line.split()[-1].decode())

    async def _supervise(self) -> None:
        while not self._stopping:
            waits = {asyncio.create_task(p.wait()): i for i, p in self.procs.items()}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                index = waits[t]
                if self._stopping:
                    return
                log.error("SIP worker %d exited with status %s: starting it again", index, t.result())
                await asyncio.sleep(self.restart_delay)
                try:
                    await self._spawn(index)
                    self.restarts += 1
                except Exception:  # noqa: BLE001 - keep supervising the others; try this one again later
                    log.exception("SIP worker %d could not be started again", index)
                    await asyncio.sleep(5)


# -- the worker process ------------------------------------------------------------------------------------------
RTP_PORTS_PER_WORKER = 200  # pjsua's media port range per endpoint is 4 * max_calls * 2 + 100 (sip/endpoint.py)


def worker_settings(voice, index: int):
    """Worker `index`'s voice settings: its own SIP port and, when RTP ports are fixed, its own RTP range."""
    rtp = voice.sip.rtp_port + index * RTP_PORTS_PER_WORKER if voice.sip.rtp_port else 0
    sip = voice.sip.model_copy(update={"port": worker_port(voice.sip.port, index), "workers": 1, "rtp_port": rtp})
    return voice.model_copy(update={"sip": sip})


async def _run_worker(config_json: Path, index: int) -> None:
    from gateway.app import build_core, channel_context
    from gateway.config import Config

    from .plugin import spool_dir
    from .sip.service import SipService

    config = Config.model_validate_json(Path(config_json).read_text(encoding="utf-8"))
    core = build_core(config, upgrade=False)
    voice = worker_settings(config.voice, index)
    ctx = channel_context(core, voice)
    service = SipService(ctx, voice, spool_dir(ctx, voice) / f"sip-{index}")
    for calls in service.local_calls():
        n = calls.recover()
        if n:
            log.warning("worker %d delivered %d call(s) cut off by its previous stop", index, n)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(f"ready {getattr(service, 'port', voice.sip.port)}", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
        core.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python -m channels.voice.sipworkers CONFIG_JSON INDEX")
    config = Path(argv[0])
    index = int(argv[1])
    from gateway.config import Config

    level = Config.model_validate_json(config.read_text(encoding="utf-8")).logging.level
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s sip-worker-{index} %(name)s: %(message)s")
    asyncio.run(_run_worker(config, index))


if __name__ == "__main__":
    main()
