"""The knowledge base: articles (symptom, solution or workaround) for assets and asset kinds, with versions.

An article is keyed by its slug (the Markdown file's name without `.md`), so importing the same directory again
changes nothing, and an edited file makes one new version. Every save writes a version row (`kb_versions`)
when the content changed; a published article is in the full-text index (`ticketing/kbindex.py`), a draft is
not. Import and export are Markdown files with a YAML front matter, so a desk can keep its knowledge in git:

    ---
    title: La stampante non stampa
    assets: [STAMP-2P]          # asset tags
    kinds: [hardware]           # asset kinds (optional)
    language: it                # it | fr | en
    status: published           # draft | published
    ---
    ## Symptom
    ...
    ## Solution
    ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from . import kbindex
from .models import Asset, Base, BigId, utcnow

LANGUAGES = ("it", "fr", "en")
STATUSES = ("draft", "published")
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,118}$")
# Section headings of the body, in the three languages (the first is what export writes).
SYMPTOM = ("symptom", "sintomo", "symptôme", "symptome", "problem", "problema", "problème")
SOLUTION = ("solution", "soluzione", "workaround", "rimedio", "contournement", "fix")


class KnowledgeError(ValueError):
    """An article that cannot be taken as it is; the message says why (and the file, on import)."""


class Article(Base):
    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    symptom: Mapped[str] = mapped_column(Text, default="")
    solution: Mapped[str] = mapped_column(Text, default="")
    asset_tags: Mapped[list] = mapped_column(default=list)
    asset_kinds: Mapped[list] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(5), default="it")
    status: Mapped[str] = mapped_column(String(10), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    source_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArticleVersion(Base):
    """One edit of an article, as it was after the edit (append-only)."""

    __tablename__ = "kb_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    symptom: Mapped[str] = mapped_column(Text, default="")
    solution: Mapped[str] = mapped_column(Text, default="")
    asset_tags: Mapped[list] = mapped_column(default=list)
    asset_kinds: Mapped[list] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(10))

    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_kb_versions_article_version"),)


CONTENT = ("title", "symptom", "solution", "asset_tags", "asset_kinds", "language", "status")


@dataclass(frozen=True)
class ArticleData:
    slug: str
    title: str
    symptom: str
    solution: str
    asset_tags: tuple[str, ...] = ()
    asset_kinds: tuple[str, ...] = ()
    language: str = "it"
    status: str = "draft"

    def check(self) -> None:
        if not SLUG.match(self.slug):
            raise KnowledgeError(f"slug {self.slug!r}: lower-case letters, digits, '-', '_' or '.'")
        if not self.title.strip():
            raise KnowledgeError("an article needs a title")
        if not (self.symptom.strip() or self.solution.strip()):
            raise KnowledgeError("an article needs a symptom or a solution")
        if self.language not in LANGUAGES:
            raise KnowledgeError(f"language {self.language!r}: one of {', '.join(LANGUAGES)}")
        if self.status not in STATUSES:
            raise KnowledgeError(f"status {self.status!r}: one of {', '.join(STATUSES)}")


def save(session: Session, data: ArticleData, actor: str, *, source_ticket_id: int | None = None) -> tuple[Article, bool]:
    """Create or update the article `data.slug` in the session's transaction; (article, changed).

    Unknown asset tags are an error (an article for an asset the inventory does not have would never be
    boosted). Unchanged content writes nothing: importing the same files again is a no-op."""
    data.check()
    known = dict(session.execute(select(Asset.tag, Asset.id).where(Asset.tag.in_(data.asset_tags))).all()) if data.asset_tags else {}
    missing = [t for t in data.asset_tags if t not in known]
    if missing:
        raise KnowledgeError(f"unknown asset tag(s): {', '.join(missing)}")
    values = dict(title=data.title.strip(), symptom=data.symptom.strip(), solution=data.solution.strip(),
                  asset_tags=list(data.asset_tags), asset_kinds=list(data.asset_kinds), language=data.language, status=data.status)
    article = session.scalar(select(Article).where(Article.slug == data.slug))
    now = utcnow()
    if article is None:
        article = Article(slug=data.slug, version=1, created_at=now, updated_at=now, source_ticket_id=source_ticket_id, **values)
        session.add(article)
        session.flush()
    elif all(getattr(article, k) == v for k, v in values.items()):
        return article, False
    else:
        for k, v in values.items():
            setattr(article, k, v)
        article.version += 1
        article.updated_at = now
    session.add(ArticleVersion(article_id=article.id, version=article.version, at=now, actor=actor[:100], **values))
    reindex(session, article, [known[t] for t in data.asset_tags])
    return article, True


def reindex(session: Session, article: Article, asset_ids: list[int] | None = None) -> None:
    if article.status != "published":
        kbindex.unindex(session, kbindex.ARTICLE, article.id)
        return
    if asset_ids is None:
        asset_ids = list(session.scalars(select(Asset.id).where(Asset.tag.in_(article.asset_tags or []))))
    kinds = set(article.asset_kinds or [])
    if article.asset_tags:
        kinds |= set(session.scalars(select(Asset.kind).where(Asset.tag.in_(article.asset_tags))))
    kbindex.index(session, kbindex.ARTICLE, article.id, f"{article.title}\n{article.title}\n{article.symptom}\n{article.solution}",
                  article.language, title=article.title, assets=asset_ids, kinds=sorted(kinds))


# -- Markdown files -----------------------------------------------------------------------------------------
FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.S)
HEADING = re.compile(r"^#{1,3}\s+(.+?)\s*$", re.M)


def parse_markdown(slug: str, text: str) -> ArticleData:
    m = FRONT.match(text.lstrip("\ufeff"))
    if not m:
        raise KnowledgeError("no front matter (a first line '---', the keys, then '---')")
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        raise KnowledgeError(f"front matter is not YAML: {e}") from None
    if not isinstance(meta, dict):
        raise KnowledgeError("front matter must be 'key: value' lines")
    symptom, solution = _sections(m.group(2))

    def listed(key: str) -> tuple[str, ...]:
        v = meta.get(key) or []
        if isinstance(v, str):
            v = [p for p in re.split(r"[,\s]+", v) if p]
        return tuple(str(x).strip() for x in v)

    return ArticleData(
        slug=slug, title=str(meta.get("title") or "").strip(), symptom=symptom, solution=solution,
        asset_tags=listed("assets"), asset_kinds=listed("kinds"),
        language=str(meta.get("language") or "it").strip().lower(), status=str(meta.get("status") or "draft").strip().lower(),
    )


def _sections(body: str) -> tuple[str, str]:
    """The symptom and the solution: the text under headings naming them; a body without headings is all solution."""
    parts = HEADING.split(body)
    if len(parts) == 1:
        return "", body.strip()
    symptom, solution, other = [], [], [parts[0]]
    for heading, text in zip(parts[1::2], parts[2::2]):
        h = heading.strip().lower().rstrip(":")
        (symptom if h in SYMPTOM else solution if h in SOLUTION else other).append(text.strip())
    if not solution and not symptom:
        return "", body.strip()
    return "\n\n".join(s for s in symptom if s), "\n\n".join(s for s in solution + other if s.strip())


def to_markdown(a: Article) -> str:
    meta = {"title": a.title, "assets": list(a.asset_tags or []), "kinds": list(a.asset_kinds or []), "language": a.language, "status": a.status}
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, default_flow_style=None).strip()
    return f"---\n{front}\n---\n## Symptom\n\n{a.symptom}\n\n## Solution\n\n{a.solution}\n"


@dataclass(frozen=True)
class ImportReport:
    created: int
    updated: int
    unchanged: int
    errors: tuple[str, ...]


def import_dir(sessions: sessionmaker[Session], directory: Path, actor: str = "cli") -> ImportReport:
    """Every `*.md` of `directory`, one transaction per file: a bad file is named and skipped, the rest land."""
    files = sorted(Path(directory).glob("*.md"))
    if not Path(directory).is_dir():
        raise KnowledgeError(f"{directory}: not a directory")
    created = updated = unchanged = 0
    errors: list[str] = []
    for path in files:
        try:
            data = parse_markdown(path.stem.lower(), path.read_text(encoding="utf-8"))
            with sessions() as s, s.begin():
                existed = s.scalar(select(Article.id).where(Article.slug == data.slug)) is not None
                _, changed = save(s, data, actor)
        except (KnowledgeError, UnicodeDecodeError, OSError) as e:
            errors.append(f"{path.name}: {e}")
            continue
        if not changed:
            unchanged += 1
        elif existed:
            updated += 1
        else:
            created += 1
    return ImportReport(created, updated, unchanged, tuple(errors))


def export_dir(sessions: sessionmaker[Session], directory: Path) -> int:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with sessions() as s:
        articles = list(s.scalars(select(Article).order_by(Article.slug)))
        for a in articles:
            tmp = directory / f".{a.slug}.md.tmp"
            tmp.write_text(to_markdown(a), encoding="utf-8")
            tmp.replace(directory / f"{a.slug}.md")
    return len(articles)
