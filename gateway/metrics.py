"""Prometheus metrics (`prometheus-client`), served as `/metrics` on the web port; every name is `helpdesk_…`.

Two kinds, by where the truth is:
- **Counted in this process**, by wrapping the ports `gateway/` hands the channels (never by editing an
  adapter): contacts by channel and outcome, the intake latency histogram (`MeteredIntake`), SMTP replies by
  class (the receiver's reply observer).
- **Read from the shared state at scrape time** (`StateCollector`), so they are right with several processes
  and several gateways: the outbox (depth, oldest age, failed), the transcription queue and the time to a
  transcript (jobs finished in the last hour), the webhook backlog per URL, calls in progress (their spool
  directories, which SIP worker processes write too), tickets by channel and status.

Multi-process decision: no `PROMETHEUS_MULTIPROC_DIR`. Counters are per process (the gateway's: SMTP, IMAP,
web, and SIP when it runs in-process); what other processes do (SIP workers, `helpdesk-gateway worker`) shows
through the state gauges, read from the database and the spool, which every process shares.

Other modules add their metrics to `Metrics.registry` (e.g. the SLA breach counter: `metrics.counter(…)`).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("gateway.metrics")

INTAKE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TRANSCRIPT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The registry of one gateway process and the metrics `gateway/` itself keeps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.contacts = Counter("helpdesk_contacts", "Contacts taken in, by channel and outcome "
                                "(created, appended, duplicate, rejected)", ["channel", "outcome"], registry=r)
        self.intake_seconds = Histogram("helpdesk_intake_seconds", "From a contact's delivery to its commit",
                                        ["channel"], buckets=INTAKE_BUCKETS, registry=r)
        self.smtp_replies = Counter("helpdesk_smtp_replies", "SMTP replies sent by the receiver, by class (2xx, 4xx, 5xx)",
                                    ["class"], registry=r)
        self.info = Gauge("helpdesk_build_info", "The running version", ["version"], registry=r)
        self.info.labels(_version()).set(1)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        """A counter of another module (`helpdesk_…`), registered once."""
        if not name.startswith("helpdesk_"):
            raise ValueError(f"metric {name!r}: every metric of ours is named helpdesk_…")
        return Counter(name, doc, list(labels), registry=self.registry)

    def smtp_reply(self, status: str) -> None:
        code = status[:1]
        if code in "2345":
            self.smtp_replies.labels(f"{code}xx").inc()

    def wrap_intake(self, intake: Any) -> MeteredIntake:
        return MeteredIntake(intake, self)

    def watch_state(self, sessions, data_dir: Path, spool_dir: Path | None = None) -> None:
        self.registry.register(StateCollector(sessions, Path(data_dir), spool_dir))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MeteredIntake:
    """The intake port with counts and latency; everything else passes through unchanged."""

    def __init__(self, inner: Any, metrics: Metrics):
        self._inner, self._m = inner, metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _observe(self, contact, result, started: float) -> None:
        channel = str(contact.channel)
        self._m.contacts.labels(channel, str(result.outcome)).inc()
        self._m.intake_seconds.labels(channel).observe(time.perf_counter() - started)

    def deliver(self, contact):
        t0 = time.perf_counter()
        result = self._inner.deliver(contact)
        self._observe(contact, result, t0)
        return result

    def deliver_many(self, contacts):
        contacts = list(contacts)
        t0 = time.perf_counter()
        results = self._inner.deliver_many(contacts)
        for contact, result in zip(contacts, results):
            self._observe(contact, result, t0)
        return results

    def deliver_future(self, contact, extraction=None) -> Future:
        t0 = time.perf_counter()
        future = self._inner.deliver_future(contact, extraction)

        def done(f: Future) -> None:
            if f.exception() is None:
                self._observe(contact, f.result(), t0)

        future.add_done_callback(done)
        return future

    def submit(self, contact):
        return self.deliver(contact)

    def submit_many(self, contacts):
        return self.deliver_many(contacts)

    def reject(self, contact, reason: str, **kw):
        row = self._inner.reject(contact, reason, **kw)
        self._m.contacts.labels(str(contact.channel), "rejected").inc()
        return row


class StateCollector:
    """Gauges read at scrape time from the database and the call spool (shared by every process)."""

    def __init__(self, sessions, data_dir: Path, spool_dir: Path | None = None):
        self.sessions, self.data_dir = sessions, data_dir
        self.spool_dir = spool_dir or data_dir / "calls"

    def describe(self):
        return []  # names are known only by collecting: no database read at registration

    def collect(self):
        try:
            yield from self._collect()
        except Exception:  # noqa: BLE001 - the database is away: /metrics still answers with what it has
            log.warning("metrics: the shared state could not be read", exc_info=True)
            up = GaugeMetricFamily("helpdesk_database_up", "Whether the database answered the last scrape")
            up.add_metric([], 0)
            yield up

    def _collect(self):
        from sqlalchemy import func, select

        from ticketing.models import Event, Ticket, WebhookCursor, utcnow
        from ticketing.outbox import FAILED, PENDING, SENDING, OutboxMail
        from ticketing.transcription import DONE, RUNNING, TranscriptionJob
        from ticketing.transcription import PENDING as JOB_PENDING

        now = utcnow()
        with self.sessions() as s:
            live = OutboxMail.status.in_((PENDING, SENDING))
            depth = s.scalar(select(func.count()).select_from(OutboxMail).where(live)) or 0
            oldest = s.scalar(select(OutboxMail.created_at).where(live).order_by(OutboxMail.created_at).limit(1))
            failed = s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.status == FAILED)) or 0
            queue = dict(s.execute(select(TranscriptionJob.status, func.count()).where(
                TranscriptionJob.status.in_((JOB_PENDING, RUNNING))).group_by(TranscriptionJob.status)).all())
            from datetime import timedelta

            done = s.execute(select(TranscriptionJob.created_at, TranscriptionJob.finished_at).where(
                TranscriptionJob.status == DONE, TranscriptionJob.finished_at >= now - timedelta(hours=1))).all()
            last_event = s.scalar(select(func.max(Event.id))) or 0
            cursors = s.execute(select(WebhookCursor.url, WebhookCursor.last_event_id)).all()
            tickets = s.execute(select(Ticket.channel, Ticket.status, func.count()).group_by(Ticket.channel, Ticket.status)).all()

        up = GaugeMetricFamily("helpdesk_database_up", "Whether the database answered the last scrape")
        up.add_metric([], 1)
        yield up
        g = GaugeMetricFamily("helpdesk_outbox_depth", "Outgoing mails waiting (pending or being sent)")
        g.add_metric([], depth)
        yield g
        g = GaugeMetricFamily("helpdesk_outbox_oldest_age_seconds", "Age of the oldest waiting outgoing mail (0: none)")
        g.add_metric([], (now - oldest).total_seconds() if oldest is not None else 0.0)
        yield g
        g = GaugeMetricFamily("helpdesk_outbox_failed", "Outgoing mails the relay refused for good (5xx)")
        g.add_metric([], failed)
        yield g
        g = GaugeMetricFamily("helpdesk_transcription_queue_depth", "Transcription jobs waiting or running", labels=["status"])
        for status in (JOB_PENDING, RUNNING):
            g.add_metric([status], queue.get(status, 0))
        yield g
        waits = sorted((f - c).total_seconds() for c, f in done if c is not None and f is not None)
        buckets, n = [], 0
        for bound in TRANSCRIPT_BUCKETS:
            while n < len(waits) and waits[n] <= bound:
                n += 1
            buckets.append((str(float(bound)), n))
        buckets.append(("+Inf", len(waits)))
        h = GaugeHistogramMetricFamily("helpdesk_transcript_wait_seconds",
                                       "From a recording's job to its transcript, jobs finished in the last hour",
                                       buckets=buckets, gsum_value=sum(waits))
        yield h
        g = GaugeMetricFamily("helpdesk_webhook_backlog_events", "Ticket events not yet delivered to a webhook URL", labels=["url"])
        for url, last in cursors:
            g.add_metric([url], max(0, last_event - (last or 0)))
        yield g
        g = GaugeMetricFamily("helpdesk_tickets", "Tickets by channel and status", labels=["channel", "status"])
        for channel, status, count in tickets:
            g.add_metric([channel, status], count)
        yield g
        g = GaugeMetricFamily("helpdesk_sip_active_calls", "Calls in progress (their spool directories, all SIP processes)")
        g.add_metric([], _calls_in_progress(self.spool_dir))
        yield g


def _calls_in_progress(spool: Path) -> int:
    try:
        return sum(1 for transport in spool.iterdir() if transport.is_dir() for call in transport.iterdir() if call.is_dir())
    except FileNotFoundError:
        return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("helpdesk-gateway")
    except PackageNotFoundError:
        return "unknown"
