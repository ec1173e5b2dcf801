"""The voice channel's `load(ctx)`: the calls (IVR flows and their spool) and the transports that carry them.

SIP (pjsua2) answers on `voice.sip.port` unless `voice.sip.enabled` is off; Twilio's webhooks are handed to
the web channel (`ctx.shared.http_mounts`) under `/twilio/voice`. Both drive the same `Calls`, whose
`recover()` delivers the calls a previous process was killed in the middle of. Nothing else happens here.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from channels.services import start_all, stop_all

from .calls import Calls
from .flow import FlowSettings
from .settings import VoiceSettings

log = logging.getLogger("channels.voice")

TWILIO_PREFIX = "/twilio/voice"
TWILIO_RECOVER_AFTER = 1800.0  # a Twilio call idle this long in the spool has ended without its status callback
RECOVER_EVERY = 60.0  # how often calls left undelivered (the database was down at hang-up) are tried again


def flow_settings(settings: VoiceSettings) -> FlowSettings:
    ivr = settings.ivr
    return FlowSettings(
        default_language=ivr.default_language,
        languages=("it", "en"),  # the menu's order: 1 Italiano, 2 English
        max_retries=ivr.max_retries,
        gather_timeout=ivr.gather_timeout,
        max_problem_seconds=ivr.max_problem_seconds,
        operator=ivr.operator,
    )


def spool_dir(ctx, settings: VoiceSettings) -> Path:
    return Path(settings.spool_dir) if settings.spool_dir else Path(ctx.core_config.storage.data_dir) / "calls"


def make_calls(ctx, settings: VoiceSettings, spool: Path, *, recover_after: float = 0.0) -> Calls:
    return Calls(
        recover_after=recover_after,
        deliver=ctx.deliver,
        desk=ctx.desk,
        blobs=ctx.blobs,
        spool=spool,
        flow_settings=flow_settings(settings),
        silence_floor=settings.stt.silence_floor_dbfs,
    )


class VoiceChannel:
    name = "voice"

    def __init__(self, calls_by_transport: list[Calls], services: list[Any]):
        self.calls, self.services = calls_by_transport, services

    async def start(self) -> None:
        for calls in self.calls:
            n = calls.recover()
            if n:
                log.warning("delivered %d call(s) cut off by the previous stop", n)
        await start_all(self.services)
        self._recovery = asyncio.create_task(self._recover_periodically(), name="voice-recovery")

    async def _recover_periodically(self) -> None:
        while True:
            await asyncio.sleep(RECOVER_EVERY)
            for calls in self.calls:
                try:
                    n = await asyncio.to_thread(calls.recover)
                    if n:
                        log.warning("delivered %d call(s) left in the spool", n)
                except Exception:  # noqa: BLE001 - try again at the next round
                    log.exception("voice: recovering spooled calls failed")

    async def stop(self) -> None:
        task, self._recovery = getattr(self, "_recovery", None), None
        if task is not None and not task.get_loop().is_closed():  # (tests start and stop in different loops)
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)
        await stop_all(self.services, log, "voice")


def load(ctx) -> VoiceChannel:
    settings: VoiceSettings = ctx.settings
    spool = spool_dir(ctx, settings)
    calls: list[Calls] = []
    services: list[Any] = []
    if settings.sip.enabled and settings.sip.workers > 1:
        from .sipworkers import SipWorkers  # N processes behind Kamailio

        sip = SipWorkers(ctx, settings, spool)
        calls.extend(sip.local_calls())
        services.append(sip)
    elif settings.sip.enabled:
        from .sip.service import SipService

        sip = SipService(ctx, settings, spool / "sip")
        calls.extend(sip.local_calls())
        services.append(sip)
    if settings.twilio.enabled:
        from .twilio import TwilioWebhooks

        twilio_calls = make_calls(ctx, settings, spool / "twilio", recover_after=TWILIO_RECOVER_AFTER)
        webhooks = TwilioWebhooks(twilio_calls, settings.twilio, prompts_dir=settings.prompts_dir)
        ctx.shared.http_mounts[TWILIO_PREFIX] = webhooks.app
        calls.append(twilio_calls)
        services.append(webhooks)
        if not getattr(ctx.core_config.web, "enabled", False):
            log.warning("voice.twilio is enabled but the web channel is not: nothing serves %s/", TWILIO_PREFIX)
    return VoiceChannel(calls, services)
