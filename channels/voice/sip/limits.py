"""Per-source limits on SIP calls, decided before a call is answered: cheap, in memory, no I/O.

For each source address (the caller's IP, `voice.sip.limits`):
- a token bucket on call attempts: `attempts_burst` at once, then `attempts_per_second`; an attempt beyond it
  gets 503 Service Unavailable with Retry-After (RFC 3261 §21.5.4, §20.33) for when a token is back;
- a source refused `ban_after` times in a row is banned for `ban_seconds`: 403 Forbidden, Retry-After the rest;
- at most `calls_per_source` calls open at once: 486 Busy Here with Retry-After.
Addresses in `exempt` (a PBX, a trunk, which send every call from one address) pass. The table of sources is
bounded: idle ones are forgotten first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

MAX_SOURCES = 10_000
BUSY_RETRY_AFTER = 60  # a call lasts minutes: come back in one


@dataclass(frozen=True)
class Refusal:
    code: int  # 403, 486, 503
    reason: str
    retry_after: int  # seconds


@dataclass
class _Source:
    tokens: float
    at: float
    open: int = 0
    refused: int = 0  # refused for the rate, in a row
    banned_until: float = 0.0


class SourceLimits:
    """Used from one thread (the pjsua2 thread)."""

    def __init__(self, settings, clock: Callable[[], float] = time.monotonic):
        self.s, self.clock = settings, clock
        self.exempt = frozenset(settings.exempt)
        self._sources: dict[str, _Source] = {}

    def admit(self, source: str) -> Refusal | None:
        """None: the call may be answered (and counts as open until `release(source)`); else why not."""
        if source in self.exempt:
            return None
        now = self.clock()
        s = self._sources.get(source)
        if s is None:
            self._prune(now)
            s = self._sources[source] = _Source(float(self.s.attempts_burst), now)
        if s.banned_until > now:
            return Refusal(403, "Forbidden: too many calls from your address", math.ceil(s.banned_until - now))
        s.tokens = min(float(self.s.attempts_burst), s.tokens + (now - s.at) * self.s.attempts_per_second)
        s.at = now
        if s.tokens < 1.0:
            s.refused += 1
            if s.refused >= self.s.ban_after:
                s.banned_until, s.refused = now + self.s.ban_seconds, 0
                return Refusal(403, "Forbidden: too many calls from your address", self.s.ban_seconds)
            return Refusal(503, "Too many call attempts", max(1, math.ceil((1.0 - s.tokens) / self.s.attempts_per_second)))
        s.tokens -= 1.0
        s.refused = 0
        if s.open >= self.s.calls_per_source:
            return Refusal(486, "Busy Here: too many calls from your address", BUSY_RETRY_AFTER)
        s.open += 1
        return None

    def release(self, source: str) -> None:
        s = self._sources.get(source)
        if s is not None and s.open > 0:
            s.open -= 1

    def open_calls(self, source: str) -> int:
        s = self._sources.get(source)
        return s.open if s else 0

    def _prune(self, now: float) -> None:
        if len(self._sources) < MAX_SOURCES:
            return
        full = self.s.attempts_burst / self.s.attempts_per_second  # a bucket refilled by then is as good as new
        for key, s in list(self._sources.items()):
            if s.open == 0 and s.banned_until <= now and now - s.at >= full:
                del self._sources[key]
        if len(self._sources) >= MAX_SOURCES:  # all busy or banned: drop the oldest idle ones anyway
            for key in sorted((k for k, s in self._sources.items() if s.open == 0), key=lambda k: self._sources[k].at)[: MAX_SOURCES // 10]:
                del self._sources[key]
