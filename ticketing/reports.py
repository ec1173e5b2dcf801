"""The desk's reports (issue 13 §5): what the service level was over a date range, for the client bodies.

`Reports(sessions, low_confidence, clock).build(since, until)` reads the existing tables and returns a `Report`:
plain rows per table, the same on SQLite and PostgreSQL. Counting is done by the database (GROUP BY, SLA shares as
sums of CASE, the day of an instant and a duration in seconds with one expression per dialect: `_day`,
`_seconds`), over indexes of migration 0011 (`tickets.created_at`, `messages (received_at, direction, channel)`,
`events (kind, ticket_id, at)`); only the durations come back, one number a ticket, for the median and p90 here.

The range is inclusive UTC days: tickets *created* and contacts *received* from `since` 00:00 to `until` 24:00.
What each figure means:
- contacts: inbound messages (every call, mail, form post or reply), per channel per day;
- SLA: a ticket met its respond target when it was answered at its current level (`responded_at`) by
  `respond_by`; it met resolve when its last resolution came by `resolve_by`. One still open past its target
  is breached; one still within its target is pending and counts in neither share;
- backlog: tickets open now (by the injected clock) that were created by the end of the range, per level, aged
  in days since they were created;
- times: wall-clock minutes from creation to first response and to the last resolution (median and p90,
  nearest-rank);
- pre-filled: the share of tickets whose reporter (any of name/email/phone), asset and anomaly were all filled
  with a confidence at or above `ticketing.low_confidence`: the gateway's own quality figure.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

from sqlalchemy import case, extract, func, select
from sqlalchemy.orm import Session, sessionmaker

from .groups import SupportGroup
from .lifecycle import OPEN_STATUSES
from .models import Asset, Event, Message, Ticket, TicketField
from .organisations import Organisation

NONE = "—"  # the row label of tickets with no organisation, group or asset
AGE_BUCKETS = ((1, "<1d"), (3, "1-3d"), (7, "3-7d"), (30, "7-30d"), (math.inf, ">30d"))
REPORTER_FIELDS = ("reporter_name", "reporter_email", "reporter_phone")
TOP_ASSETS = 10
# Each table's columns, in order: the JSON rows, the CSV header and the page's tables all follow them.
TABLES: dict[str, tuple[str, ...]] = {
    "contacts": ("day", "channel", "contacts"),
    "tickets": ("organisation", "group", "tickets"),
    "sla": ("organisation", "level", "tickets", "respond_met", "respond_breached", "respond_pct", "resolve_met", "resolve_breached", "resolve_pct"),
    "backlog": ("level", "open", *(label for _, label in AGE_BUCKETS), "oldest_days"),
    "times": ("measure", "count", "median_minutes", "p90_minutes"),
    "assets": ("tag", "name", "tickets"),
    "quality": ("tickets", "prefilled", "prefilled_pct", "threshold"),
}


class ReportError(ValueError):
    """The caller's range is wrong (reversed, or longer than the limit): say what to fix."""


@dataclass
class Report:
    since: date
    until: date
    generated_at: datetime
    tables: dict[str, list[dict]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"from": self.since.isoformat(), "to": self.until.isoformat(), "generated_at": self.generated_at.isoformat(), **self.tables}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _minutes(seconds) -> float:
    return round(float(seconds) / 60.0, 1)


SLA_COUNTS = ("tickets", "respond_met", "respond_breached", "resolve_met", "resolve_breached")


def _sla_sums(done, now: datetime) -> list:
    """The SLA counts of a group of tickets as SQL sums, in the order of SLA_COUNTS. Respond: answered at the
    level by `respond_by` (met) or after it, or not answered and past it (breached). Resolve: `done` (the last
    resolution of a ticket no longer open) by `resolve_by` or after it, or not done and past it."""
    t = Ticket

    def count(cond):
        return func.sum(case((cond, 1), else_=0))

    return [
        func.count(),
        count(t.respond_by.is_not(None) & t.responded_at.is_not(None) & (t.responded_at <= t.respond_by)),
        count(t.respond_by.is_not(None) & ((t.responded_at.is_not(None) & (t.responded_at > t.respond_by))
                                           | (t.responded_at.is_(None) & (t.respond_by < now)))),
        count(t.resolve_by.is_not(None) & done.is_not(None) & (done <= t.resolve_by)),
        count(t.resolve_by.is_not(None) & ((done.is_not(None) & (done > t.resolve_by)) | (done.is_(None) & (t.resolve_by < now)))),
    ]


def _seconds(a, b, dialect: str):
    """`b - a` in seconds, in SQL. SQLite keeps instants as text and counts julian days in milliseconds: rounded
    to the millisecond, the float error of the day count goes."""
    if dialect == "postgresql":
        return extract("epoch", b - a)
    return func.round((func.julianday(b) - func.julianday(a)) * 86400.0, 3)


def _day(column, dialect: str):
    """The UTC day (YYYY-MM-DD) of an instant, in SQL (SQLite stores UTC text, PostgreSQL timestamptz)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


@dataclass
class Reports:
    sessions: sessionmaker[Session]
    low_confidence: float = 0.6
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    max_days: int = 3660

    def build(self, since: date, until: date, organisation: str | None = None) -> Report:
        """Every table for `since`..`until` (inclusive), optionally for one organisation (by name)."""
        if until < since:
            raise ReportError(f"'to' ({until}) is before 'from' ({since})")
        if (until - since).days >= self.max_days:
            raise ReportError(f"the range is longer than {self.max_days} days")
        start = datetime.combine(since, time.min, timezone.utc)
        end = datetime.combine(until + timedelta(days=1), time.min, timezone.utc)
        now = self.clock()
        with self.sessions() as s:
            org_id = None
            if organisation:
                org_id = s.scalar(select(Organisation.id).where(Organisation.name == organisation))
                if org_id is None:
                    raise ReportError(f"no organisation named {organisation!r}")
            orgs = dict(s.execute(select(Organisation.id, Organisation.name)).all())
            groups = dict(s.execute(select(SupportGroup.id, SupportGroup.name)).all())
            in_range = (Ticket.created_at >= start) & (Ticket.created_at < end)
            if org_id is not None:
                in_range &= Ticket.organisation_id == org_id
            dialect = s.get_bind().dialect.name
            conn = s.connection()  # Core rows: the ORM's row layer costs more than the SQL for 100,000 of them
            # Each ticket's last resolution, for the tickets of the range (ix_events_kind: kind, ticket_id, at).
            res = (select(Event.ticket_id, func.max(Event.at).label("done")).join(Ticket, Ticket.id == Event.ticket_id)
                   .where(in_range, Event.kind == "resolved").group_by(Event.ticket_id).subquery())
            done = case((Ticket.status.in_(OPEN_STATUSES), None), else_=res.c.done)
            ranged = select().select_from(Ticket).outerjoin(res, res.c.ticket_id == Ticket.id).where(in_range)
            # One pass over the range's tickets: counts and SLA sums per (organisation, level, group, asset),
            # rolled up here into the tickets, SLA and asset tables (a few thousand rows at most).
            keys = (Ticket.organisation_id, Ticket.level, Ticket.group_id, Ticket.asset_id)
            cells = conn.execute(ranged.add_columns(*keys, *_sla_sums(done, now)).group_by(*keys)).all()
            # Both durations in one pass: one row per ticket answered or resolved, NULL where it was not.
            durations = conn.execute(ranged.add_columns(_seconds(Ticket.created_at, Ticket.first_response_at, dialect),
                                                     _seconds(Ticket.created_at, done, dialect))
                                  .where(Ticket.first_response_at.is_not(None) | done.is_not(None))).all()
            first = [a for a, _ in durations if a is not None]
            resolved = [b for _, b in durations if b is not None]
            # Contacts per day and channel, counted off ix_messages_received (received_at, direction, channel).
            day = _day(Message.received_at, dialect)
            contacts_q = (select(day, Message.channel, func.count()).where(Message.direction == "in",
                          Message.received_at >= start, Message.received_at < end).group_by(day, Message.channel))
            if org_id is not None:
                contacts_q = contacts_q.join(Ticket, Ticket.id == Message.ticket_id).where(Ticket.organisation_id == org_id)
            contacts = s.execute(contacts_q).all()
            # Pre-filled: counted in the database, each of the three a primary-key probe of ticket_fields.
            def confident(names):
                return (select(TicketField.ticket_id).where(TicketField.ticket_id == Ticket.id, TicketField.name.in_(names),
                                                            TicketField.value != "", TicketField.confidence >= self.low_confidence).exists())

            prefilled = s.scalar(select(func.count()).select_from(Ticket).where(
                in_range, confident(REPORTER_FIELDS), confident(("asset",)), confident(("anomaly",)))) or 0
            # Backlog: counted per level and age bucket in the database (a third of all tickets may be open).
            edges = [now - timedelta(days=limit) for limit, _ in AGE_BUCKETS[:-1]]
            buckets = [func.sum(case((Ticket.created_at > edges[0], 1), else_=0))]
            buckets += [func.sum(case(((Ticket.created_at <= hi) & (Ticket.created_at > lo), 1), else_=0)) for hi, lo in zip(edges, edges[1:])]
            buckets += [func.sum(case((Ticket.created_at <= edges[-1], 1), else_=0))]
            # Read off ix_tickets_queue (status, level, priority, created_at) alone: on SQLite the bound is put in
            # a coalesce(), or its planner takes ix_tickets_created for it and visits every ticket ever made.
            made = Ticket.created_at if dialect == "postgresql" else func.coalesce(Ticket.created_at, Ticket.created_at)
            open_q = (select(Ticket.level, func.count(), func.min(Ticket.created_at), *buckets)
                      .where(Ticket.status.in_(OPEN_STATUSES), made < end).group_by(Ticket.level).order_by(Ticket.level))
            if org_id is not None:
                open_q = open_q.where(Ticket.organisation_id == org_id)
            backlog = s.execute(open_q).all()
            asset_counts: Counter = Counter()
            for org, level, group, asset, n, *_ in cells:
                asset_counts[asset] += n
            top = [a for a, _ in sorted(asset_counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0))[:TOP_ASSETS]]
            asset_names = {a.id: (a.tag, a.name) for a in s.execute(select(Asset.id, Asset.tag, Asset.name).where(Asset.id.in_([a for a in top if a is not None])))}

        report = Report(since, until, now)
        report.tables["contacts"] = [{"day": d, "channel": c, "contacts": n} for d, c, n in sorted(tuple(r) for r in contacts)]
        named: Counter = Counter()
        for o, _, g, _, n, *_ in cells:
            named[(orgs.get(o, NONE), groups.get(g, NONE))] += n
        report.tables["tickets"] = [{"organisation": o, "group": g, "tickets": n} for (o, g), n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))]
        count = sum(named.values())
        report.tables["sla"] = self._sla(cells, orgs)
        report.tables["backlog"] = self._backlog(backlog, now)
        report.tables["times"] = self._times(first, resolved)
        report.tables["assets"] = [
            {"tag": asset_names.get(a, (NONE, NONE))[0], "name": asset_names.get(a, (NONE, NONE))[1], "tickets": asset_counts[a]} for a in top
        ]
        report.tables["quality"] = [{"tickets": count, "prefilled": prefilled, "prefilled_pct": _pct(prefilled, count),
                                     "threshold": self.low_confidence}]
        return report

    @staticmethod
    def _sla(rows, orgs: dict) -> list[dict]:
        merged: dict[tuple[str, int], Counter] = defaultdict(Counter)
        for org, level, _, _, *sums in rows:
            merged[(orgs.get(org, NONE), level)].update(dict(zip(SLA_COUNTS, (int(n or 0) for n in sums))))
        out = []
        for (org, level), c in sorted(merged.items()):
            out.append({
                "organisation": org, "level": level, "tickets": c["tickets"],
                "respond_met": c["respond_met"], "respond_breached": c["respond_breached"],
                "respond_pct": _pct(c["respond_met"], c["respond_met"] + c["respond_breached"]),
                "resolve_met": c["resolve_met"], "resolve_breached": c["resolve_breached"],
                "resolve_pct": _pct(c["resolve_met"], c["resolve_met"] + c["resolve_breached"]),
            })
        return out

    @staticmethod
    def _backlog(rows, now: datetime) -> list[dict]:
        out = []
        for level, count, oldest, *counts in rows:
            if isinstance(oldest, str):  # SQLite hands an aggregate back untyped
                oldest = datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=timezone.utc)
            row = {"level": level, "open": count}
            row.update({label: int(n or 0) for (_, label), n in zip(AGE_BUCKETS, counts)})
            row["oldest_days"] = round(max(0.0, (now - oldest).total_seconds() / 86400), 1)
            out.append(row)
        return out

    @staticmethod
    def _times(first: list, resolved: list) -> list[dict]:
        """Median and p90 in minutes (to 0.1) of durations in seconds. Rounding keeps the order, so the raw
        seconds are sorted and only the values at the ranks are rounded: the same figures as rounding all."""
        out = []
        for name, seconds in (("first_response", first), ("resolution", resolved)):
            v = sorted(seconds)
            mid = len(v) // 2
            med = None if not v else _minutes(v[mid]) if len(v) % 2 else (_minutes(v[mid - 1]) + _minutes(v[mid])) / 2
            p90 = percentile(v, 90)
            out.append({"measure": name, "count": len(v), "median_minutes": med, "p90_minutes": None if p90 is None else _minutes(p90)})
        return out
