"""Service lifecycle: the registry of channels, and `serve`, which runs the enabled ones in one process.

A channel is registered by a stable name with the import path of its `load(ctx)` function; `load` only
builds and connects objects and returns a service with `async start()` and `async stop()`. Channels are
imported only when enabled, so a gateway that does not take calls does not need the telephony libraries.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import resource
import signal
from typing import Any, Protocol

from .app import Core, channel_context, seed_directory
from .config import Config

log = logging.getLogger("gateway")


class ChannelService(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# name -> (import path of load(ctx), the config attribute path of its settings)
REGISTRY: dict[str, tuple[str, str]] = {}


def register(name: str, loader: str, settings: str) -> None:
    if name in REGISTRY:
        raise ValueError(f"channel {name!r} is registered twice")
    REGISTRY[name] = (loader, settings)


register("email", "channels.email.plugin:load", "email")
register("web", "channels.web.plugin:load", "web")
register("voice", "channels.voice.plugin:load", "voice")


def _settings(config: Config, path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = getattr(node, part)
    return node


def enabled_channels(config: Config) -> list[str]:
    return [name for name, (_, path) in REGISTRY.items() if getattr(_settings(config, path), "enabled", False)]


def load_channel(core: Core, name: str) -> ChannelService:
    loader, path = REGISTRY[name]
    module, func = loader.split(":")
    return getattr(importlib.import_module(module), func)(channel_context(core, _settings(core.config, path)))


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (each SMTP, HTTP or database connection is one): a
    flood of connections then meets the receivers' own caps (421) before the process runs out. Returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:  # a hard limit of RLIM_INFINITY is refused for the soft one
            log.warning("open files limit stays %d: %s", soft, e)
    log.info("open files limit %d", soft)
    return soft


async def serve(core: Core, stop: asyncio.Event | None = None) -> None:
    """Run the enabled channels until SIGTERM/SIGINT (or `stop` is set), then stop them in reverse order."""
    from .logging_setup import banner

    log.info("%s starting", banner())
    raise_open_files_limit()
    seed_directory(core)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    started: list[ChannelService] = []
    workers = None
    watch = None
    suggest = None
    try:
        # Load every channel before starting any: a channel may offer another something at load time (the
        # voice channel's Twilio webhooks are served by the web channel).
        loaded = []
        for name in enabled_channels(core.config):
            service = load_channel(core, name)
            core.shared.offer(service)
            loaded.append((name, service))
        if core.shared.http_mounts and not core.config.web.enabled:
            log.warning("web paths %s are offered but the web channel is off: nothing serves them", sorted(core.shared.http_mounts))
        health = _health(core, loaded)
        for name, service in loaded:
            try:
                await service.start()
            except Exception as e:  # noqa: BLE001 - the others still run; /readyz names this one (503)
                log.exception("channel %s did not start; the gateway runs without it and is not ready", name)
                health.channel_failed(name, e)
                continue
            started.append(service)
            health.channel_started(name, service)
            log.info("channel %s started", name)
        workers = _transcription_workers(core)
        watch = _sla_watch(core)
        await watch.start()
        suggest = _suggestions(core)  # articles and similar resolved tickets, after each intake commit (issue 13)
        await suggest.start()
        if not started:
            log.warning("no channel is enabled: the gateway takes no contacts (see [email], [web], [voice] in the config)")
        log.info("helpdesk-gateway ready (database %s)", core.engine.url.render_as_string(hide_password=True))
        await stop.wait()
        log.info("stopping")
    finally:
        if workers is not None:
            workers.stop()
        if watch is not None:
            await watch.stop()
        if suggest is not None:
            await suggest.stop()
        for service in reversed(started):
            try:
                await service.stop()
                log.info("channel %s stopped", service.name)
            except Exception:
                log.exception("channel %s did not stop cleanly", service.name)


def _sla_watch(core: Core):
    """The background SLA check (warnings at 80 %, breaches), every `ticketing.sla_check_seconds`."""
    from ticketing.slawatch import SlaWatch

    metrics, on_breach = getattr(core, "metrics", None), None
    if metrics is not None and hasattr(metrics, "counter"):
        on_breach = metrics.counter("helpdesk_sla_breaches", "SLA breaches raised on tickets (respond or resolve)").inc
    t = core.config.ticketing
    return SlaWatch(core.sessions, core.lifecycle, t.number_prefix, t.sla_check_seconds, on_breach)


def _suggestions(core: Core):
    """The suggestion worker: reads the events after its cursor, ranks articles and resolved tickets."""
    from ticketing.suggestions import SuggestionWorker

    return SuggestionWorker(core.sessions, core.config.ticketing.number_prefix)


def _transcription_workers(core: Core):
    """The in-process speech-to-text workers, when the voice channel is on (else `helpdesk-gateway worker`)."""
    stt = core.config.voice.stt
    if not core.config.voice.enabled or stt.workers == 0:
        return None
    from channels.voice.stt.worker import WorkerThreads

    workers = WorkerThreads(core, stt.workers)
    workers.start()
    log.info("%d transcription worker(s) started", stt.workers)
    return workers


def _health(core: Core, loaded: list):
    """/healthz, /readyz and /metrics on the web channel's app (gateway/health.py, gateway/metrics.py)."""
    from .health import Health

    metrics = getattr(core, "metrics", None)
    if metrics is not None:
        spool = getattr(getattr(core.config.voice, "sip", None), "spool_dir", None) or getattr(core.config.voice, "spool_dir", None)
        metrics.watch_state(core.sessions, core.config.storage.data_dir, spool)
        from channels.email.receiver import REPLY_OBSERVERS

        REPLY_OBSERVERS[:] = [metrics.smtp_reply]
    health = Health(core, metrics)
    core.health = health
    for name, service in loaded:
        if name == "web" and getattr(service, "app", None) is not None:
            health.install(service.app)
    return health
