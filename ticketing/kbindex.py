"""The full-text index of knowledge: published articles and resolved tickets, ranked by BM25 over stems.

Why not FTS5 and `to_tsvector`: the two rank differently (bm25() against ts_rank, Snowball in PostgreSQL
against no Italian or French stemmer at all in FTS5), so a suggestion would depend on the database. Here the
analysis is ours and the same everywhere: words are lower-cased, stop words dropped, stemmed with the
Snowball stemmer of the document's language (`snowballstemmer`: Italian, French, English) and folded to ASCII.
The postings live in the database (`kb_terms`: term, document, count; `kb_docs`: one row per document with
its length, language and assets), so every gateway sharing a database reads the same index, and a query
reads only the postings of its own terms (an index on `(kind, term, ref, tf)`), then ranks those candidates with BM25
in Python, boosted when a document applies to the ticket's asset or to its kind.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from sqlalchemy import BigInteger, Index, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, BigId

LANGUAGES = {"it": "italian", "fr": "french", "en": "english"}
ARTICLE, TICKET = "article", "ticket"
K1, B = 1.2, 0.75
ASSET_BOOST, KIND_BOOST = 1.6, 1.15  # a document about the very asset counts more than one about its kind
COMMON = 0.6  # a term in more than this share of the documents says little: not read
FLOOR = 0.2  # a document scoring under this share of the best one is noise beside it: not suggested

STOP = {
    "it": "a ad al alla alle allo ai agli anche ancora che chi ci come con da dal dalla dei del della delle dello di "
          "e ed gli ha hanno ho il in io la le lo loro ma mi mio mia ne nel nella non o per più piu poi quando "
          "questo questa se si sia sono su sul sulla ti tra un una uno vi è era buongiorno salve grazie cordiali saluti",
    "fr": "a au aux avec ce ces dans de des du elle en est et il ils je la le les leur lui ma mais me mes mon ne "
          "nous on ou par pas pour qu que qui sa se ses son sur ta te tu un une vous y été être bonjour merci "
          "cordialement madame monsieur",
    "en": "a an and are as at be but by for from has have i if in is it its me my no not of on or our so that the "
          "their them there this to was we were with you your hello hi thanks thank regards please",
}
STOPWORDS = {lang: set(words.split()) for lang, words in STOP.items()}
WORD = re.compile(r"[^\W_]+", re.UNICODE)


class KbDoc(Base):
    """A document of the index: an article (ref = its id) or a resolved ticket (ref = the ticket's id)."""

    __tablename__ = "kb_docs"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    ref: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    language: Mapped[str | None] = mapped_column(String(5))
    length: Mapped[int] = mapped_column(Integer, default=0)
    assets: Mapped[list] = mapped_column(default=list)  # asset ids it applies to
    kinds: Mapped[list] = mapped_column(default=list)  # asset kinds (hardware, software, module, archive)
    title: Mapped[str] = mapped_column(String(300), default="")


class KbTerm(Base):
    """A posting: how many times a stem occurs in one document."""

    __tablename__ = "kb_terms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))
    term: Mapped[str] = mapped_column(String(60))
    ref: Mapped[int] = mapped_column(BigInteger)
    tf: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        # A term's postings in document order, with their counts: read off the index alone (0011).
        Index("ix_kb_terms_postings", "kind", "term", "ref", "tf"),
        Index("ix_kb_terms_doc", "kind", "ref"),
    )


@lru_cache(maxsize=None)
def _stemmer(language: str):
    return snowballstemmer.stemmer(LANGUAGES[language])


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def analyse(text: str, language: str | None) -> list[str]:
    """The stems of `text` in `language` (it/fr/en); a text of no known language gets every language's stems,
    so that it still meets documents written in any of them."""
    languages = [language] if language in LANGUAGES else list(LANGUAGES)
    words = [w for w in WORD.findall((text or "").lower().replace("’", "'")) if len(w) > 1 and not w.isdigit()]
    stems: list[str] = []
    for lang in languages:
        stop = STOPWORDS[lang]
        kept = [w for w in words if w not in stop]
        stems += [_fold(s)[:60] for s in _stemmer(lang).stemWords(kept)]
    if len(languages) > 1:  # one occurrence per word, not one per language
        seen: dict[str, int] = {}
        for s in stems:
            seen[s] = 1
        return list(seen)
    return stems


def index(session: Session, kind: str, ref: int, text: str, language: str | None, *, title: str,
          assets: list[int] = (), kinds: list[str] = ()) -> None:
    """(Re)index one document in the session's transaction."""
    unindex(session, kind, ref)
    stems = analyse(text, language)
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    session.execute(insert(KbDoc), [{"kind": kind, "ref": ref, "language": language, "length": len(stems),
                                     "assets": list(assets), "kinds": list(kinds), "title": title[:300]}])
    if counts:
        session.execute(insert(KbTerm), [{"kind": kind, "term": t, "ref": ref, "tf": n} for t, n in counts.items()])


def unindex(session: Session, kind: str, ref: int) -> None:
    session.execute(delete(KbTerm).where(KbTerm.kind == kind, KbTerm.ref == ref))
    session.execute(delete(KbDoc).where(KbDoc.kind == kind, KbDoc.ref == ref))


@dataclass(frozen=True)
class Hit:
    kind: str
    ref: int
    title: str
    score: float


def rank(session: Session, text: str, language: str | None, kind: str, *, asset_id: int | None = None,
         asset_kind: str | None = None, limit: int = 3, exclude: int | None = None) -> list[Hit]:
    """The `limit` documents of `kind` nearest to `text`, best first (BM25 with the asset boosts)."""
    query = set(analyse(text, language))
    if not query:
        return []
    n, total = session.execute(select(func.count(), func.coalesce(func.sum(KbDoc.length), 0)).where(KbDoc.kind == kind)).one()
    if not n:
        return []
    avgdl = max(1.0, total / n)
    df = dict(session.execute(
        select(KbTerm.term, func.count()).where(KbTerm.kind == kind, KbTerm.term.in_(query)).group_by(KbTerm.term)
    ).all())
    terms = [t for t, d in df.items() if n < 20 or d <= COMMON * n]
    if not terms:
        return []
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
    rows = session.execute(
        select(KbTerm.ref, KbTerm.term, KbTerm.tf, KbDoc.length)
        .join(KbDoc, (KbDoc.kind == KbTerm.kind) & (KbDoc.ref == KbTerm.ref))
        .where(KbTerm.kind == kind, KbTerm.term.in_(terms))
    ).all()
    scores: dict[int, float] = {}
    for ref, term, tf, length in rows:
        if ref == exclude:
            continue
        s = idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))
        scores[ref] = scores.get(ref, 0.0) + s
    if not scores:
        return []
    best = sorted(scores, key=scores.get, reverse=True)[: max(limit * 10, 30)]
    docs = {d.ref: d for d in session.scalars(select(KbDoc).where(KbDoc.kind == kind, KbDoc.ref.in_(best)))}
    hits = []
    for ref in best:
        d = docs.get(ref)
        if d is None:
            continue
        boost = 1.0
        if asset_id is not None and asset_id in (d.assets or []):
            boost = ASSET_BOOST
        elif asset_kind and asset_kind in (d.kinds or []):
            boost = KIND_BOOST
        hits.append(Hit(kind, ref, d.title, round(scores[ref] * boost, 4)))
    hits.sort(key=lambda h: (-h.score, h.ref))
    return [h for h in hits[:limit] if h.score >= FLOOR * hits[0].score]
