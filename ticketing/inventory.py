"""CSV import of the asset inventory and the user directory.

A row that cannot be read is reported with its line number and the rest is still imported. Rows are
upserts: an asset by its tag, a user by email (by name when the row has no email), so importing the same
file again changes nothing and an updated export replaces what it updates.

Assets: tag, name, kind (hardware | software | module | archive), aliases (`|`-separated), hostname, serial,
location, criticality (low | medium | high | critical), organisation (the client body it belongs to),
support_groups (its competent groups per level, `II:Sistemi|III:Fornitore ERP`, see `ticketing.groups`).
Users: name, email, phones (`|`-separated), department, organisation. An organisation not known yet is
created with the default terms (see `ticketing.organisations`) and the report says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .contact import normalise_phone
from .csvfiles import ImportReport, RowError  # noqa: F401 - ImportReport: the importers' answer, re-exported
from .csvfiles import rows as _rows
from .csvfiles import split as _split
from .models import Asset, User

ASSET_KINDS = {"hardware", "software", "module", "archive"}
KIND_ALIASES = {"data archive": "archive", "archivio": "archive", "modulo": "module", "procedure": "software", "program": "software"}
CRITICALITIES = {"low", "medium", "high", "critical"}
BATCH = 500


def parse_asset(row: dict[str, str]) -> dict:
    tag, name = row.get("tag", ""), row.get("name", "")
    if not tag:
        raise RowError("missing tag")
    if not name:
        raise RowError("missing name")
    kind = row.get("kind", "").lower()
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in ASSET_KINDS:
        raise RowError(f"kind {row.get('kind')!r} is not one of {', '.join(sorted(ASSET_KINDS))}")
    criticality = (row.get("criticality") or "medium").lower()
    if criticality not in CRITICALITIES:
        raise RowError(f"criticality {criticality!r} is not one of {', '.join(sorted(CRITICALITIES))}")
    return {
        "tag": tag[:64],
        "name": name[:200],
        "kind": kind,
        "aliases": _split(row.get("aliases", "")),
        "hostname": row.get("hostname") or None,
        "serial": row.get("serial") or None,
        "location": row.get("location") or None,
        "criticality": criticality,
        "organisation": row.get("organisation") or None,
        "support_groups": _support_groups(row.get("support_groups", "")),
    }


def _support_groups(text: str) -> dict[str, str]:
    from .groups import parse_support_groups

    return parse_support_groups(text)


def parse_user(row: dict[str, str]) -> dict:
    name = row.get("name", "")
    if not name:
        raise RowError("missing name")
    email = (row.get("email") or "").lower() or None
    if email and ("@" not in email or " " in email):
        raise RowError(f"email {email!r} is not an address")
    phones = []
    for p in _split(row.get("phones", "") or row.get("phone", "")):
        n = normalise_phone(p)
        if not n or len(n) < 6:
            raise RowError(f"phone {p!r} is not a phone number")
        phones.append(p)
    return {
        "name": name[:200], "email": email, "phones": phones, "department": row.get("department") or None,
        "organisation": row.get("organisation") or None,
    }


def import_assets(sessions: sessionmaker[Session], path: Path, progress: Callable[[int], None] | None = None) -> ImportReport:
    return _import(sessions, path, parse_asset, Asset, lambda r: Asset.tag == r["tag"], progress)


def import_users(sessions: sessionmaker[Session], path: Path, progress: Callable[[int], None] | None = None) -> ImportReport:
    def key(r):
        return User.email == r["email"] if r["email"] else (User.name == r["name"]) & User.email.is_(None)

    return _import(sessions, path, parse_user, User, key, progress)


def _import(sessions, path, parse, model, key, progress) -> ImportReport:
    report = ImportReport()
    batch: list[dict] = []

    def flush():
        from .organisations import organisation_id

        created: list[str] = []
        with sessions() as s, s.begin():
            for values in batch:
                if "organisation" in values:
                    values = dict(values)
                    values["organisation_id"] = organisation_id(s, values.pop("organisation"), created)
                existing = s.scalar(select(model).where(key(values)))
                if existing is None:
                    s.add(model(**values))
                else:
                    for k, v in values.items():
                        setattr(existing, k, v)
        report.imported += len(batch)
        report.notes += [f"organisation {n!r} was not known: created with the default terms" for n in created]
        if progress:
            progress(len(batch))
        batch.clear()

    seen: set[str] = set()
    for line, row in _rows(Path(path)):
        try:
            values = parse(row)
        except RowError as e:
            report.errors.append((line, str(e)))
            continue
        ident = values.get("tag") or values.get("email") or values["name"]
        if ident in seen:
            report.errors.append((line, f"{ident!r} appears twice in the file; this row was skipped"))
            continue
        seen.add(ident)
        batch.append(values)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return report


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)
