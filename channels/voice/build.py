"""How the voice channel builds its `Calls` from what it is given, in one place for the channel and its workers.

`plugin.load` (the gateway process: Twilio) and the SIP worker processes (`sipworkers.run_worker`) both build
their calls here, so neither imports the other and the flow settings, spool layout and recovery round are the
same everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Iterable

from . import understand
from .calls import Calls
from .flow import FlowSettings
from .settings import VoiceSettings

log = logging.getLogger("channels.voice")

RECOVER_EVERY = 60.0  # how often calls left undelivered (the database was down at hang-up) are tried again


def flow_settings(settings: VoiceSettings) -> FlowSettings:
    ivr = settings.ivr
    return FlowSettings(
        default_language=ivr.default_language,
        languages=("it", "fr", "en"),  # the menu's order: 1 italiano, 2 français, 3 English
        max_retries=ivr.max_retries,
        gather_timeout=ivr.gather_timeout,
        max_problem_seconds=ivr.max_problem_seconds,
        operator=ivr.operator,
    )


def spool_dir(ctx, settings: VoiceSettings) -> Path:
    return Path(settings.spool_dir) if settings.spool_dir else Path(ctx.data_dir) / "calls"


def make_calls(ctx, settings: VoiceSettings, spool: Path, *, recover_after: float = 0.0) -> Calls:
    return Calls(
        recover_after=recover_after,
        deliver=ctx.intake.deliver,
        reject=ctx.intake.reject,
        desk=ctx.phone,
        blobs=ctx.blobs,
        spool=spool,
        flow_settings=flow_settings(settings),
        silence_floor=settings.stt.silence_floor_dbfs,
        understand=understand.from_context(ctx, settings),
    )


def recover_now(calls: Iterable[Calls], why: str = "cut off by the previous stop") -> int:
    total = 0
    for c in calls:
        n = c.recover()
        if n:
            log.warning("delivered %d call(s) %s", n, why)
        total += n
    return total


async def recover_periodically(calls: Iterable[Calls], every: float = RECOVER_EVERY) -> None:
    """Every `every` seconds, deliver the calls left in the spool (until cancelled)."""
    calls = list(calls)
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(recover_now, calls, "left in the spool")
        except Exception:  # noqa: BLE001 - try again at the next round
            log.exception("voice: recovering spooled calls failed")
