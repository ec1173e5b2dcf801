"""The voice channel's `load(ctx)`: the calls (IVR flows and their spool) and the transports that carry them.

SIP is answered on `voice.sip.port` by supervised worker processes (`sipworkers.SipWorkers`): pjsua2 never
runs in the gateway's own process, so a crash of the media stack costs the calls of one worker and nothing
else. Twilio's webhooks are offered to the web channel (`VoiceChannel.http_mounts`) under `/twilio/voice`;
their calls live here, and `recover()` delivers those a previous process was killed in the middle of, at start
and then every minute. Nothing else happens here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.services import start_all, stop_all

from .build import make_calls, recover_now, recover_periodically, spool_dir
from .calls import Calls
from .settings import VoiceSettings

log = logging.getLogger("channels.voice")

TWILIO_PREFIX = "/twilio/voice"
TWILIO_RECOVER_AFTER = 1800.0  # a Twilio call idle this long in the spool has ended without its status callback


class VoiceChannel:
    name = "voice"

    def __init__(self, calls_by_transport: list[Calls], services: list[Any], http_mounts: dict[str, Any] | None = None):
        self.calls, self.services = calls_by_transport, services
        self.http_mounts = http_mounts or {}  # offered to the web channel (gateway/app.py: Shared.offer)
        self._recovery: asyncio.Task | None = None

    def ready(self) -> bool:
        """Every transport answers (the SIP workers listen): for /readyz."""
        return all(getattr(s, "ready", lambda: True)() for s in self.services)

    async def start(self) -> None:
        recover_now(self.calls)
        await start_all(self.services)
        if self.calls:
            self._recovery = asyncio.create_task(recover_periodically(self.calls), name="voice-recovery")

    async def stop(self) -> None:
        task, self._recovery = self._recovery, None
        if task is not None and not task.get_loop().is_closed():  # (tests start and stop in different loops)
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)
        await stop_all(self.services, log, "voice")


def load(ctx) -> VoiceChannel:
    settings: VoiceSettings = ctx.settings
    spool = spool_dir(ctx, settings)
    calls: list[Calls] = []
    mounts: dict[str, Any] = {}
    services: list[Any] = []
    if settings.sip.enabled:
        from .sipworkers import SipWorkers  # one or more pjsua2 processes; Kamailio in front of more than one

        services.append(SipWorkers(ctx, settings, spool))
    if settings.twilio.enabled:
        from .twilio import TwilioWebhooks

        twilio_calls = make_calls(ctx, settings, spool / "twilio", recover_after=TWILIO_RECOVER_AFTER)
        webhooks = TwilioWebhooks(twilio_calls, settings.twilio, prompts_dir=settings.prompts_dir)
        mounts[TWILIO_PREFIX] = webhooks.app  # served by the web channel (gateway/app.py: Shared.offer)
        calls.append(twilio_calls)
        services.append(webhooks)
    return VoiceChannel(calls, services, mounts)
