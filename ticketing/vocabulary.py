"""Words as data for the extraction steps, in Italian, French and English: numbers said as words, and the
classes of words that name the same thing in the three languages (stampante / imprimante / printer).

Everything here is folded (lower case, no accents, see `text.fold`). `spoken_numbers` turns number words
into digits and puts an ordinal after the word it qualifies ("secondo piano" → "piano 2", "deuxième étage" →
"étage 2"), so a place said in words meets the inventory's "piano 2". `canonical` maps every word of a
synonym class to the class's first word, so "imprimante" meets an inventory written in Italian.
"""

from __future__ import annotations

import re
from functools import lru_cache

# -- numbers -------------------------------------------------------------------------------------------------
_UNIT_WORDS = {
    # Italian
    "zero": 0, "uno": 1, "una": 1, "un": 1, "due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7,
    "otto": 8, "nove": 9, "dieci": 10, "undici": 11, "dodici": 12, "tredici": 13, "quattordici": 14,
    "quindici": 15, "sedici": 16, "diciassette": 17, "diciotto": 18, "diciannove": 19,
    # French
    "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9,
    "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16,
    # English
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS_WORDS = {
    "venti": 20, "trenta": 30, "quaranta": 40, "cinquanta": 50, "sessanta": 60, "settanta": 70, "ottanta": 80,
    "novanta": 90,
    "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60, "septante": 70,
    "huitante": 80, "octante": 80, "nonante": 90,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_HUNDRED_WORDS = {"cento": 100, "cent": 100, "cents": 100, "hundred": 100}
_ORDINAL_WORDS = {
    "primo": 1, "prima": 1, "secondo": 2, "seconda": 2, "terzo": 3, "terza": 3, "quarto": 4, "quarta": 4,
    "quinto": 5, "quinta": 5, "sesto": 6, "sesta": 6,
    "premier": 1, "premiere": 1, "deuxieme": 2, "second": 2, "seconde": 2, "troisieme": 3, "quatrieme": 4,
    "cinquieme": 5, "sixieme": 6,
    "first": 1, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
}
# Italian writes compounds as one word, eliding a vowel: ventuno, trentotto, duecentoquattordici.
_IT_TENS_STEMS = {w[:-1]: v for w, v in _TENS_WORDS.items() if w.endswith(("i", "a")) and v and w in (
    "venti", "trenta", "quaranta", "cinquanta", "sessanta", "settanta", "ottanta", "novanta")}
# Words that are also articles or pronouns: a number only when no noun follows ("lo sportello uno").
_ARTICLES = frozenset({"un", "una", "une", "uno", "one", "sei"})
_AFTER_NUMBER = frozenset("non ne e et and che qui is est ha a al del della di de du in nel not does doesn fa che".split())
_CONNECTORS = frozenset({"e", "et", "and"})  # "vingt et un", "one hundred and five"
_DIGIT_ORDINAL = re.compile(r"^(\d+)(?:o|a|e|eme|er|ere|st|nd|rd|th|°|º|ª)$")
_TOKEN = re.compile(r"\d+[^\W\d_]*[°ºª]?|[^\W\d_]+")


def _it_compound(word: str) -> int | None:
    """An Italian number written as one word (ventitre, centoventi, duecentoquattordici), or None."""
    total, rest = 0, word
    m = re.match(r"^(due|tre|quattro|cinque|sei|sette|otto|nove)?cento", rest)
    if m:
        total, rest = 100 * (_UNIT_WORDS[m.group(1)] if m.group(1) else 1), rest[m.end():]
        if not rest:
            return total
    for stem, tens in _IT_TENS_STEMS.items():
        if rest.startswith(stem):
            tail = rest[len(stem):]
            if tail in ("i", "a"):
                return total + tens
            for t in (tail, tail[1:]):
                if t in _UNIT_WORDS and _UNIT_WORDS[t] < 10 and t not in ("un", "una"):
                    return total + tens + _UNIT_WORDS[t]
            return None
    if total and rest in _UNIT_WORDS and rest not in ("un", "una"):
        return total + _UNIT_WORDS[rest]
    return None


@lru_cache(maxsize=1 << 16)
def _kind(token: str) -> tuple[str, int] | None:
    if token.isdecimal():
        return ("digits", int(token))
    if token in _UNIT_WORDS:
        return ("unit", _UNIT_WORDS[token])
    if token in _TENS_WORDS:
        return ("tens", _TENS_WORDS[token])
    if token in _HUNDRED_WORDS:
        return ("hundred", 100)
    if token in _ORDINAL_WORDS:
        return ("ordinal", _ORDINAL_WORDS[token])
    if m := _DIGIT_ORDINAL.match(token):
        return ("ordinal", int(m.group(1)))
    if len(token) > 5 and (v := _it_compound(token)) is not None:
        return ("number", v)
    return None


def _run_values(run: list[tuple[str, str, int]]) -> list[str]:
    """A run of number words as the numbers they say: single digits one after another are read digit by
    digit ("zero uno quattro due" → "0142"), the rest as compounds ("vingt trois" → "23")."""
    if len(run) >= 2 and all(k == "unit" and v < 10 for _, k, v in run):
        return ["".join(str(v) for _, _, v in run)]
    out: list[str] = []
    current: int | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            out.append(str(current))
        current = None

    for token, kind, value in run:
        if kind == "digits":
            flush()
            out.append(token)
        elif kind == "number":
            flush()
            out.append(str(value))
        elif kind == "hundred":
            current = (current or 1) * 100
        elif kind == "tens":
            if current is not None and current % 100 == 4 and value == 20:  # quatre-vingt
                current = current - 4 + 80
            elif current is not None and current % 100 == 0:
                current += value
            else:
                flush()
                current = value
        else:  # unit
            if current is not None and current % 10 == 0 and (current % 100 >= 20 or current % 100 == 0) and current:
                current += value
            elif current is not None and current % 100 in (60, 80) and value < 20:  # soixante-dix, quatre-vingt-onze
                current += value
            else:
                flush()
                current = value
    flush()
    return out


def spoken_numbers(text: str) -> str:
    """Folded text with number words as digits, and an ordinal moved after the word it qualifies.

    `pc due tre uno` → `pc 231`; `stanza duecentoquattordici` → `stanza 214`; `vingt-trois` → `23`;
    `la stampante del secondo piano` → `la stampante del piano 2`; `2nd floor` → `floor 2`. Words that are also
    articles ("un", "una", "une") count only next to other number words or after a noun with no other
    number ("sportello uno"); matching that uses this text compares whole phrases, so a stray "1" costs little.
    """
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    pending_ordinal: str | None = None
    i = 0
    while i < len(tokens):
        kind = _kind(tokens[i])
        if kind is None:
            out.append(tokens[i])
            if pending_ordinal is not None and tokens[i].isalpha():
                out.append(pending_ordinal)
                pending_ordinal = None
            i += 1
            continue
        if kind[0] == "ordinal":
            if pending_ordinal is not None:
                out.append(pending_ordinal)
            pending_ordinal = str(kind[1])
            i += 1
            continue
        run: list[tuple[str, str, int]] = []
        while i < len(tokens):
            k = _kind(tokens[i])
            if k is None and tokens[i] in _CONNECTORS and run and i + 1 < len(tokens) and (n := _kind(tokens[i + 1])) and n[0] == "unit":
                i += 1
                continue
            if k is None or k[0] == "ordinal":
                break
            run.append((tokens[i], *k))
            i += 1
        if len(run) == 1 and run[0][0] in _ARTICLES and i < len(tokens) and tokens[i].isalpha() and tokens[i] not in _AFTER_NUMBER:
            out.append(run[0][0])  # an article ("un problema", "une imprimante"), not a number
            continue
        out.extend(_run_values(run))
    if pending_ordinal is not None:
        out.append(pending_ordinal)
    return " ".join(out)


# -- synonyms ------------------------------------------------------------------------------------------------
# One class a line: the first word stands for the class. Phrases of several words are allowed; a word is in
# one class only. Plural forms are listed where the languages make them differ.
SYNONYMS: tuple[str, ...] = (
    "stampante|stampanti|imprimante|imprimantes|printer|printers",
    "multifunzione|multifonction|multifunction|mfp",
    "fotocopiatrice|photocopieuse|copieur|photocopier|copier",
    "posta|mail|email|e mail|courriel|courriels|messagerie|posta elettronica|courrier electronique|e-mail|mailbox|casella di posta|boite mail|boite aux lettres",
    "pec|posta certificata|posta elettronica certificata|courrier certifie|certified email|certified mail",
    "pc|computer|computers|ordinateur|ordinateurs|postazione|postazioni|workstation|desktop|poste de travail|poste",
    "portatile|notebook|laptop|ordinateur portable",
    "telefono|telephone|phone|telefoni|telephones|phones",
    "telefono fisso|telephone fixe|desk phone|landline",
    "rete|reseau|network",
    "rete wireless|wifi|wi fi|wireless|wlan|reseau sans fil|sans fil",
    "proiettore|videoproiettore|projecteur|videoprojecteur|projector|beamer",
    "piano|etage|floor|level",
    "piano terra|pianoterra|pianterreno|piano terreno|rez de chaussee|ground floor",
    "monitor|schermo|ecran|screen|display",
    "tastiera|clavier|keyboard",
    "mouse|souris",
    "server|serveur",
    "tablet|tablette",
    "badge|lettore badge|badge reader|lecteur de badge|rilevatore presenze|timbratrice",
    "stanza|room|chambre",
    "ufficio|uffici|bureau|bureaux|office|offices",
    "sportello|guichet|counter|front desk|desk",
    "sala|salle|hall",
    "archivio|archives|archive|archivi|banca dati|base de donnees|database",
    "catasto|cadastre|land registry",
    "anagrafe|etat civil|registry office|civil registry",
    "tributi|impots|taxes|tax office",
    "ragioneria|comptabilite|accounting office",
    "contabilita|comptabilite generale|accounting|bilancio|budget",
    "protocollo|protocole|protocol",
    "sito|site|website|site internet|site web",
    "firma digitale|signature electronique|signature numerique|digital signature",
    "scanner|scanners|numeriseur",
    "direzione generale|direction generale|general management|direttore generale|directeur general|general manager",
    "sistema informativo territoriale|systeme d information territoriale|gis",
    "cartografia|mappe|cartographie|mapping|maps",  # not "cartes": "les cartes réseau" are network cards
    "personale|personnel|staff|human resources|ressources humaines|risorse umane",
    "stipendi|paie|payroll|salaires|salaries",
    "presenze|presences|attendance|assenze|absences",
    "timbrature|timbratura|pointages|pointage|badgeuse|clock in|clocking in",
    "delibere|deliberazioni|deliberations|resolutions",
)


# Words that say what kind of thing an asset is, wherever they stand in its name ("HP LaserJet stampante"):
# with a place, they find it ("la stampante del primo piano").
KINDS = frozenset(
    "stampante fotocopiatrice multifunzione pc portatile telefono telefono_fisso proiettore scanner monitor tastiera "
    "mouse server tablet badge router switch modem cellulare smartphone plotter".split()
)


def _classes(lines: tuple[str, ...]) -> tuple[dict[str, str], re.Pattern | None]:
    words: dict[str, str] = {}
    phrases: dict[str, str] = {}
    for line in lines:
        members = [m.strip() for m in line.split("|") if m.strip()]
        head = members[0].replace(" ", "_")
        for m in members:
            key = " ".join(re.findall(r"[a-z0-9]+", m))
            (phrases if " " in key else words).setdefault(key, head)
    phrase_re = None
    if phrases:
        ordered = sorted(phrases, key=len, reverse=True)
        phrase_re = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![\w])")
    return {**words, **phrases}, phrase_re


_CANON, _PHRASE_RE = _classes(SYNONYMS)


def canonical(text: str) -> str:
    """Folded text with each synonym (word or phrase) replaced by its class's first word."""
    if _PHRASE_RE is not None:
        text = _PHRASE_RE.sub(lambda m: _CANON[m.group(0)], text)
    return " ".join(_CANON.get(w, w) for w in text.split())


# -- words as a recogniser may have misheard them ---------------------------------------------------------------
CORRECT_AT = 85  # the least similarity (0–100) at which a heard word is taken for a vocabulary word
SPELLED_AT = 80  # the same, for an acronym said letter by letter: long, made-up spellings no real word is near

# Letter names, folded, as a caller spells an acronym ("VPN": "vu pi enne", "vé pé èn", "vee pee en"); a recogniser
# that does not know the acronym writes the sounds as one made-up word ("buppienne"). Alternatives with "|".
LETTER_NAMES = {
    "it": "a bi ci di e effe gi acca i ilunga|i cappa elle emme enne o pi cu erre esse ti u vu|vi doppiavu ics ipsilon zeta",
    "fr": "a be ce de e effe|ef ge ache i ji ka elle|el emme|em enne|en o pe ku erre|er esse|es te u ve doubleve iks igrec zed",
    "en": "ay bee see dee ee ef jee aitch eye jay kay el em en oh pee cue ar ess tee you vee doubleyou ex why zed|zee",
}
_LETTERS = {lang: dict(zip("abcdefghijklmnopqrstuvwxyz", (n.split("|") for n in names.split())))
            for lang, names in LETTER_NAMES.items()}


def spelled(acronym: str, limit: int = 8) -> set[str]:
    """The ways `acronym` (folded letters) sounds spelled out in Italian, French and English, each run together as a
    recogniser writes it: `spelled("vpn")` has "vupienne", "vipienne", "vepeenne", "veepeeen"."""
    forms: set[str] = set()
    for names in _LETTERS.values():
        heads = [""]
        for ch in acronym:
            heads = [h + n for h in heads for n in names.get(ch, (ch,))][:limit]
        forms.update(heads)
    return forms


def is_acronym(word: str) -> bool:
    """A word said letter by letter: 3–5 letters written in capitals ("VPN", "PEC") or without a vowel ("vpn").
    Two letters spell too short a word ("pici") to tell from real ones ("pièce")."""
    return word.isalpha() and 3 <= len(word) <= 5 and (word.isupper() or not re.search(r"[aeiouy]", word.lower()))


class Vocabulary:
    """The words an inventory is described with (names, aliases, places; given per snapshot), with every word of
    the synonym classes, the kinds and the number words: what a misheard word is put back to.

    `correct(folded)` replaces each unknown word of four letters or more by the vocabulary word it is nearest,
    when they are near enough (`CORRECT_AT`: the letters' similarity, raised half-way towards how alike they
    sound, `text.sound_key`), and joins two words whose run-together form is a vocabulary word ("multi funzione"
    → "multifunzione"). "la stampande del terso piano" → "la stampante del terzo piano". Corrections are
    remembered per word (a snapshot's vocabulary does not change)."""

    def __init__(self, words, acronyms=()):
        from .text import sound_key

        known = {w for w in words if w.isalpha() and len(w) >= 3}
        for line in SYNONYMS:
            known.update(w for member in line.split("|") for w in re.findall(r"[a-z]+", member) if len(w) >= 3)
        known.update(w for w in (*_UNIT_WORDS, *_TENS_WORDS, *_HUNDRED_WORDS, *_ORDINAL_WORDS, *KINDS) if w.isalpha() and len(w) >= 3)
        self._known = frozenset(known)
        self._words = sorted(known)
        self._sound_key = sound_key
        self._memo: dict[str, str] = {}
        # An acronym's spellings (`spelled`): a heard word near one of them is put back to the acronym.
        self._spelled = {form: a for a in sorted(set(acronyms)) for form in spelled(a)}
        self._spelled_forms = sorted(self._spelled)
        self._spelled_memo: dict[str, str | None] = {}

    def __contains__(self, word: str) -> bool:
        return word in self._known

    def word(self, heard: str) -> str:
        """The vocabulary word `heard` stands for (itself when known, short, or near none)."""
        if heard in self._known or len(heard) < 4 or not heard.isalpha():
            return heard
        if (done := self._memo.get(heard)) is not None:
            return done
        best, best_score = self._nearest(heard, self._words)
        out = best if best_score >= CORRECT_AT else (self._spelled_acronym(heard) or heard)
        if len(self._memo) < 50_000:
            self._memo[heard] = out
        return out

    def _spelled_acronym(self, heard: str) -> str | None:
        """The acronym whose spelling `heard` is ("buppienne" → "vpn"), scored as `word` scores, at `SPELLED_AT`."""
        if not self._spelled_forms or len(heard) < 5:
            return None
        if heard in self._spelled_memo:
            return self._spelled_memo[heard]
        best, best_score = self._nearest(heard, self._spelled_forms)
        acronym = self._spelled[best] if best_score >= SPELLED_AT else None
        if len(self._spelled_memo) < 50_000:
            self._spelled_memo[heard] = acronym
        return acronym

    def _nearest(self, heard: str, candidates: list[str]) -> tuple[str, float]:
        """The candidate nearest `heard` and its score (0–100): the letters' similarity, raised half-way towards
        how alike they sound; (`heard`, 0) when none is near at all."""
        from rapidfuzz import fuzz, process

        key, best, best_score = self._sound_key(heard), heard, 0.0
        for candidate, letters, _ in process.extract(heard, candidates, scorer=fuzz.ratio, limit=5, score_cutoff=65):
            score = max(letters, (letters + fuzz.ratio(key, self._sound_key(candidate))) / 2)
            if score > best_score:
                best, best_score = candidate, score
        return best, best_score

    def _spelled_run(self, words: list[str], i: int) -> tuple[str, int] | None:
        """An acronym spelled in the two or three short unknown words from `words[i]` on, and how many they are."""
        for n in (3, 2):
            part = words[i:i + n]
            if len(part) == n and all(len(p) <= 5 and p not in self._known for p in part):
                if (acronym := self._spelled_acronym("".join(part))) is not None:
                    return acronym, n
        return None

    def correct(self, folded: str) -> str:
        words = re.findall(r"\w+", folded)
        out: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            if (run := self._spelled_run(words, i)) is not None:  # "vu pi enne", "vee pee en": the acronym
                out.append(run[0])
                i += run[1]
                continue
            if i + 1 < len(words) and (joined := w + words[i + 1]) in self._known and not (w in self._known and words[i + 1] in self._known):
                out.append(joined)
                i += 2
                continue
            out.append(self.word(w))
            i += 1
        return " ".join(out)
