"""An in-memory snapshot of the user directory and the asset inventory, indexed for the extraction steps.

Extraction runs for every contact; looking people and assets up in the database each time would cost more
than the rest of intake. The snapshot is built once (from the database, or from plain lists in tests) and
replaced when an import changes the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from .contact import normalise_phone
from .text import fold


@dataclass(frozen=True, slots=True)
class DirUser:
    id: int | None
    name: str
    email: str | None = None
    phones: tuple[str, ...] = ()
    department: str | None = None


@dataclass(frozen=True, slots=True)
class DirAsset:
    id: int | None
    tag: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    hostname: str | None = None
    serial: str | None = None
    criticality: str = "medium"


@dataclass(frozen=True, slots=True)
class AssetMatch:
    asset: DirAsset
    confidence: float
    how: str  # "identifier" | "alias" | "fuzzy"
    matched: str


# Function words dropped before matching names and aliases, so "la stampante del secondo piano" meets
# "stampante secondo piano" and "il pc della ragioneria" meets "pc ragioneria".
_STOPWORDS = frozenset(
    "il lo la i gli le l un uno una del dello della dei degli delle dell di da dal dalla nel nella al alla all "
    "per su sul sulla con in a e o mio mia nostro nostra the a an of my our on in at for to".split()
)
_TOKEN = re.compile(r"[\w]+")


def content_words(text: str) -> str:
    """Folded text without function words: the form names and aliases are compared in."""
    return " ".join(w for w in _TOKEN.findall(fold(text)) if w not in _STOPWORDS)


def _ident_pattern(ident: str) -> str:
    # "PC-0142" also matches "pc 0142", "pc0142", "PC_0142"
    parts = [re.escape(p) for p in re.split(r"[-_\s]+", fold(ident)) if p]
    return r"[-_\s]?".join(parts)


@dataclass
class Directory:
    users: list[DirUser] = field(default_factory=list)
    assets: list[DirAsset] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_email = {u.email.lower(): u for u in self.users if u.email}
        self._by_phone: dict[str, DirUser] = {}
        for u in self.users:
            for p in u.phones:
                n = normalise_phone(p)
                if n:
                    self._by_phone.setdefault(n, u)
        self._names = [fold(u.name) for u in self.users]
        # Identifiers (tag, hostname, serial) and aliases, as one regex each, longest first so that the most
        # specific phrase wins ("stampante tributi" before "stampante").
        idents: dict[str, DirAsset] = {}
        aliases: dict[str, DirAsset] = {}
        for a in self.assets:
            for ident in (a.tag, a.hostname, a.serial):
                if ident:
                    idents[fold(ident)] = a
            for alias in (a.name, *a.aliases):
                key = content_words(alias)
                if key:
                    aliases.setdefault(key, a)
        self._idents = idents
        self._aliases = aliases
        self._alias_list = list(aliases)
        self._ident_re = self._alternation({_ident_pattern(k): k for k in idents})
        self._alias_re = self._alternation({re.escape(k): k for k in aliases})
        self._ident_lookup = {re.sub(r"[-_\s]", "", k): v for k, v in idents.items()}

    @staticmethod
    def _alternation(patterns: dict[str, str]) -> re.Pattern | None:
        if not patterns:
            return None
        ordered = sorted(patterns, key=len, reverse=True)
        return re.compile(r"(?<![\w])(?:" + "|".join(ordered) + r")(?![\w])")

    # -- people ---------------------------------------------------------------------------------------------
    def user_by_email(self, email: str | None) -> DirUser | None:
        return self._by_email.get(email.lower()) if email else None

    def user_by_phone(self, phone: str | None) -> DirUser | None:
        n = normalise_phone(phone)
        return self._by_phone.get(n) if n else None

    def user_by_name(self, name: str, cutoff: float = 86) -> tuple[DirUser, float] | None:
        """The directory entry whose name best matches `name` (word order ignored), with a 0–1 score."""
        if not self._names or not name.strip():
            return None
        hit = process.extractOne(fold(name), self._names, scorer=fuzz.token_sort_ratio, score_cutoff=cutoff)
        if hit is None:
            return None
        return self.users[hit[2]], hit[1] / 100

    # -- assets ---------------------------------------------------------------------------------------------
    def match_asset(self, text: str, *, fuzzy: bool = True) -> AssetMatch | None:
        """The asset `text` speaks of: an identifier (tag, hostname, serial) first, then a name or alias, then
        a near miss of one (typos, speech-to-text spellings). Several different assets lower the confidence."""
        folded = fold(text)
        if self._ident_re is not None:
            m = self._ident_re.search(folded)
            if m:
                asset = self._ident_lookup.get(re.sub(r"[-_\s]", "", m.group(0)))
                if asset is not None:
                    return AssetMatch(asset, 0.98, "identifier", m.group(0))
        words = content_words(text)
        if self._alias_re is not None:
            found = [(m.group(0), self._aliases[m.group(0)]) for m in self._alias_re.finditer(words)]
            if found:
                best_alias, best = max(found, key=lambda f: len(f[0]))
                distinct = {a.tag for _, a in found}
                return AssetMatch(best, 0.9 if len(distinct) == 1 else 0.7, "alias", best_alias)
        if fuzzy and self._alias_list:
            return self._fuzzy(words)
        return None

    def _fuzzy(self, text: str) -> AssetMatch | None:
        words = text.split()[:400]
        grams = {" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
        grams = [g for g in grams if len(g) >= 4]
        if not grams:
            return None
        best: tuple[float, str] | None = None
        for alias in self._alias_list:
            if len(alias) < 4:
                continue
            hit = process.extractOne(alias, grams, scorer=fuzz.ratio, score_cutoff=85)
            if hit and (best is None or hit[1] > best[0]):
                best = (hit[1], alias)
        if best is None:
            return None
        return AssetMatch(self._aliases[best[1]], round(0.8 * best[0] / 100, 2), "fuzzy", best[1])


def load_directory(session) -> Directory:
    """Read the directory and inventory from the database."""
    from sqlalchemy import select

    from .models import Asset, User

    users = [
        DirUser(u.id, u.name, u.email, tuple(u.phones or ()), u.department) for u in session.scalars(select(User))
    ]
    assets = [
        DirAsset(a.id, a.tag, a.name, a.kind, tuple(a.aliases or ()), a.hostname, a.serial, a.criticality)
        for a in session.scalars(select(Asset))
    ]
    return Directory(users, assets)
