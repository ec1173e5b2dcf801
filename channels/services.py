"""What a channel made of several services (receivers, fetchers, transports) does to start and stop them."""

from __future__ import annotations

import logging
from typing import Any, Sequence


async def start_all(services: Sequence[Any]) -> None:
    for s in services:
        await s.start()


async def stop_all(services: Sequence[Any], log: logging.Logger, channel: str) -> None:
    """Stop in reverse order of start; one that fails is logged and the others are stopped all the same."""
    for s in reversed(services):
        try:
            await s.stop()
        except Exception:  # noqa: BLE001 - stop the others all the same
            log.exception("%s: %s did not stop cleanly", channel, getattr(s, "name", s))
