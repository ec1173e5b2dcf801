"""Repeated warnings, rate-limited into one line with a count: a flood must not become a flood of log lines.

    refusals = Throttled(log, every=10.0)
    refusals.warning(("rate", source), "SIP: %s refused (%s)", source, why)

The first occurrence of a key is logged at once. Later ones within `every` seconds are only counted; the next
occurrence after the window logs one line with "(N more like it in the last T s)" appended, and `flush()`
(call it from a periodic tick) writes the pending counts of windows that ended with no new occurrence. The
keys kept are bounded (`max_keys`): past it, new keys share one overflow key, so memory stays flat whatever
the attacker varies.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

OVERFLOW = ("<other sources>",)


class Throttled:
    def __init__(self, logger: logging.Logger, every: float = 10.0, *, max_keys: int = 1000,
                 clock: Callable[[], float] = time.monotonic):
        self.logger, self.every, self.max_keys, self.clock = logger, every, max_keys, clock
        self._lock = threading.Lock()
        # key -> [window start, suppressed count, level, last message, last args]
        self._seen: dict[Hashable, list] = {}

    def warning(self, key: Hashable, msg: str, *args) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def log(self, level: int, key: Hashable, msg: str, *args) -> bool:
        """Log now (True) or count for later (False)."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None and len(self._seen) >= self.max_keys:
                key, entry = OVERFLOW, self._seen.get(OVERFLOW)
            if entry is not None and now - entry[0] < self.every:
                entry[1] += 1
                entry[2:] = [level, msg, args]
                return False
            suppressed = entry[1] if entry is not None else 0
            span = now - entry[0] if entry is not None else 0.0
            self._seen[key] = [now, 0, level, msg, args]
        self._emit(level, msg, args, suppressed, span)
        return True

    def flush(self) -> int:
        """Write the counts of windows that ended with occurrences not yet logged, and forget idle keys."""
        now = self.clock()
        out = []
        with self._lock:
            for key, entry in list(self._seen.items()):
                if now - entry[0] < self.every:
                    continue
                if entry[1]:
                    out.append((entry[2], entry[3], entry[4], entry[1], now - entry[0]))
                del self._seen[key]
        for level, msg, args, n, span in out:
            self._emit(level, msg, args, n, span, summary=True)
        return len(out)

    def _emit(self, level: int, msg: str, args: tuple, suppressed: int, span: float, summary: bool = False) -> None:
        if summary:
            self.logger.log(level, msg + " (%d like it in the last %.0f s)", *args, suppressed, span)
        elif suppressed:
            self.logger.log(level, msg + " (and %d more like it in the last %.0f s)", *args, suppressed, span)
        else:
            self.logger.log(level, msg, *args)
