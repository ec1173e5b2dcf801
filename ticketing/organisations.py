"""Client organisations (the bodies the desk serves): name, email domains, business calendar, SLA contract.

Users and assets belong to one (`organisation` columns of their CSV files) and a ticket inherits it at intake,
from its reporter, else its asset, else the domain of the reporter's email. The organisation's calendar and
contract are what `Lifecycle.recompute` counts the ticket's due times with (`ticketing.sla`).

`config/organisations.csv` columns: name, domains (`|`-separated), hours, holidays, timezone, sla (the forms
`ticketing.sla` documents). Empty hours mean always open; an empty sla takes the configured default contract.
Importing is an upsert by name. An organisation that a user, asset or group row names but that is not known
yet is created with the defaults (and reported), so no row is lost for the order of the imports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .csvfiles import ImportReport, RowError
from .csvfiles import rows as _rows
from .csvfiles import split as _split
from .models import Asset, Base, BigId, User
from .sla import ALWAYS, Calendar, CalendarError, Contract


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    domains: Mapped[list] = mapped_column(default=list)  # lower-case email domains
    hours: Mapped[str] = mapped_column(Text, default="")  # "" = always open
    holidays: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Rome")
    sla: Mapped[str] = mapped_column(Text, default="")  # "" = the configured default contract


def parse_organisation(row: dict[str, str]) -> dict:
    name = row.get("name", "").strip()
    if not name:
        raise RowError("missing name")
    values = {
        "name": name[:200],
        "domains": [d.lower().lstrip("@") for d in _split(row.get("domains", ""))],
        "hours": row.get("hours", ""),
        "holidays": row.get("holidays", ""),
        "timezone": row.get("timezone") or "Europe/Rome",
        "sla": row.get("sla", ""),
    }
    try:
        Calendar.parse(values["hours"], values["holidays"], values["timezone"])
        if values["sla"]:
            Contract.parse(values["sla"], Contract.parse("P1=1/1|P2=1/1|P3=1/1|P4=1/1"))
    except CalendarError as e:
        raise RowError(str(e)) from None
    return values


def import_organisations(sessions: sessionmaker[Session], path: Path, progress=None) -> ImportReport:
    report = ImportReport()
    with sessions() as s, s.begin():
        seen: set[str] = set()
        for line, row in _rows(Path(path)):
            try:
                values = parse_organisation(row)
            except RowError as e:
                report.errors.append((line, str(e)))
                continue
            if values["name"].lower() in seen:
                report.errors.append((line, f"{values['name']!r} appears twice in the file; this row was skipped"))
                continue
            seen.add(values["name"].lower())
            org = s.scalar(select(Organisation).where(func.lower(Organisation.name) == values["name"].lower()))
            if org is None:
                s.add(Organisation(**values))
            else:
                for k, v in values.items():
                    setattr(org, k, v)
            report.imported += 1
            if progress:
                progress(1)
    return report


def organisation_id(s: Session, name: str | None, created: list[str] | None = None) -> int | None:
    """The id of the organisation called `name` (any case), made with the defaults when it is new."""
    name = (name or "").strip()[:200]
    if not name:
        return None
    found = s.scalar(select(Organisation.id).where(func.lower(Organisation.name) == name.lower()))
    if found is None:
        org = Organisation(name=name, domains=[], hours="", holidays="", timezone="Europe/Rome", sla="")
        s.add(org)
        s.flush()
        found = org.id
        if created is not None:
            created.append(name)
    return found


@dataclass(frozen=True)
class OrgTerms:
    id: int
    name: str
    calendar: Calendar
    contract: Contract


class Organisations:
    """A cached view of who belongs where and on which terms, for `recompute` (read on every change)."""

    def __init__(self, sessions: sessionmaker[Session] | None, default_contract: Contract, ttl: float = 30.0):
        self.sessions, self.default_contract, self.ttl = sessions, default_contract, ttl
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._terms: dict[int, OrgTerms] = {}
        self._domains: dict[str, int] = {}
        self._users: dict[int, int] = {}
        self._assets: dict[int, int] = {}

    def invalidate(self) -> None:
        self._loaded_at = -1e9

    def _load(self) -> None:
        if self.sessions is None or time.monotonic() - self._loaded_at < self.ttl:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < self.ttl:
                return
            terms, domains = {}, {}
            with self.sessions() as s:
                for o in s.scalars(select(Organisation)):
                    try:
                        cal = Calendar.parse(o.hours, o.holidays, o.timezone)
                        contract = Contract.parse(o.sla, self.default_contract) if o.sla else self.default_contract
                    except CalendarError:  # checked at import; a hand-edited row falls back to the defaults
                        cal, contract = ALWAYS, self.default_contract
                    terms[o.id] = OrgTerms(o.id, o.name, cal, contract)
                    for d in o.domains or ():
                        domains.setdefault(d, o.id)
                users = dict(s.execute(select(User.id, User.organisation_id).where(User.organisation_id.is_not(None))).all())
                assets = dict(s.execute(select(Asset.id, Asset.organisation_id).where(Asset.organisation_id.is_not(None))).all())
            self._terms, self._domains, self._users, self._assets = terms, domains, users, assets
            self._loaded_at = time.monotonic()

    def terms(self, organisation_id: int | None) -> tuple[Calendar, Contract]:
        self._load()
        t = self._terms.get(organisation_id) if organisation_id is not None else None
        return (t.calendar, t.contract) if t else (ALWAYS, self.default_contract)

    def name(self, organisation_id: int | None) -> str | None:
        self._load()
        t = self._terms.get(organisation_id) if organisation_id is not None else None
        return t.name if t else None

    def inherit(self, reporter_user_id: int | None, asset_id: int | None, email: str | None) -> int | None:
        """A ticket's organisation: its reporter's, else its asset's, else the one of the reporter's email domain."""
        self._load()
        found = self._users.get(reporter_user_id) if reporter_user_id is not None else None
        if found is None and asset_id is not None:
            found = self._assets.get(asset_id)
        return found if found is not None else self.by_domain(email)

    def names(self) -> dict[int, str]:
        self._load()
        return {i: t.name for i, t in self._terms.items()}

    def by_domain(self, email: str | None) -> int | None:
        if not email or "@" not in email:
            return None
        self._load()
        domain = email.rsplit("@", 1)[1].lower()
        while domain:
            if domain in self._domains:
                return self._domains[domain]
            domain = domain.partition(".")[2]  # a sub-domain belongs to its parent's organisation
        return None
