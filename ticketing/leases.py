"""The event history in id order for outbound webhooks, and per-URL cursors held under a lease.

Only the holder of an unexpired lease delivers to a URL, so gateways sharing a database do not each send
every event (see `channels/web/webhooks.py` for the delivery side).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .models import Event, Ticket, WebhookCursor, utcnow
from .views import EventRecord
from .views import digest as _digest


class WebhookLeases:
    """Mixin of `ticketing.desk.Desk`: needs `sessions` and `_header()`."""

    # -- outbound webhooks -----------------------------------------------------------------------------------
    def events_after(self, last_id: int, limit: int = 100) -> list[EventRecord]:
        """The events with an id above `last_id`, in id order, each with its ticket's header as it is now."""
        with self.sessions() as s:
            rows = s.execute(
                select(Event, Ticket).join(Ticket, Event.ticket_id == Ticket.id)
                .where(Event.id > last_id).order_by(Event.id).limit(max(1, min(1000, limit)))
            ).all()
            return [EventRecord(e.id, e.at, e.kind, e.actor, dict(e.data or {}), self._header(t)) for e, t in rows]

    def webhook_claim(self, url: str, owner: str, lease_seconds: float) -> int | None:
        """Take or renew `owner`'s lease on the cursor of `url`: the id of the last event done for it, or None
        while another process holds the lease. A URL met for the first time starts after the newest event
        (a new webhook is not sent the whole history)."""
        key, now = _digest(url), utcnow()
        until = now + timedelta(seconds=lease_seconds)
        with self.sessions() as s:
            with s.begin():
                taken = s.execute(
                    update(WebhookCursor)
                    .where(WebhookCursor.key == key, or_(WebhookCursor.lease_owner.is_(None), WebhookCursor.lease_owner == owner, WebhookCursor.lease_until < now))
                    .values(lease_owner=owner, lease_until=until)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if taken:
                    return s.scalar(select(WebhookCursor.last_event_id).where(WebhookCursor.key == key))
                if s.scalar(select(WebhookCursor.key).where(WebhookCursor.key == key)) is not None:
                    return None
            try:
                with s.begin():
                    newest = s.scalar(select(func.max(Event.id))) or 0
                    s.add(WebhookCursor(key=key, url=url, last_event_id=newest, lease_owner=owner, lease_until=until))
            except IntegrityError:  # another process made the cursor first: it holds the lease
                return None
            return newest

    def webhook_advance(self, url: str, owner: str, event_id: int, lease_seconds: float | None = None) -> bool:
        """Events up to `event_id` are done for `url` (delivered, or not of a kind it wants), and the lease is
        renewed when `lease_seconds` is given. False when `owner` no longer holds the lease (another process
        took over: it must stop)."""
        now = utcnow()
        values = dict(last_event_id=event_id, failures=0, last_error=None, delivered_at=now)
        if lease_seconds is not None:
            values["lease_until"] = now + timedelta(seconds=lease_seconds)
        with self.sessions() as s, s.begin():
            return bool(s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner, WebhookCursor.last_event_id <= event_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount)

    def webhook_failed(self, url: str, owner: str, error: str) -> None:
        """Note a failed attempt at the next event, where an operator (or the API) can see it."""
        with self.sessions() as s, s.begin():
            s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner)
                .values(failures=WebhookCursor.failures + 1, last_error=error[:1000])
                .execution_options(synchronize_session=False)
            )

    def webhook_release(self, url: str, owner: str) -> None:
        """Give up the lease (on a clean stop), so that a restarted gateway resumes at once."""
        with self.sessions() as s, s.begin():
            s.execute(
                update(WebhookCursor)
                .where(WebhookCursor.key == _digest(url), WebhookCursor.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )

