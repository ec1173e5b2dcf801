"""An in-memory snapshot of the user directory and the asset inventory, indexed for the extraction steps.

Extraction runs for every contact; looking people and assets up in the database each time would cost more
than the rest of intake. The snapshot is built once (from the database, or from plain lists in tests) and
replaced when an import changes the data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from .contact import normalise_phone
from .people import MATCH, People, PersonMatch
from .text import fold
from .vocabulary import KINDS, Vocabulary, canonical, is_acronym, spoken_numbers


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
    location: str | None = None  # where it is ("Palazzo B piano terra sportello 1"): callers describe it so


@dataclass(frozen=True, slots=True)
class AssetMatch:
    asset: DirAsset
    confidence: float
    how: str  # "identifier" | "alias" | "place" | "number" | "heard" (words put back) | "kind" | "stem" | "fuzzy"
    matched: str


# Function words dropped before matching names and aliases, so "la stampante del secondo piano" meets
# "stampante secondo piano" and "il pc della ragioneria" meets "pc ragioneria".
_STOPWORDS = frozenset(
    "il lo la i gli le l un uno una del dello della dei degli delle dell di da dal dalla nel nella al alla all "
    "per su sul sulla con in a e o mio mia nostro nostra quello quella numero n nr "
    "le la les l du de des d au aux une en dans sur pour avec et ou mon ma mes notre nos votre vos numero "
    "the a an of my our on in at for to number no".split()
)
_TOKEN = re.compile(r"[\w]+")


def content_words(text: str) -> str:
    """Folded text without function words: the form names and aliases are compared in."""
    return " ".join(w for w in _TOKEN.findall(fold(text)) if w not in _STOPWORDS)


def asset_words(text: str) -> str:
    """The words an asset is matched in, the same for the inventory and for what people say: folded, number
    words as digits (ordinals after their noun), each synonym as its class's word, function words dropped.
    "l'imprimante du deuxième étage" and "la stampante del secondo piano" both give "stampante piano 2"."""
    return content_words(canonical(spoken_numbers(fold(text))))


STEM = 6
GUESS = 0.45  # an asset guessed from one of its own words in a short answer: under the desk's low confidence


def stems(words: str) -> str:
    """Long words cut to their first `STEM` letters, so inflections and near spellings meet: presenze /
    présences, timbrature / timbratura, tributi / tributs. Class words ("telefono_fisso") and words with digits
    stay whole. Used only when the whole words matched nothing, and less sure: "stampa" (it prints) meets
    "stampante" too."""
    return " ".join(w[:STEM] if len(w) > STEM and w.isalpha() else w for w in words.split())


def _places(words: str) -> set[str]:
    """Place tokens of matched words: a word followed by a number is one token ("sportello#1", "piano#2"),
    other words stand alone; numbers alone are no place."""
    tokens = words.split()
    out: set[str] = set()
    for i, t in enumerate(tokens):
        if t.isdecimal():
            continue
        if i + 1 < len(tokens) and tokens[i + 1].isdecimal():
            out.add(f"{t}#{int(tokens[i + 1])}")
        out.add(t)
    return out


def _ident_pattern(ident: str) -> str:
    # "PC-0142" also matches "pc 0142", "pc0142", "PC_0142"; "prot-app01" also "prot app 01" (said, then digits)
    pattern = []
    for chunk in (c for c in re.split(r"[-_\s]+", fold(ident)) if c):
        runs = re.findall(r"[^\W\d_]+|\d+|[^\w]+|_", chunk)
        # a letters-then-digits boundary may be said with a pause when both sides are long enough ("app 01")
        joined = runs[0] if runs else ""
        for prev, run in zip(runs, runs[1:]):
            sep = r"[-_\s]?" if len(prev) >= 2 and len(run) >= 2 and prev.isalpha() != run.isalpha() else ""
            joined = f"{joined}\x00{sep}\x00{run}"
        pattern.append("".join(re.escape(p) if i % 2 == 0 else p for i, p in enumerate(joined.split("\x00"))))
    return r"[-_\s]?".join(pattern)


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
        self.people = People(self.users)
        # Identifiers (tag, hostname, serial) and aliases, as one regex each, longest first so that the most
        # specific phrase wins ("stampante tributi" before "stampante").
        idents: dict[str, DirAsset] = {}
        aliases: dict[str, DirAsset] = {}
        for a in self.assets:
            for ident in (a.tag, a.hostname, a.serial):
                if ident:
                    idents[fold(ident)] = a
            for alias in (a.name, *a.aliases):
                key = asset_words(alias)
                if key:
                    aliases.setdefault(key, a)
        self._idents = idents
        self._index_places()
        self._aliases = aliases
        self._alias_list = list(aliases)
        # The aliases near misses are looked for, fixed once per snapshot: each contact's candidate phrases are
        # scored against all of them in one rapidfuzz.process.cdist call (C, no Python loop per alias).
        # Also each alias as written (its synonyms not replaced by their class): "posta certificata" is "pec" as a
        # class, but "vostra certificata" is a near miss of the words.
        self._fuzzy_of = dict(aliases)
        for a in self.assets:
            for alias in (a.name, *a.aliases):
                self._fuzzy_of.setdefault(content_words(spoken_numbers(fold(alias))), a)
        self._fuzzy_aliases = [k for k in self._fuzzy_of if len(k) >= 4]
        self._ident_re = self._alternation({_ident_pattern(k): k for k in idents})
        self._alias_re = self._alternation({re.escape(k): k for k in aliases})
        self._stemmed: dict[str, DirAsset] = {}
        for key, a in aliases.items():
            self._stemmed.setdefault(stems(key), a)
        self._stem_re = self._alternation({re.escape(k): k for k in self._stemmed})
        # Words of names and aliases that one asset only has ("web", "istituzionale", "ragioneria"): what a
        # half-heard answer to "which asset?" may still carry ("le seek web"). Kinds and numbers name no one.
        # A word of a place ("piano", "sala": any asset's location) is nobody's own: places are the place step's.
        owners: dict[str, set[int]] = {}
        for i, a in enumerate(self.assets):
            for alias in (a.name, *a.aliases):
                for w in asset_words(alias).split():
                    owners.setdefault(w, set()).add(i)
        places = {w for a in self.assets for w in asset_words(a.location or "").split()}
        self._own_word = {
            w: self.assets[next(iter(ids))] for w, ids in owners.items()
            if len(ids) == 1 and w not in places and len(w) >= 3 and w.isalpha() and w not in KINDS
        }
        self._ident_lookup = {re.sub(r"[-_\s]", "", k): v for k, v in idents.items()}
        self.vocabulary = Vocabulary(
            (w for a in self.assets for text in (a.name, *a.aliases, a.location or "") for w in _TOKEN.findall(fold(text))),
            acronyms={fold(w) for a in self.assets for text in (a.name, *a.aliases) for w in _TOKEN.findall(text) if is_acronym(w)},
        )

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

    def user_by_name(self, name: str, cutoff: float = MATCH * 100, *, department: str | None = None) -> tuple[DirUser, float] | None:
        """The directory entry `name` names (misspelt, run together, word order aside: `people.People`), with a
        0–1 score, lowered by a quarter when another entry fits the same words as well (two Marco Rossi) and
        the department does not pick one."""
        hit = self.match_person(name, department=department, least=cutoff / 100)
        if hit is None:
            return None
        return hit.user, round(hit.score * (0.75 if hit.torn else 1.0), 3)

    def match_person(self, text: str, *, department: str | None = None, least: float = MATCH) -> PersonMatch | None:
        """The directory user a phrase names ("buongiorno sono mario losti della ragioneria"), see `people`."""
        return self.people.match(text, department=department, least=least)

    def _index_places(self) -> None:
        """What describes each asset besides its names: the kind of thing it is (the first word of its name
        and aliases: "pc", "stampante") and where it is (its location and the rest of its name, as place
        tokens), each place token weighted by how few assets share it; and the numbers of its identifiers."""
        self._kinds: dict[int, set[str]] = {}
        self._kind_words: dict[str, frozenset[str]] = {}
        self._places_of_tag: dict[str, set[str]] = {}
        self._of_kind: dict[str, list[int]] = {}
        self._place_of: dict[int, set[str]] = {}
        self._numbers: dict[int, list[int]] = {}
        df: dict[str, int] = {}
        for i, a in enumerate(self.assets):
            named = [w for w in (asset_words(n) for n in (a.name, *a.aliases)) if w]
            kinds = {w.split()[0] for w in named} | {t for w in named for t in w.split() if t in KINDS}
            places = _places(asset_words(a.name)) | _places(asset_words(a.location or ""))
            self._kinds[i], self._place_of[i] = kinds, places - kinds
            self._kind_words[a.tag] = frozenset(kinds & KINDS)
            self._places_of_tag[a.tag] = self._place_of[i]
            for k in kinds:
                self._of_kind.setdefault(k, []).append(i)
            for t in self._place_of[i]:
                df[t] = df.get(t, 0) + 1
            for ident in (a.tag, a.hostname):
                for n in re.findall(r"\d{2,}", ident or ""):
                    self._numbers.setdefault(int(n), []).append(i)
        # numbered places that name one asset only
        at: dict[str, list[int]] = {}
        for i, places in self._place_of.items():
            for t in places:
                if "#" in t:
                    at.setdefault(t, []).append(i)
        self._at_place = {t: ids for t, ids in at.items() if len(ids) == 1}
        n = max(1, len(self.assets))
        self._place_weight = {t: math.log((n + 1) / c) for t, c in df.items()}

    # -- assets ---------------------------------------------------------------------------------------------
    def kinds_of(self, asset: DirAsset) -> frozenset[str]:
        """The kinds of thing (`vocabulary.KINDS`) an asset is, by its names: {"stampante"} for a printer."""
        return self._kind_words.get(asset.tag, frozenset())

    def says_where(self, asset: DirAsset, text: str) -> bool:
        """Whether `text` names a place of `asset` ("del secondo piano" for the printer on floor 2)."""
        return bool(self._places_of_tag.get(asset.tag, set()) & _places(asset_words(text)))

    def match_asset(self, text: str, *, fuzzy: bool = True) -> AssetMatch | None:
        """The asset `text` speaks of, from the surest evidence down:
        1. an identifier (tag, hostname, serial), as written or said ("pc zero uno quattro due");
        2. a name or alias, in any of the three languages (synonym classes);
        3. its kind and where it is ("il pc dello sportello 1", "the printer on the second floor"), which also
           overrides an alias that only names the kind ("stampante") when the place points elsewhere;
        4. its kind and the number of its identifier ("computer number 0142");
        5. a numbered place only one asset has, no kind said ("allo sportello 3"), as a guess;
        then, when nothing matched and `fuzzy`: the same again on the words put back to the inventory's own
        (`Vocabulary.correct`: "stampande" → "stampante", "multi funzione" → "multifunzione"), less sure; the
        kind named when only one asset is of that kind ("the copier"); the stems of a name or alias
        (inflections), then a near miss of one (typos, speech-to-text spellings).
        Several different assets lower the confidence. A pure function of the text and the snapshot."""
        folded = fold(text)
        if self._ident_re is not None:
            m = self._ident_re.search(folded)
            if m:
                asset = self._ident_lookup.get(re.sub(r"[-_\s]", "", m.group(0)))
                if asset is not None:
                    return AssetMatch(asset, 0.98, "identifier", m.group(0))
        words = content_words(canonical(spoken_numbers(folded)))
        found = self._by_words(words)
        # Only the kind named ("la stampante dell'oftito triboti"): what the other words say once put back may
        # name the asset more precisely ("stampante tributi").
        kind_only = found is not None and found.how == "alias" and found.matched in KINDS
        if found is not None and not (kind_only and fuzzy):
            return found
        if not fuzzy:
            return None
        # Nothing said right: the words as a recogniser may have misheard them, put back to the inventory's
        # own words ("stampande del terso piano", "multi funzione"), and the same evidence again, less sure.
        heard = self.vocabulary.correct(folded)
        if heard != folded:
            fixed = content_words(canonical(spoken_numbers(heard)))
            if (hit := self._by_words(fixed)) is not None and not (kind_only and (hit.matched in KINDS or hit.asset is found.asset)):
                return AssetMatch(hit.asset, round(hit.confidence * 0.9, 3), "heard", hit.matched)
            words = fixed
        if found is not None:
            return found
        if (hit := self._by_unique_kind(words)) is not None:
            return hit
        if self._stem_re is not None and (hit := self._by_alias(self._stem_re, self._stemmed, stems(words), 0.7, 0.5, "stem")):
            return hit
        if self._fuzzy_aliases:
            return self._fuzzy(f"{words}\n{content_words(spoken_numbers(heard))}")
        return None

    def guess_asset(self, answer: str) -> AssetMatch | None:
        """For an answer to "which asset?" that `match_asset` could not place: the one asset whose own words
        (a word of its names that no other asset has) the answer says, at `GUESS` confidence, for someone to
        confirm ("le seek web", a misheard "le site web", → the website), as said or put back to the inventory's
        words ("digital institutionale" → "istituzionale", "la buppienne" → "vpn"); None when it says none, or
        words of two assets."""
        folded = fold(answer)
        words = {*asset_words(folded).split(), *asset_words(self.vocabulary.correct(folded)).split()}
        said = [w for w in words if w in self._own_word]
        named = {self._own_word[w].tag: (self._own_word[w], w) for w in said}
        if len(named) != 1:
            return None
        ((asset, word),) = named.values()
        return AssetMatch(asset, GUESS, "word", word)

    def _by_words(self, words: str) -> AssetMatch | None:
        """Steps 1–5 of `match_asset` on the words (folded, numbers as digits, synonyms as their class)."""
        if self._ident_re is not None and (m := self._ident_re.search(words)):
            asset = self._ident_lookup.get(re.sub(r"[-_\s]", "", m.group(0)))
            if asset is not None:
                return AssetMatch(asset, 0.9, "identifier", m.group(0))
        alias_hit = self._by_alias(self._alias_re, self._aliases, words, 0.9, 0.7, "alias") if self._alias_re is not None else None
        place_hit = self._by_place(words)
        if alias_hit is not None:
            # An alias that only names the kind ("stampante") yields to the place said ("piano 2", "tributi"): the
            # place step already asks for a distinctive place that one asset of that kind has.
            kind_only = " " not in alias_hit.matched
            if place_hit is not None and place_hit.asset.tag != alias_hit.asset.tag and kind_only:
                return place_hit
            return alias_hit
        if place_hit is not None:
            return place_hit
        if (hit := self._by_number(words)) is not None:
            return hit
        return self._by_unique_place(words)

    def _by_unique_kind(self, words: str) -> AssetMatch | None:
        """One kind of thing named ("the copier", "la photocopieuse") that only one asset is: a guess."""
        named = {t for t in words.split() if t in KINDS}
        if len(named) != 1:
            return None
        (kind,) = named
        have = self._of_kind.get(kind, [])
        if len(have) != 1:
            return None
        return AssetMatch(self.assets[have[0]], 0.7, "kind", kind)

    @staticmethod
    def _by_alias(pattern: re.Pattern, keys: dict[str, DirAsset], words: str, sure: float, torn: float, how: str) -> AssetMatch | None:
        """The asset named by the most specific alias found (most words), then by the most mentions; `torn`
        confidence when several assets are named."""
        found = [(m.group(0), keys[m.group(0)]) for m in pattern.finditer(words)]
        if not found:
            return None
        mentions: dict[str, int] = {}
        for _, a in found:
            mentions[a.tag] = mentions.get(a.tag, 0) + 1
        best_alias, best = max(found, key=lambda f: (len(f[0].split()), mentions[f[1].tag], len(f[0])))
        return AssetMatch(best, sure if len(mentions) == 1 else torn, how, best_alias)

    def _by_unique_place(self, words: str) -> AssetMatch | None:
        """No kind named, but a numbered place only one asset has ("allo sportello 3"): a guess, flagged as one."""
        hits = {(i, t) for t in _places(words) if "#" in t for i in self._at_place.get(t, ())}
        assets = {i for i, _ in hits}
        if len(assets) != 1:
            return None
        i, token = hits.pop()
        return AssetMatch(self.assets[i], 0.6, "place", token)

    def _by_place(self, words: str) -> AssetMatch | None:
        """The asset of the kind named whose place tokens the text shares most (rarer tokens weigh more)."""
        tokens = words.split()
        if not tokens or not self.assets:
            return None
        candidates = {i for t in set(tokens) for i in self._of_kind.get(t, ())}
        if not candidates:
            return None
        said = _places(words)
        scored: list[tuple[float, int, str]] = []
        for i in candidates:
            shared = self._place_of[i] & said
            if not shared:
                continue
            score = sum(self._place_weight.get(t, 0.0) * (2 if "#" in t else 1) for t in shared)
            scored.append((score, i, max(shared, key=lambda t: ("#" in t, self._place_weight.get(t, 0.0)))))
        if not scored:
            return None
        scored.sort(reverse=True)
        best, i, token = scored[0]
        if best < 1.0 or (len(scored) > 1 and scored[1][0] >= best * 0.9):
            return None  # nothing distinctive, or two assets fit as well
        return AssetMatch(self.assets[i], 0.85 if "#" in token else 0.75, "place", token)

    def _by_number(self, words: str) -> AssetMatch | None:
        """The one asset whose identifier carries a number said in the text, when its kind is named too."""
        tokens = words.split()
        present = set(tokens)
        hits = {i for t in tokens if t.isdecimal() and len(t) >= 2 for i in self._numbers.get(int(t), ())}
        hits = {i for i in hits if self._kinds[i] & present}
        if len(hits) != 1:
            return None
        i = hits.pop()
        return AssetMatch(self.assets[i], 0.85, "number", self.assets[i].tag)

    def _fuzzy(self, text: str) -> AssetMatch | None:
        grams = set()
        for line in text.split("\n"):  # the words as classes, and as said
            words = line.split()[:400]
            grams |= {" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
        grams = [g for g in grams if len(g) >= 4]
        if not grams:
            return None
        if not self._fuzzy_aliases:
            return None
        scores = process.cdist(self._fuzzy_aliases, grams, scorer=fuzz.ratio, score_cutoff=85)
        best = int(scores.max(axis=1).argmax())  # the first alias with the best score, as a loop would pick
        score = float(scores[best].max())
        if score < 85:
            return None
        alias = self._fuzzy_aliases[best]
        return AssetMatch(self._fuzzy_of[alias], round(0.8 * score / 100, 2), "fuzzy", alias)


def load_directory(session) -> Directory:
    """Read the directory and inventory from the database."""
    from sqlalchemy import select

    from .models import Asset, User

    users = [
        DirUser(u.id, u.name, u.email, tuple(u.phones or ()), u.department) for u in session.scalars(select(User))
    ]
    assets = [
        DirAsset(a.id, a.tag, a.name, a.kind, tuple(a.aliases or ()), a.hostname, a.serial, a.criticality, a.location)
        for a in session.scalars(select(Asset))
    ]
    return Directory(users, assets)
