"""Outbound webhooks: a signed JSON POST to each configured URL for every ticket event it asked for.

The dispatcher reads the core's event history in id order through the `Desk` (`events_after`) and keeps, per
URL, a cursor in the database (the last event done for it), so an event is neither lost nor sent again across
restarts, and intake never waits for a receiver: a form post commits its ticket and answers, and the event is
picked up on the next poll. Each URL has its own task and its own lease on its cursor, so a receiver that is
down holds back only itself, and two gateways on one database do not both send every event.

Wire format, one event per request (HMAC: RFC 2104; JSON: RFC 8259):

    POST <url>
    Content-Type: application/json
    X-Helpdesk-Event: ticket.escalated
    X-Helpdesk-Delivery: 1234              the event id: the same on every retry, to deduplicate on
    X-Helpdesk-Timestamp: 1767225600       Unix seconds of this attempt, also `sent_at` in the body
    X-Helpdesk-Signature: sha256=<hex>     HMAC-SHA256 of the raw body with the URL's secret

    {"id": 1234, "event": "ticket.escalated", "kind": "escalated", "at": "2026-...", "actor": "anna.verdi",
     "data": {"from": "I", "to": "II", "reason": "..."}, "ticket": {"number": "HD-2026-000042", "status": ...},
     "sent_at": 1767225600}

A receiver checks the signature over the bytes it received (`verify`), then that `sent_at` is recent (the
signature covers it, so an old request cannot be replayed as a new one), and answers 2xx. Any other answer,
or none within the timeout, is retried after a wait that doubles from `webhook_retry_seconds` up to
`webhook_max_retry_seconds`, for as long as it takes: events reach a URL in order, at least once (after a
crash the last second's events may come again: deduplicate on the id). The failures in a row and the last
error are kept on the URL's cursor row.

`ticket.created`, `ticket.escalated` and `ticket.resolved` are the events of those kinds, `ticket.sla.warning`
and `ticket.sla.breached` the SLA check's alerts (`data`: the target, respond or resolve, and its due time);
every other change of a ticket (taken, waiting, resumed, assigned, closed, reopened, a field, a note, a message
in or out) is `ticket.updated`. `ticket` carries the organisation, the group, whether it waits, and the SLA. `ticket`
holds the ticket's header as it is when the event is sent; `data` what the event itself recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import socket
import time
from datetime import datetime

import httpx

from .settings import WebhookSettings, WebSettings

log = logging.getLogger("channels.web.webhooks")

SIGNATURE_HEADER = "X-Helpdesk-Signature"
TIMESTAMP_HEADER = "X-Helpdesk-Timestamp"
EVENT_HEADER = "X-Helpdesk-Event"
DELIVERY_HEADER = "X-Helpdesk-Delivery"
_NAMED = {"created": "ticket.created", "escalated": "ticket.escalated", "resolved": "ticket.resolved",
          "sla.warning": "ticket.sla.warning", "sla.breached": "ticket.sla.breached"}


def event_name(kind: str) -> str:
    return _NAMED.get(kind, "ticket.updated")


def sign(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str | None) -> bool:
    """What a receiver does with the signature header (constant-time compare)."""
    return bool(signature) and hmac.compare_digest(sign(key, body), signature or "")


def payload(event, sent_at: int) -> bytes:
    """The body for one `ticketing.desk.EventRecord`."""
    ticket = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dataclasses.asdict(event.ticket).items()}
    doc = {
        "id": event.id, "event": event_name(event.kind), "kind": event.kind, "at": event.at.isoformat(),
        "actor": event.actor, "data": event.data, "ticket": ticket, "sent_at": sent_at,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class WebhookDispatcher:
    """Delivers the events to every configured URL from the gateway's event loop (`start`/`stop`)."""

    name = "web-webhooks"
    # PostgreSQL hands out event ids before the transaction commits, so a missing id may still arrive; after
    # this long it is taken for a rolled-back transaction's hole and passed over.
    gap_seconds = 10.0
    batch = 100

    def __init__(self, desk, settings: WebSettings, owner: str | None = None):
        self.desk, self.settings = desk, settings
        self.owner = owner or f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = settings.webhook_timeout_seconds + settings.webhook_max_retry_seconds + 60
        self.delivered = 0
        self._tasks: list[asyncio.Task] = []
        self._stop: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._gaps: dict[str, dict[int, float]] = {}

    async def start(self) -> None:
        keys = [(hook, hook.key()) for hook in self.settings.webhooks]  # a missing secret file fails the start
        for hook, _ in keys:  # a new URL's cursor is made now: every event from this start on is delivered
            await asyncio.to_thread(self.desk.webhook_claim, hook.url, self.owner, self.lease)
        self._stop = asyncio.Event()
        self._client = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False,
            headers={"user-agent": "helpdesk-gateway-webhooks/1"},
        )
        self._tasks = [asyncio.create_task(self._run(hook, key), name=f"webhook {hook.url}") for hook, key in keys]
        log.info("webhooks: delivering to %d URL(s)", len(keys))

    async def stop(self) -> None:
        if self._stop is None:
            return
        self._stop.set()
        if self._tasks:
            # A POST in flight may finish; one cut short is not marked done, so it is sent again after the restart.
            _, late = await asyncio.wait(self._tasks, timeout=self.settings.webhook_timeout_seconds + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for hook in self.settings.webhooks:
            try:
                await asyncio.to_thread(self.desk.webhook_release, hook.url, self.owner)
            except Exception:  # noqa: BLE001 - the lease then simply expires
                log.exception("webhooks: could not release the lease on %s", hook.url)
        if self._client is not None:
            await self._client.aclose()
        self._tasks, self._stop, self._client = [], None, None

    async def _sleep(self, seconds: float) -> bool:
        """Wait, or less when stopping; True when stopping."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _run(self, hook: WebhookSettings, key: bytes) -> None:
        poll = self.settings.webhook_poll_seconds
        wanted = set(hook.events)
        while not self._stop.is_set():
            try:
                cursor = await asyncio.to_thread(self.desk.webhook_claim, hook.url, self.owner, self.lease)
                if cursor is None:  # another gateway delivers to this URL; look again in a while
                    await self._sleep(min(self.lease, 30))
                    continue
                events = await asyncio.to_thread(self.desk.events_after, cursor, self.batch)
                ready = self._ready(hook.url, cursor, events)
                if not ready:
                    await self._sleep(poll)
                    continue
                # The cursor is saved after each batch and at least every second, not after each event (a
                # commit each): a crash may send the last few events again, which their ids let a receiver see.
                done, saved_at = cursor, time.monotonic()
                for event in ready:
                    if event_name(event.kind) in wanted:
                        if not await self._deliver(hook, key, event):
                            break
                        self.delivered += 1
                    done = event.id
                    if time.monotonic() - saved_at >= 1.0:
                        if not await self._advance(hook, done):
                            done = cursor  # the lease is gone: another gateway goes on from the saved cursor
                            break
                        cursor, saved_at = done, time.monotonic()
                if done != cursor:
                    await self._advance(hook, done)
            except Exception:  # noqa: BLE001 - ours (e.g. the database is away): log, wait, go on
                log.exception("webhooks: %s: delivery loop failed; retrying", hook.url)
                await self._sleep(max(poll, 5))

    async def _advance(self, hook: WebhookSettings, event_id: int) -> bool:
        return await asyncio.to_thread(self.desk.webhook_advance, hook.url, self.owner, event_id, self.lease)

    def _ready(self, url: str, cursor: int, events: list) -> list:
        """The events that can go now: those whose ids run on from the cursor, a hole being waited for a while."""
        gaps = self._gaps.setdefault(url, {})
        for stale in [i for i in gaps if i <= cursor]:
            del gaps[stale]
        ready, expected, now = [], cursor + 1, time.monotonic()
        for event in events:
            if event.id != expected and now - gaps.setdefault(expected, now) < self.gap_seconds:
                break
            ready.append(event)
            expected = event.id + 1
        return ready

    async def _deliver(self, hook: WebhookSettings, key: bytes, event) -> bool:
        """POST one event until the receiver takes it; False when stopping or when the lease was lost."""
        s = self.settings
        attempt = 0
        while True:
            sent_at = int(time.time())
            body = payload(event, sent_at)
            headers = {
                "content-type": "application/json", EVENT_HEADER: event_name(event.kind), DELIVERY_HEADER: str(event.id),
                TIMESTAMP_HEADER: str(sent_at), SIGNATURE_HEADER: sign(key, body),
            }
            try:
                r = await self._client.post(hook.url, content=body, headers=headers)
                if 200 <= r.status_code < 300:
                    return True
                error = f"HTTP {r.status_code} {r.reason_phrase}".strip()
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}".rstrip(": ")
            attempt += 1
            wait = min(s.webhook_max_retry_seconds, s.webhook_retry_seconds * 2 ** min(attempt - 1, 30))
            wait *= random.uniform(0.75, 1.0)  # spread the retries of many gateways
            log.warning("webhook %s: event %d not delivered (attempt %d: %s); next try in %.1f s", hook.url, event.id, attempt, error, wait)
            await asyncio.to_thread(self.desk.webhook_failed, hook.url, self.owner, error)
            if await self._sleep(wait):
                return False
            if await asyncio.to_thread(self.desk.webhook_claim, hook.url, self.owner, self.lease) is None:
                return False
