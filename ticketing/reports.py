"""The desk's reports (issue 13 §5): what the service level was over a date range, for the client bodies.

`Reports(sessions, low_confidence, clock).build(since, until)` reads the existing tables and returns a `Report`:
plain rows per table, the same on SQLite and PostgreSQL because every grouping by day and every percentile is
done here in Python over narrow column reads (the SQL for dates and percentiles differs between the two).

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

from sqlalchemy import case, distinct, func, select
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


def _minutes(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds() / 60.0, 1)


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
            tickets = s.execute(
                select(Ticket.id, Ticket.organisation_id, Ticket.group_id, Ticket.level, Ticket.status, Ticket.created_at,
                       Ticket.responded_at, Ticket.first_response_at, Ticket.respond_by, Ticket.resolve_by, Ticket.asset_id)
                .where(in_range)
            ).all()
            resolved_at = dict(
                s.execute(
                    select(Event.ticket_id, func.max(Event.at)).join(Ticket, Ticket.id == Event.ticket_id)
                    .where(in_range, Event.kind == "resolved").group_by(Event.ticket_id)
                ).all()
            )
            contacts_q = (select(Message.channel, Message.received_at).where(Message.direction == "in",
                          Message.received_at >= start, Message.received_at < end))
            if org_id is not None:
                contacts_q = contacts_q.join(Ticket, Ticket.id == Message.ticket_id).where(Ticket.organisation_id == org_id)
            contacts = s.execute(contacts_q).all()
            # Pre-filled: counted in the database (four field rows a ticket would be the largest read otherwise).
            kind = case((TicketField.name.in_(REPORTER_FIELDS), "reporter"), else_=TicketField.name)
            confident = (
                select(TicketField.ticket_id).join(Ticket, Ticket.id == TicketField.ticket_id)
                .where(in_range, TicketField.name.in_((*REPORTER_FIELDS, "asset", "anomaly")), TicketField.value.is_not(None),
                       TicketField.value != "", TicketField.confidence >= self.low_confidence)
                .group_by(TicketField.ticket_id).having(func.count(distinct(kind)) == 3)
            ).subquery()
            prefilled = s.scalar(select(func.count()).select_from(confident)) or 0
            # Backlog: counted per level and age bucket in the database (a third of all tickets may be open).
            edges = [now - timedelta(days=limit) for limit, _ in AGE_BUCKETS[:-1]]
            buckets = [func.sum(case((Ticket.created_at > edges[0], 1), else_=0))]
            buckets += [func.sum(case(((Ticket.created_at <= hi) & (Ticket.created_at > lo), 1), else_=0)) for hi, lo in zip(edges, edges[1:])]
            buckets += [func.sum(case((Ticket.created_at <= edges[-1], 1), else_=0))]
            open_q = (select(Ticket.level, func.count(), func.min(Ticket.created_at), *buckets)
                      .where(Ticket.status.in_(OPEN_STATUSES), Ticket.created_at < end).group_by(Ticket.level).order_by(Ticket.level))
            if org_id is not None:
                open_q = open_q.where(Ticket.organisation_id == org_id)
            backlog = s.execute(open_q).all()
            asset_counts = Counter(t.asset_id for t in tickets)
            top = [a for a, _ in sorted(asset_counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0))[:TOP_ASSETS]]
            asset_names = {a.id: (a.tag, a.name) for a in s.execute(select(Asset.id, Asset.tag, Asset.name).where(Asset.id.in_([a for a in top if a is not None])))}

        report = Report(since, until, now)
        report.tables["contacts"] = self._contacts(contacts)
        report.tables["tickets"] = [
            {"organisation": o, "group": g, "tickets": n}
            for (o, g), n in sorted(Counter((orgs.get(t.organisation_id, NONE), groups.get(t.group_id, NONE)) for t in tickets).items(),
                                    key=lambda kv: (-kv[1], kv[0]))
        ]
        report.tables["sla"] = self._sla(tickets, resolved_at, orgs, now)
        report.tables["backlog"] = self._backlog(backlog, now)
        report.tables["times"] = self._times(tickets, resolved_at)
        report.tables["assets"] = [
            {"tag": asset_names.get(a, (NONE, NONE))[0], "name": asset_names.get(a, (NONE, NONE))[1], "tickets": asset_counts[a]} for a in top
        ]
        report.tables["quality"] = [{"tickets": len(tickets), "prefilled": prefilled, "prefilled_pct": _pct(prefilled, len(tickets)),
                                     "threshold": self.low_confidence}]
        return report

    @staticmethod
    def _contacts(rows) -> list[dict]:
        counts = Counter((r.received_at.astimezone(timezone.utc).date().isoformat(), r.channel) for r in rows)
        return [{"day": d, "channel": c, "contacts": n} for (d, c), n in sorted(counts.items())]

    @staticmethod
    def _sla(tickets, resolved_at: dict, orgs: dict, now: datetime) -> list[dict]:
        rows: dict[tuple[str, int], Counter] = defaultdict(Counter)
        for t in tickets:
            c = rows[(orgs.get(t.organisation_id, NONE), t.level)]
            c["tickets"] += 1
            if t.respond_by is not None:
                if t.responded_at is not None:
                    c["respond_met" if t.responded_at <= t.respond_by else "respond_breached"] += 1
                elif now > t.respond_by:
                    c["respond_breached"] += 1
            if t.resolve_by is not None:
                done = resolved_at.get(t.id) if t.status not in OPEN_STATUSES else None
                if done is not None:
                    c["resolve_met" if done <= t.resolve_by else "resolve_breached"] += 1
                elif now > t.resolve_by:
                    c["resolve_breached"] += 1
        out = []
        for (org, level), c in sorted(rows.items()):
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
    def _times(tickets, resolved_at: dict) -> list[dict]:
        first = [_minutes(t.created_at, t.first_response_at) for t in tickets if t.first_response_at is not None]
        resolved = [_minutes(t.created_at, resolved_at[t.id]) for t in tickets if t.id in resolved_at and t.status not in OPEN_STATUSES]
        return [
            {"measure": name, "count": len(v), "median_minutes": median(v), "p90_minutes": percentile(v, 90)}
            for name, v in (("first_response", first), ("resolution", resolved))
        ]
