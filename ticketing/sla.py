"""Service levels: business calendars, SLA contracts, and the due times counted in working time only.

A `Calendar` is an organisation's working week (per weekday, one or more intervals in its time zone), the
national holidays of its country (the `holidays` package) and its local ones (a patron saint's day such as
Aosta's 7 September, written `09-07`, or one date `2026-12-24`). `add(start, minutes)` is the instant when
`minutes` of working time have passed after `start`; `between(a, b)` the working minutes from `a` to `b`.
The always-open calendar (`24x7`) is plain clock arithmetic.

A `Contract` gives, for each priority P1..P4, the minutes allowed to respond and to resolve, in working time.
The text forms below are what `config/organisations.csv` holds, parsed here with errors that say what to fix:

    hours     "mon-fri 08:00-13:00,14:00-18:00|sat 08:00-12:00"   or "24x7"
    holidays  "09-07|2026-12-24"
    sla       "P1=15/240|P2=60/480|P3=240/4320|P4=480/14400"      (respond/resolve minutes)

`due_times` is the one computation of a ticket's deadlines: the respond clock starts when the ticket reached
its current level, the resolve clock when it was created; minutes spent waiting (paused) are added back.
A warning is due at `warn_ratio` (80 %) of either span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = (1, 2, 3, 4)
WARN_RATIO = 0.8
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class CalendarError(ValueError):
    """A calendar or contract written wrong; the message says which part and what is expected."""


@lru_cache(maxsize=64)
def _national(country: str, year: int) -> frozenset[date]:
    return frozenset(_holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class Calendar:
    # weekday (0 = Monday) -> sorted working intervals as minutes from midnight; empty tuple: a day off
    week: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    tz: str = "Europe/Rome"
    country: str | None = "IT"
    local: tuple[str, ...] = ()  # "MM-DD" every year, or "YYYY-MM-DD" once
    always: bool = False

    # -- parsing ---------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, hours: str, holidays: str = "", tz: str = "Europe/Rome", country: str | None = "IT") -> Calendar:
        hours = (hours or "").strip().lower()
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"time zone {tz!r} is not known (e.g. Europe/Rome)") from None
        local = tuple(h for h in (x.strip() for x in (holidays or "").split("|")) if h)
        for h in local:
            try:
                date.fromisoformat(h if len(h) == 10 else f"2000-{h}")
            except ValueError:
                raise CalendarError(f"holiday {h!r} is not MM-DD or YYYY-MM-DD") from None
        if hours in ("", "24x7", "always"):
            return cls(tz=tz, country=country, local=local, always=True)
        week: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for part in hours.split("|"):
            part = part.strip()
            if not part:
                continue
            days_text, _, spans_text = part.partition(" ")
            days = _days(days_text)
            for span in spans_text.replace(" ", "").split(","):
                m = _SPAN.match(span)
                if not m:
                    raise CalendarError(f"hours {span!r} are not HH:MM-HH:MM (in {part!r})")
                a, b = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
                if not 0 <= a < b <= 24 * 60:
                    raise CalendarError(f"hours {span!r} do not run forward within one day")
                for d in days:
                    week[d].append((a, b))
        if not any(week):
            raise CalendarError(f"hours {hours!r} name no working time")
        return cls(week=tuple(tuple(sorted(w)) for w in week), tz=tz, country=country, local=local)

    # -- arithmetic ------------------------------------------------------------------------------------------
    def is_holiday(self, day: date) -> bool:
        if self.country and day in _national(self.country, day.year):
            return True
        return f"{day.month:02d}-{day.day:02d}" in self.local or day.isoformat() in self.local

    def _intervals(self, day: date, zone: ZoneInfo):
        if self.is_holiday(day):
            return
        for a, b in self.week[day.weekday()]:
            start = datetime.combine(day, time(), zone) + timedelta(minutes=a)
            end = datetime.combine(day, time(), zone) + timedelta(minutes=b)
            yield start.astimezone(timezone.utc), end.astimezone(timezone.utc)

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant at which `minutes` of working time have passed after `start`."""
        if self.always or minutes <= 0:
            return start + timedelta(minutes=max(0.0, minutes))
        zone = ZoneInfo(self.tz)
        left = timedelta(minutes=minutes)
        day = start.astimezone(zone).date()
        for _ in range(366 * 5):  # a calendar with working time finds it within a few weeks; this only bounds a bug
            for a, b in self._intervals(day, zone):
                if b <= start:
                    continue
                a = max(a, start)
                if b - a >= left:
                    return a + left
                left -= b - a
            day += timedelta(days=1)
        raise CalendarError("no working time found within five years")

    def between(self, a: datetime, b: datetime) -> float:
        """Working minutes from `a` to `b` (0 when `b` is not after `a`)."""
        if b <= a:
            return 0.0
        if self.always:
            return (b - a).total_seconds() / 60
        zone = ZoneInfo(self.tz)
        total = timedelta()
        day, last = a.astimezone(zone).date(), b.astimezone(zone).date()
        while day <= last:
            for s, e in self._intervals(day, zone):
                s, e = max(s, a), min(e, b)
                if e > s:
                    total += e - s
            day += timedelta(days=1)
        return total.total_seconds() / 60


ALWAYS = Calendar(always=True, country=None)


def _days(text: str) -> list[int]:
    out: list[int] = []
    for piece in text.split(","):
        first, _, last = piece.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise CalendarError(f"days {text!r}: expected e.g. mon-fri, sat or mon,wed")
        i, j = DAYS.index(first), DAYS.index(last or first)
        out += list(range(i, j + 1)) if i <= j else [*range(i, 7), *range(0, j + 1)]
    return out


@dataclass(frozen=True)
class Target:
    respond_minutes: int
    resolve_minutes: int


@dataclass(frozen=True)
class Contract:
    """Minutes of working time to respond and to resolve, per priority (1 highest .. 4)."""

    targets: dict[int, Target] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, default: Contract | None = None) -> Contract:
        targets = dict(default.targets) if default else {}
        for part in (p.strip() for p in (text or "").split("|")):
            if not part:
                continue
            key, _, value = part.partition("=")
            key = key.strip().upper()
            respond, _, resolve = value.partition("/")
            if key not in ("P1", "P2", "P3", "P4") or not respond.strip().isdigit() or not resolve.strip().isdigit():
                raise CalendarError(f"SLA {part!r}: expected P1..P4=RESPOND/RESOLVE in minutes, e.g. P1=15/240")
            targets[int(key[1])] = Target(int(respond), int(resolve))
        missing = [p for p in PRIORITIES if p not in targets]
        if missing:
            raise CalendarError(f"SLA has no target for {', '.join(f'P{p}' for p in missing)}")
        return cls(targets)

    def text(self) -> str:
        return "|".join(f"P{p}={t.respond_minutes}/{t.resolve_minutes}" for p, t in sorted(self.targets.items()))

    def target(self, priority: int) -> Target:
        return self.targets.get(priority) or self.targets[3]


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime
    resolve_by: datetime
    respond_warn: datetime
    resolve_warn: datetime


def due_times(calendar: Calendar, target: Target, created_at: datetime, level_since: datetime, paused_minutes: float = 0.0) -> Deadlines:
    """The deadlines of a ticket: respond from when it reached its level, resolve from its creation, each
    moved on by the working minutes it spent waiting."""
    return Deadlines(
        respond_by=calendar.add(level_since, target.respond_minutes + paused_minutes),
        resolve_by=calendar.add(created_at, target.resolve_minutes + paused_minutes),
        respond_warn=calendar.add(level_since, target.respond_minutes * WARN_RATIO + paused_minutes),
        resolve_warn=calendar.add(created_at, target.resolve_minutes * WARN_RATIO + paused_minutes),
    )
