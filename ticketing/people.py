"""People of the directory found in what someone said or wrote, under speech-to-text noise.

A name heard through a phone line and a recogniser comes back misspelt ("Mario Losti" for Mario Rossi, "rizci"
for Ricci), run together ("mariorossi") or split ("ros si"), surname first, with words around it ("sono …
della ragioneria", "c'est … du cadastre"), or with a word missing. `People(users)` indexes the directory once
per snapshot: every order of each user's name words, written together, as letters and as a sound key
(`text.sound_key`: spellings of one sound in it/fr/en, and the sounds a line confuses, in one class).
`match(text)` compares every run of one to four words of the text, written together the same two ways,
with all of them in two `rapidfuzz.process.cdist` calls (C, no Python loop per user): a word split or joined
costs nothing, a letter misheard costs a little, a missing first name or surname a lot.

The score (0–1) is the letters' similarity, raised towards the sounds' when they agree more: what a person
should trust. `MATCH` separates a real match from a near miss (another first name with the same surname,
another surname with the same first name), measured on the spoken sets (BENCHMARKS.md); another user
scoring almost as well on the same words makes the match torn, unless the department said picks one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import permutations

import numpy as np
from rapidfuzz import fuzz, process

from .text import fold, sound_key

MATCH = 0.8  # the least score that names a directory user
SURE = 0.92  # from here on the match is as good as the name written right
TORN = 0.03  # another user this close on the same words: the match is torn
MAX_WORDS = 40  # the words of a text looked at: a name is said near the start
RECENT = 16  # texts whose scores are remembered: the few one contact asks about
_WORD = re.compile(r"[a-z]+")
# Words that start or end no name: the phrases around a name, greetings, articles (unless a directory name
# has them: "De Luca", "Di Stefano").
_NOT_NAME_EDGE = frozenset(
    "sono io mi chiamo il mio nome e ed buongiorno buonasera salve ciao pronto si della dello del dei degli delle dell "
    "dal dalla ufficio servizio lavoro al allo alla ai sto settore per con che chi parla qui a da di in la lo le gli un una "
    "je m appelle suis c est moi ici bonjour bonsoir oui du des de l au aux service bureau et un une le les d s "
    "my name is this i am it s from the of hello hi hey good morning yes office at and in speaking calling here a an".split()
)


@dataclass(frozen=True, slots=True)
class PersonMatch:
    user: object  # a directory.DirUser
    score: float  # 0–1, see the module's docstring
    matched: str  # the words that name them, as heard
    torn: bool  # another user fits the same words about as well
    start: int  # where those words start and end in the folded text's words
    end: int


def name_words(text: str) -> list[str]:
    """Folded words of a text, apostrophes and hyphens splitting ("dell'ufficio", "jean-luc"), a word said again
    right after itself kept once: nobody is called "Giorgio Giorgio", a recogniser looping on a word is."""
    words = _WORD.findall(fold(text))
    return [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]


class People:
    def __init__(self, users: list):
        self.users = list(users)
        letters: list[str] = []
        sounds: list[str] = []
        owner: list[int] = []
        self._tokens: set[str] = set()
        self._exact: dict[str, list[int]] = {}  # a name's words written together, in any order -> its users
        self._longest = 1
        for i, u in enumerate(self.users):
            words = name_words(u.name)[:4]
            if not words:
                continue
            self._tokens.update(words)
            self._longest = max(self._longest, len(words))
            orders = {tuple(p) for p in permutations(words)} if len(words) <= 3 else {tuple(words), tuple(words[1:] + words[:1])}
            for order in sorted(orders):
                self._exact.setdefault("".join(order), []).append(i)
                letters.append("".join(order))
                sounds.append("".join(sound_key(w) for w in order))
                owner.append(i)
        self._letters, self._sounds = letters, sounds
        self._recent: dict[str, tuple] = {}
        owner_ = np.asarray(owner, dtype=np.int64)
        # each user's variants are contiguous: where they start, and whose they are
        self._starts = np.flatnonzero(np.r_[True, owner_[1:] != owner_[:-1]]) if len(owner_) else owner_
        self._with_name = owner_[self._starts] if len(owner_) else owner_

    def __len__(self) -> int:
        return len(self.users)

    def _windows(self, words: list[str]) -> list[tuple[int, int]]:
        out = []
        for size in range(1, min(self._longest + 1, 4) + 1):
            for start in range(len(words) - size + 1):
                first, last = words[start], words[start + size - 1]
                if any(w in _NOT_NAME_EDGE and w not in self._tokens for w in (first, last)):
                    continue
                if sum(len(w) for w in words[start : start + size]) < 3:
                    continue
                out.append((start, start + size))
        return out

    def scores(self, text: str) -> tuple[list[str], list[tuple[int, int]], np.ndarray]:
        """(words, windows, score per window and user), scores 0–100; the last texts' are remembered (one
        contact asks about the same words several times: its phrase, its prefix, the name stated)."""
        words = name_words(text)[:MAX_WORDS]
        key = " ".join(words)
        if (done := self._recent.get(key)) is not None:
            return done
        if len(self._recent) >= RECENT:
            self._recent.clear()
        self._recent[key] = done = self._score(words)
        return done

    def _score(self, words: list[str]) -> tuple[list[str], list[tuple[int, int]], np.ndarray]:
        windows = self._windows(words)
        if not windows or not self._letters:
            return words, windows, np.zeros((len(windows), len(self.users)))
        heard = ["".join(words[a:b]) for a, b in windows]
        said = ["".join(sound_key(w) for w in words[a:b]) for a, b in windows]
        by_letters = process.cdist(heard, self._letters, scorer=fuzz.ratio, score_cutoff=50, dtype=np.float32)
        by_sound = process.cdist(said, self._sounds, scorer=fuzz.ratio, score_cutoff=50, dtype=np.float32)
        # The letters decide; sounds that agree better raise the score half-way towards them.
        combined = np.maximum(by_letters, (by_letters + by_sound) / 2)
        per_user = np.zeros((len(windows), len(self.users)), dtype=np.float32)
        per_user[:, self._with_name] = np.maximum.reduceat(combined, self._starts, axis=1)
        return words, windows, per_user

    def match(self, text: str, *, department: str | None = None, least: float = MATCH) -> PersonMatch | None:
        """The directory user `text` names, or None when nobody scores `least` or more. Between users the
        same words fit about as well (namesakes, two near spellings), the one whose department fits the
        `department` given, else the words after the name, wins; without one, the match is torn."""
        if not text or not self.users:
            return None
        # The name as the directory writes it (most mail senders, most clear answers): no scoring needed.
        words = name_words(text)[:MAX_WORDS]
        for start, end in self._windows(words):
            if (exact := self._exact.get("".join(words[start:end]))) is not None:
                users = list(dict.fromkeys(exact))
                return self._pick(users, users[0], 1.0, words, start, end, department)
        words, windows, per_user = self.scores(text)
        if not windows:
            return None
        best = float(per_user.max())
        if best < least * 100:
            return None
        # The earliest words that name someone as well as the best do: the caller's own name comes first
        # ("sono Mario Rossi, chiamo per Anna De Luca").
        rows = np.nonzero(per_user.max(axis=1) >= best - 2)[0]
        row = min(rows, key=lambda r: (windows[r][0], -(windows[r][1] - windows[r][0])))
        start, end = windows[row]
        overlapping = [r for r, (a, b) in enumerate(windows) if a < end and b > start]
        near = per_user[overlapping].max(axis=0)
        score = float(per_user[row].max())
        rivals = [int(i) for i in np.nonzero(near >= score - TORN * 100)[0]]
        return self._pick(rivals, int(per_user[row].argmax()), score / 100, words, start, end, department)

    def _pick(self, rivals: list[int], chosen: int, score: float, words: list[str], start: int, end: int, department: str | None) -> PersonMatch:
        """Between users the same words fit about as well, the one whose department fits wins, else it is torn."""
        torn = len(rivals) > 1
        if torn:
            hint = fold(department) if department else " ".join(words[end:])
            fits = [i for i in rivals if hint and self.users[i].department and fuzz.partial_ratio(fold(self.users[i].department), hint) >= 80]
            if len(fits) == 1 or (fits and department):
                chosen, torn = fits[0], False
            elif chosen not in rivals:
                chosen = rivals[0]
        return PersonMatch(self.users[chosen], round(score, 3), " ".join(words[start:end]), torn, start, end)
