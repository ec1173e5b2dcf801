"""The ticket page's cards: who reported it, the asset it names, and the words of the contact that matched it.

A mixin of `ticketing.desk.Desk` (needs `sessions`, `prefix`, `_load`, `number`, `organisation_name`), read
beside `Queries.ticket` so the ticket's own record stays as the API serves it. The reporter is the directory
entry the intake linked (else the ticket's reporter fields); the asset is the inventory entry. Other open
tickets of the same reporter or on the same asset (a possible outage) are listed, newest first.

How the asset was matched is shown as the contact's words that name it: the words of the asset's tag, name,
aliases and location found in the text the match read (the transcript of the asset answer for a call, the
subject and message otherwise); a word of six letters or more also without its last two ("cartografie" for
"cartografia", "stampanti" for "stampante", but not "stampa", a verb, for "stampante").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from .lifecycle import OPEN_STATUSES
from .models import Asset, Message, Ticket, User

OTHERS_SHOWN = 10
EXCERPT_CHARS = 320
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # an elision is two words: "dell'ufficio" names an "ufficio"
_SHORT_OK = 3  # words shorter than this (articles, "di", "le") never count as a match


@dataclass(frozen=True)
class OtherTicket:
    number: str
    status: str
    summary: str | None


@dataclass(frozen=True)
class ReporterCard:
    name: str | None
    organisation: str | None
    department: str | None
    phone: str | None
    email: str | None
    identified_by: str | None  # the reporter_name field's source: directory, header, caller id, said on the phone
    in_directory: bool
    other_open: tuple[OtherTicket, ...]


@dataclass(frozen=True)
class AssetCard:
    tag: str
    name: str
    kind: str
    location: str | None
    hostname: str | None
    serial: str | None
    criticality: str
    competent_group: str | None
    open_tickets: tuple[OtherTicket, ...]
    matched_by: str | None  # the asset field's source
    excerpt: tuple[tuple[str, bool], ...]  # the contact's words, (text, matched) pieces


@dataclass(frozen=True)
class TicketCards:
    reporter: ReporterCard | None
    asset: AssetCard | None


def _stem(word: str) -> str:
    return word[:-2] if len(word) >= 6 else word  # an inflected ending off, never a shorter word's whole


def asset_terms(asset) -> set[str]:
    """The stems of the words that name an asset (tag, name, aliases, location, hostname)."""
    texts = [asset.tag, asset.name, asset.location or "", asset.hostname or "", *(asset.aliases or [])]
    return {_stem(w.lower()) for t in texts for w in _WORD.findall(str(t)) if len(w) >= _SHORT_OK}


def highlight(text: str, terms: set[str]) -> tuple[tuple[str, bool], ...]:
    """`text` cut into (piece, matched) around the words whose stem is one of `terms`; an excerpt around the
    first match when the text is long."""
    text = text or ""
    hits = [m for m in _WORD.finditer(text) if len(m.group()) >= _SHORT_OK and _stem(m.group().lower()) in terms]
    if not hits:
        return ()
    start = max(0, hits[0].start() - EXCERPT_CHARS // 3)
    end = min(len(text), start + EXCERPT_CHARS)
    pieces, at = [], start
    if start > 0:
        pieces.append(("…", False))
    for m in hits:
        if m.start() < at or m.end() > end:
            continue
        pieces += [(text[at:m.start()], False), (m.group(), True)]
        at = m.end()
    pieces.append((text[at:end], False))
    if end < len(text):
        pieces.append(("…", False))
    return tuple(p for p in pieces if p[0])


class Cards:
    """Mixin of `ticketing.desk.Desk`."""

    def ticket_cards(self, number: str) -> TicketCards:
        with self.sessions() as s:
            t = self._load(s, number)  # fields only: the history and messages are the ticket view's
            fields = {f.name: f for f in t.fields}

            def value(name: str) -> str | None:
                f = fields.get(name)
                return f.value if f else None

            def others(where) -> tuple[OtherTicket, ...]:
                rows = s.scalars(
                    select(Ticket).where(where, Ticket.id != t.id, Ticket.status.in_(tuple(OPEN_STATUSES)))
                    .order_by(Ticket.id.desc()).limit(OTHERS_SHOWN)
                )
                return tuple(OtherTicket(self.number(o), o.status, next((f.value for f in o.fields if f.name == "anomaly"), None)) for o in rows)

            user = s.get(User, t.reporter_user_id) if t.reporter_user_id else None
            name_field = fields.get("reporter_name")
            reporter = ReporterCard(
                name=user.name if user else value("reporter_name"),
                organisation=self.organisation_name(user.organisation_id if user and user.organisation_id else t.organisation_id),
                department=user.department if user else None,
                phone=value("reporter_phone") or (user.phones[0] if user and user.phones else None),
                email=value("reporter_email") or (user.email if user else None),
                identified_by=name_field.source if name_field else None,
                in_directory=user is not None,
                other_open=others(Ticket.reporter_user_id == user.id) if user else (),
            )
            asset = None
            a = s.get(Asset, t.asset_id) if t.asset_id else None
            if a is not None:
                asset_field = fields.get("asset")
                spoken = value("transcript_asset")
                if spoken:
                    said = spoken
                else:
                    first = s.execute(
                        select(Message.subject, Message.text).where(Message.ticket_id == t.id, Message.direction == "in").order_by(Message.id).limit(1)
                    ).first()
                    said = "\n".join(x for x in ((first.subject if first else None), (first.text if first else None)) if x)
                groups = a.support_groups or {}
                asset = AssetCard(
                    a.tag, a.name, a.kind, a.location, a.hostname, a.serial, a.criticality,
                    groups.get(str(t.level)) or next(iter(groups.values()), None),
                    others(Ticket.asset_id == a.id),
                    asset_field.source if asset_field else None,
                    highlight(said, asset_terms(a)),
                )
            return TicketCards(reporter, asset)
