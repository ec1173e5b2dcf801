"""Support groups: the level II and III teams, inside the organisation or outside it (vendors).

`config/groups.csv` (and `helpdesk-gateway groups import FILE`): name, kind (`internal` | `external`), level
(2 | 3), email, webhook_url, organisation (optional: a group that serves one client body only), members
(optional, `|`-separated operator usernames). Importing is an upsert by name.

Routing: an asset names its competent groups per level (`support_groups` column, `II:Sistemi|III:Fornitore
ERP`), kept by name so the order of the imports does not matter. Escalating to a level assigns the ticket to
the asset's group for that level, else to the configured default group of that level (`route`).

An external group is told of a ticket assigned to it by email through the durable outbox (and by its signed
webhook when it has one), in the same transaction as the escalation; its answer threads back on the `[HD-…]`
reference and reaches the ticket as a message: only an operator resolves the ticket.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from .csvfiles import ImportReport, RowError
from .csvfiles import rows as _rows
from .csvfiles import split as _split
from .models import Asset, Base, BigId
from .organisations import organisation_id

KINDS = ("internal", "external")
LEVEL_WORDS = {"2": 2, "ii": 2, "3": 3, "iii": 3}


class SupportGroup(Base):
    __tablename__ = "support_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="internal")
    level: Mapped[int] = mapped_column(Integer, default=2)
    email: Mapped[str | None] = mapped_column(String(320))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("support_groups.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


def parse_group(row: dict[str, str]) -> dict:
    name = row.get("name", "").strip()
    if not name:
        raise RowError("missing name")
    kind = (row.get("kind") or "internal").lower()
    if kind not in KINDS:
        raise RowError(f"kind {kind!r} is not internal or external")
    level = LEVEL_WORDS.get((row.get("level") or "").strip().lower())
    if level is None:
        raise RowError(f"level {row.get('level')!r} is not 2 or 3 (II or III)")
    email = (row.get("email") or "").strip().lower() or None
    if email and ("@" not in email or " " in email):
        raise RowError(f"email {email!r} is not an address")
    url = (row.get("webhook_url") or "").strip() or None
    if url and not url.startswith(("http://", "https://")):
        raise RowError(f"webhook_url {url!r} is not an http(s) URL")
    if kind == "external" and not (email or url):
        raise RowError("an external group needs an email or a webhook_url to be told of its tickets")
    return {
        "name": name[:100], "kind": kind, "level": level, "email": email, "webhook_url": url,
        "organisation": (row.get("organisation") or "").strip() or None,
        "members": [m.lower() for m in _split(row.get("members", ""))],
    }


def import_groups(sessions: sessionmaker[Session], path: Path, progress=None) -> ImportReport:
    report = ImportReport()
    created: list[str] = []
    with sessions() as s, s.begin():
        seen: set[str] = set()
        for line, row in _rows(Path(path)):
            try:
                values = parse_group(row)
            except RowError as e:
                report.errors.append((line, str(e)))
                continue
            if values["name"].lower() in seen:
                report.errors.append((line, f"{values['name']!r} appears twice in the file; this row was skipped"))
                continue
            seen.add(values["name"].lower())
            members = values.pop("members")
            values["organisation_id"] = organisation_id(s, values.pop("organisation"), created)
            group = s.scalar(select(SupportGroup).where(func.lower(SupportGroup.name) == values["name"].lower()))
            if group is None:
                group = SupportGroup(**values)
                s.add(group)
                s.flush()
            else:
                for k, v in values.items():
                    setattr(group, k, v)
            for username in members:
                if s.get(GroupMember, (group.id, username)) is None:
                    s.add(GroupMember(group_id=group.id, username=username))
            report.imported += 1
            if progress:
                progress(1)
    report.notes = [f"organisation {n!r} was not known: created with the default terms" for n in created]
    return report


def parse_support_groups(text: str) -> dict[str, str]:
    """`II:Sistemi|III:Fornitore ERP` -> {"2": "Sistemi", "3": "Fornitore ERP"} (JSON keys are strings)."""
    out: dict[str, str] = {}
    for part in _split(text or ""):
        level, sep, name = part.partition(":")
        lv = LEVEL_WORDS.get(level.strip().lower())
        if not sep or lv is None or not name.strip():
            raise RowError(f"support group {part!r}: expected LEVEL:NAME with level II or III, e.g. II:Sistemi")
        out[str(lv)] = name.strip()[:100]
    return out


def route(s: Session, asset_id: int | None, level: int, defaults: dict[int, str]) -> SupportGroup | None:
    """The group a ticket goes to at `level`: its asset's competent group, else the default group of the level."""
    name = None
    if asset_id is not None:
        wanted = s.scalar(select(Asset.support_groups).where(Asset.id == asset_id)) or {}
        name = wanted.get(str(level))
    for candidate in (name, defaults.get(level)):
        if candidate:
            group = s.scalar(select(SupportGroup).where(func.lower(SupportGroup.name) == candidate.lower()))
            if group is not None:
                return group
    return None


def groups_of(s: Session, username: str) -> list[int]:
    return list(s.scalars(select(GroupMember.group_id).where(GroupMember.username == username)))


def set_member(sessions: sessionmaker[Session], group: str, username: str, member: bool = True) -> None:
    with sessions() as s, s.begin():
        g = s.scalar(select(SupportGroup).where(func.lower(SupportGroup.name) == group.strip().lower()))
        if g is None:
            raise RowError(f"no group {group!r}")
        row = s.get(GroupMember, (g.id, username.strip().lower()))
        if member and row is None:
            s.add(GroupMember(group_id=g.id, username=username.strip().lower()))
        elif not member and row is not None:
            s.delete(row)
