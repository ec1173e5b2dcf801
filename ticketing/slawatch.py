"""The background SLA check: raises `sla.warning` (at 80 % of a target) and `sla.breached` on open tickets.

`recompute` keeps on every ticket the next instant one of its alerts falls due (`sla_next_check`, indexed), so
one pass reads only the tickets whose instant has come, never all the open ones. For each it raises the due
alerts as ticket events (which the webhooks carry as `sla.warning` / `sla.breached`), mails the ticket's group
through the outbox, and moves `sla_next_check` on, all in one transaction per batch. Time comes from the
lifecycle's clock, so a test moves the clock and calls `check` instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .groups import SupportGroup
from .lifecycle import OPEN_STATUSES, Lifecycle
from .models import Ticket
from .notices import sla_alert
from .numbering import format_number

log = logging.getLogger(__name__)


def check(sessions: sessionmaker[Session], lifecycle: Lifecycle, prefix: str = "HD", now: datetime | None = None,
          batch: int = 500, on_breach: Callable[[int], None] | None = None) -> int:
    """One pass; returns the number of alerts raised. `on_breach(n)` counts breaches (the metrics counter)."""
    now = now or lifecycle.clock()
    raised = breaches = 0
    last_id = 0
    while True:
        with sessions() as s, s.begin():
            tickets = s.scalars(
                select(Ticket).where(Ticket.sla_next_check <= now, Ticket.status.in_(OPEN_STATUSES), Ticket.id > last_id)
                .options(selectinload(Ticket.fields)).order_by(Ticket.id).limit(batch)
            ).all()
            for t in tickets:
                events = lifecycle.due_alerts(t, now)
                if not events:
                    continue
                group = s.get(SupportGroup, t.group_id) if t.group_id is not None else None
                alerts = [(e.kind.split(".", 1)[1], e.data["target"], e.data["due"]) for e in events]
                breaches += sum(a[0] == "breached" for a in alerts)
                sla_alert(s, t, format_number(prefix, t.created_at, t.id), group, alerts)  # one mail for what this pass raised
                raised += len(events)
            if tickets:
                last_id = tickets[-1].id
        if len(tickets) < batch:
            break
    if breaches and on_breach is not None:
        on_breach(breaches)
    return raised


class SlaWatch:
    """Runs `check` every `seconds` on a thread of its own, from the gateway's start to its stop."""

    name = "sla-watch"

    def __init__(self, sessions, lifecycle: Lifecycle, prefix: str, seconds: float, on_breach=None):
        self.sessions, self.lifecycle, self.prefix, self.seconds, self.on_breach = sessions, lifecycle, prefix, seconds, on_breach
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                check(self.sessions, self.lifecycle, self.prefix, on_breach=self.on_breach)
            except Exception:  # noqa: BLE001 - ours (the database is away): logged, tried again next time
                log.exception("SLA check failed; trying again in %.0f s", self.seconds)

    async def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
