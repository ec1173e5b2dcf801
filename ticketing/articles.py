"""Articles as the desk writes them (issue 13 §1): list, view with versions, create, edit, publish, and a draft
pre-filled from a resolved ticket ("turn this resolution into an article").

The storage and versioning are `ticketing/knowledge.py`'s (`save`: one version row per change, the index kept
for published articles only); this is the operators' side of it, read and changed through one port by the web
desk and the API. Who may do what (`may_publish`): every operator writes and edits drafts; publishing,
unpublishing and editing a published article (what the suggestions already send to users) are for supervisors
and administrators, or a service token with the `admin` scope. An edit names the version it was made from: a
save over a version someone else changed meanwhile is refused, not merged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .knowledge import LANGUAGES, STATUSES, Article, ArticleData, ArticleVersion, KnowledgeError, save
from .models import Asset, Event, Ticket
from .numbering import format_number, parse_number

PUBLISHERS = ("supervisor", "admin", "service-admin")
CLOSED = ("resolved", "closed")


class ArticleNotFound(LookupError):
    pass


class ArticleConflict(KnowledgeError):
    """The article changed since the version the edit was made from."""


class ArticleForbidden(KnowledgeError):
    """The actor's role may not do this (publish, unpublish, edit a published article)."""


def may_publish(role: str | None) -> bool:
    return role in PUBLISHERS


@dataclass(frozen=True)
class ArticleSummary:
    id: int
    slug: str
    title: str
    language: str
    status: str
    version: int
    asset_tags: tuple[str, ...]
    asset_kinds: tuple[str, ...]
    updated_at: datetime


@dataclass(frozen=True)
class VersionView:
    version: int
    at: datetime
    actor: str
    title: str
    status: str


@dataclass(frozen=True)
class ArticleView(ArticleSummary):
    symptom: str
    solution: str
    created_at: datetime
    source_ticket: str | None  # the ticket number it was written from
    versions: tuple[VersionView, ...]  # newest first


@dataclass(frozen=True)
class ArticlePage:
    items: tuple[ArticleSummary, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class Draft:
    """What the editor opens with: a new article's fields (from a resolved ticket, or empty)."""

    title: str = ""
    symptom: str = ""
    solution: str = ""
    asset_tags: tuple[str, ...] = ()
    asset_kinds: tuple[str, ...] = ()
    language: str = "it"
    status: str = "draft"
    source_ticket: str | None = None


def slugify(title: str) -> str:
    folded = "".join(c for c in unicodedata.normalize("NFKD", title.lower()) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:80].strip("-") or "article"


def _first_line(text: str, limit: int = 120) -> str:
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    if len(line) <= limit:
        return line
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]).rstrip(" ,.;:") + "…"


class Articles:
    def __init__(self, sessions: sessionmaker[Session], prefix: str = "HD"):
        self.sessions, self.prefix = sessions, prefix

    # -- reads ------------------------------------------------------------------------------------------------
    def list(self, *, language: str | None = None, status: str | None = None, asset: str | None = None, q: str | None = None,
             page: int = 1, per_page: int = 50) -> ArticlePage:
        """Newest edit first; `asset` is an asset's tag or an asset kind the article names."""
        page, per_page = max(1, page), max(1, min(200, per_page))
        where = []
        if language:
            where.append(Article.language == language)
        if status:
            where.append(Article.status == status)
        if asset:
            def quoted(v: str) -> str:  # the JSON list's text holds each tag in double quotes
                return '%"' + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
            where.append(or_(cast(Article.asset_tags, String).like(quoted(asset.strip().upper()), escape="\\"),
                             cast(Article.asset_kinds, String).like(quoted(asset.strip().lower()), escape="\\")))
        if q:
            where.append(func.lower(Article.title).contains(q.strip().lower(), autoescape=True))
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Article).where(*where))
            rows = s.scalars(select(Article).where(*where).order_by(Article.updated_at.desc(), Article.id.desc())
                             .offset((page - 1) * per_page).limit(per_page))
            return ArticlePage(tuple(self._summary(a) for a in rows), page, per_page, total)

    def get(self, article_id: int) -> ArticleView:
        with self.sessions() as s:
            a = s.get(Article, article_id)
            if a is None:
                raise ArticleNotFound(article_id)
            versions = s.scalars(select(ArticleVersion).where(ArticleVersion.article_id == a.id).order_by(ArticleVersion.version.desc()))
            source = s.get(Ticket, a.source_ticket_id) if a.source_ticket_id else None
            return ArticleView(
                **vars(self._summary(a)), symptom=a.symptom, solution=a.solution, created_at=a.created_at,
                source_ticket=format_number(self.prefix, source.created_at, source.id) if source is not None else None,
                versions=tuple(VersionView(v.version, v.at, v.actor, v.title, v.status) for v in versions),
            )

    @staticmethod
    def _summary(a: Article) -> ArticleSummary:
        return ArticleSummary(a.id, a.slug, a.title, a.language, a.status, a.version, tuple(a.asset_tags or ()),
                              tuple(a.asset_kinds or ()), a.updated_at)

    # -- changes ----------------------------------------------------------------------------------------------
    def create(self, draft: Draft, actor: str, role: str | None) -> ArticleView:
        """A new article (its first version); published at once only by someone who may publish."""
        if draft.status == "published" and not may_publish(role):
            raise ArticleForbidden("only a supervisor or an administrator publishes an article: save it as a draft")
        for attempt in range(3):  # two operators saving the same title at once: the loser takes the next slug
            try:
                with self.sessions() as s, s.begin():
                    source_id = self._ticket_id(s, draft.source_ticket) if draft.source_ticket else None
                    base = slugify(draft.title)
                    taken = set(s.scalars(select(Article.slug).where(Article.slug.like(f"{base}%"))))
                    slug = base if base not in taken else next(f"{base}-{n}" for n in range(2, 10_000) if f"{base}-{n}" not in taken)
                    article, _ = save(s, self._data(slug, draft), actor, source_ticket_id=source_id)
                    article_id = article.id
                return self.get(article_id)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def update(self, article_id: int, draft: Draft, actor: str, role: str | None, *, version: int | None = None) -> tuple[ArticleView, bool]:
        """Save an edit as the article's next version (nothing when nothing changed); (article, changed)."""
        with self.sessions() as s, s.begin():
            a = s.get(Article, article_id, with_for_update=True)
            if a is None:
                raise ArticleNotFound(article_id)
            if version is not None and version != a.version:
                raise ArticleConflict(f"the article is at version {a.version} since you opened version {version}: reload it and edit again")
            if not may_publish(role) and (a.status == "published" or draft.status != a.status):
                raise ArticleForbidden("only a supervisor or an administrator edits a published article, publishes or unpublishes one")
            _, changed = save(s, self._data(a.slug, draft), actor)
        return self.get(article_id), changed

    def set_status(self, article_id: int, status: str, actor: str, role: str | None) -> ArticleView:
        """Publish or unpublish (a version of its own)."""
        if status not in STATUSES:
            raise KnowledgeError(f"status {status!r}: one of {', '.join(STATUSES)}")
        current = self.get(article_id)
        draft = Draft(current.title, current.symptom, current.solution, current.asset_tags, current.asset_kinds, current.language, status)
        if not may_publish(role):
            raise ArticleForbidden("only a supervisor or an administrator publishes or unpublishes an article")
        return self.update(article_id, draft, actor, role, version=current.version)[0]

    @staticmethod
    def _data(slug: str, d: Draft) -> ArticleData:
        return ArticleData(slug, d.title, d.symptom, d.solution, tuple(d.asset_tags), tuple(d.asset_kinds), d.language, d.status)

    def _ticket_id(self, s: Session, number: str) -> int:
        parsed = parse_number(number[:40], self.prefix)
        t = s.get(Ticket, parsed[1]) if parsed else None
        if t is None or t.created_at.year != parsed[0]:
            raise KnowledgeError(f"no ticket {number[:40]}")
        return t.id

    # -- from a resolved ticket -------------------------------------------------------------------------------
    def draft_from_ticket(self, number: str, default_language: str = "it") -> Draft:
        """A draft from a resolved ticket: its anomaly as the title and symptom (the first message when it has
        none), its last resolution report as the solution, its asset and the asset's kind as tags, its language."""
        with self.sessions() as s:
            parsed = parse_number(number[:40], self.prefix)
            t = s.get(Ticket, parsed[1], options=[selectinload(Ticket.fields), selectinload(Ticket.messages)]) if parsed else None
            if t is None or t.created_at.year != parsed[0]:
                raise KnowledgeError(f"no ticket {number[:40]}")
            if t.status not in CLOSED:
                raise KnowledgeError(f"{number}: only a resolved ticket has a resolution to turn into an article")
            inbound = [m.text for m in t.messages if m.direction == "in" and (m.text or "").strip()]
            symptom = (t.value("anomaly") or (inbound[0] if inbound else "")).strip()[:4000]
            report = s.scalar(select(Event.data).where(Event.ticket_id == t.id, Event.kind == "resolved").order_by(Event.id.desc()).limit(1))
            asset = s.get(Asset, t.asset_id) if t.asset_id else None
            return Draft(
                title=_first_line(symptom) or number, symptom=symptom, solution=str((report or {}).get("report") or "").strip(),
                asset_tags=(asset.tag,) if asset else (), asset_kinds=(asset.kind,) if asset else (),
                language=t.language if t.language in LANGUAGES else default_language, status="draft",
                source_ticket=format_number(self.prefix, t.created_at, t.id),
            )
