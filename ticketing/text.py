"""Plain-text helpers shared by the extraction steps: folding, language guess, and cleaning a message down to
what the user wrote now (quoted replies, signatures and greetings removed), in Italian, French and English.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_COMBINING = re.compile(r"[\u0300-\u036f]")
_SPACES = re.compile(r"[ \t\u00a0]+")


def fold(text: str) -> str:
    """Lower case without accents, for matching: `Contabilità` → `contabilita`."""
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).lower()


# -- how a word sounds, coarsely: names and words heard through speech-to-text --------------------------------
# Spellings of one sound in Italian, French and English first (chi/che → k, ci/ce → s, gi/ge → j, gn, gli, qu,
# ph, th, sh, eau/au/ou), then sounds a telephone line and a recogniser confuse fall into one class: voiced and
# voiceless stops (p/b, t/d, k/g), f/v, s/z (and the affricates written c, cc, z, tz), the liquids l/r, the
# nasals m/n, and the vowels in three classes (a; e/i/y; o/u). Doubles are one. So "Rossi" heard as "Losti"
# keys "lose" / "loste", "Ricci" and "rizci" both "lese", "Giulia" and "Julia" both "jolea".
_SOUND_SPELLINGS = tuple((re.compile(p), r) for p, r in (
    (r"[^a-z]", ""),
    (r"(.)\1+", r"\1"),  # doubles first: "cc", "ss", "ll"
    (r"sch", "sk"), (r"sc(?=[eiy])", "s"), (r"gli", "li"), (r"gn", "n"), (r"ch(?=[eiy]|[^aeiouy]|$)", "k"), (r"ch", "s"),
    (r"ci(?=[aou])", "s"), (r"gi(?=[aou])", "j"), (r"ge(?=[aou])", "j"), (r"c(?=[eiy])", "s"), (r"g(?=[eiy])", "j"), (r"gh", "g"), (r"qu?", "k"), (r"ck", "k"),
    (r"ph", "f"), (r"th", "t"), (r"sh", "s"), (r"tz", "s"), (r"x", "ks"), (r"eau|au", "o"), (r"ou", "u"), (r"[ae]i(?=[^aeiouy]|$)", "e"),
    (r"h", ""), (r"w", "v"), (r"y", "i"),
))
_SOUND_CLASSES = str.maketrans("bdgcqkvzrnieu", "ptkkkkfslmeeo")


@lru_cache(maxsize=1 << 16)
def sound_key(word: str) -> str:
    """A coarse key of how a folded word sounds (see above): equal or near for spellings a recogniser mixes up.
    `sound_key("rossi") == "lose"`, `sound_key("losti") == "loste"`, `sound_key("giorgio") == "joljo"`."""
    w = word
    for pattern, repl in _SOUND_SPELLINGS:
        w = pattern.sub(repl, w)
    return re.sub(r"(.)\1+", r"\1", w.translate(_SOUND_CLASSES))


_IT_WORDS = frozenset(
    "il lo la gli le di del della che non per con una uno sono ho mi ci si è e da al alla nel nella "
    "buongiorno grazie saluti cordiali funziona riesco posso ufficio stampante vorrei".split()
)
_EN_WORDS = frozenset(
    "the a an of to and is are not i my me we our it this that with for on in can cannot can't please "
    "hello hi thanks regards working work office printer would".split()
)
_FR_WORDS = frozenset(
    "le la les des du de un une est et je j'ai ne pas plus nous vous mon ma mes notre votre avec pour sur dans "
    "bonjour merci cordialement bureau imprimante fonctionne depuis ce cette qui que n'est c'est d'avance "
    "madame monsieur ordinateur message".split()
)
_WORD = re.compile(r"[a-zà-ÿ']+")


def guess_language(text: str, default: str = "it") -> str:
    """'it', 'fr' or 'en' by counting common words; the desk's default language when there is no evidence."""
    words = _WORD.findall(text.lower()[:4000])
    counts = {
        "it": sum(w in _IT_WORDS for w in words),
        "fr": sum(w in _FR_WORDS for w in words),
        "en": sum(w in _EN_WORDS for w in words),
    }
    best = max(counts.values())
    winners = [lang for lang, n in counts.items() if n == best]
    if best == 0 or len(winners) > 1:
        return default if default in winners or best == 0 else winners[0]
    return winners[0]


# A line that starts the quoted original of a reply, in the clients the desk's users have.
_REPLY_HEADER = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:original\s+message|messaggio\s+originale|messaggio\s+inoltrato|forwarded\s+message
                  |message\s+d'origine|message\s+original|message\s+transf[ée]r[ée])\s*-{2,}
      | on\s.{1,200}\swrote:
      | il\s(?:giorno\s)?.{1,200}\sha\sscritto:
      | le\s.{1,200}\sa\s[ée]crit\s?:
      | (?:da|from|de)\s?:\s.+\s*$(?=\n\s*(?:inviato|sent|data|date|a|to|envoy[ée]|[àa])\s?:)
    )""",
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)
_SIG_DELIMITER = re.compile(r"^--\s?$")
_CLOSING = re.compile(
    r"""^\s*(?:cordiali\s+saluti|distinti\s+saluti|cordialmente|saluti(?:\s+cordiali)?|un\s+saluto|a\s+presto
      |grazie(?:\s+mille)?(?:\s+e\s+(?:cordiali\s+)?saluti)?(?:\s+in\s+anticipo)?|buona\s+giornata|buon\s+lavoro
      |best(?:\s+regards)?|kind\s+regards|regards|many\s+thanks|thanks(?:\s+in\s+advance)?|thank\s+you|cheers
      |sincerely|yours
      |cordialement|bien\s+cordialement|bien\s+[àa]\s+vous|(?:meilleures\s+|sinc[èe]res\s+)?salutations(?:\s+distingu[ée]es)?
      |merci(?:\s+beaucoup)?(?:\s+(?:d'avance|par\s+avance|d’avance))?|bonne\s+(?:journ[ée]e|soir[ée]e)|amicalement|[àa]\s+bient[ôo]t)\s*[,.!]*\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_SENT_FROM = re.compile(r"^\s*(?:sent from my|inviato da(?:l mio)?|inviato dal mio|get outlook for|envoy[ée] de mon)\b", re.IGNORECASE)
_GREETING = re.compile(
    r"""^\s*(?:buongiorno|buonasera|buon\s+pomeriggio|salve|ciao|gentil[ei](?:ssim[oie])?|egregi[oe]?|spett\.?(?:le)?
      |alla\s+c\.?a\.?|hello|hi|hey|dear|good\s+(?:morning|afternoon|evening)
      |madame,?\s+monsieur|monsieur,?\s+madame|bonjour|bonsoir|salut|madame|monsieur|ch[èe]re?s?)\b
      # "Buongiorno Mario," takes the name with it; an unpunctuated transcript loses only the greeting word
      (?:[^,!.:\n]{0,40}[,!:.]|[,!:.])?\s*""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class CleanText:
    body: str  # what the user wrote in this message, without quotes, signature and greeting
    signature: tuple[str, ...]  # the lines after the closing or the `-- ` delimiter


# A line of contact details: a labelled phone, a bare international number, an address. A signature without a
# closing is its last paragraph when that paragraph has one.
_CONTACT_LINE = re.compile(
    r"^\s*(?:(?:tel|t[ée]l|phone|cell|cellulare|mob|mobile|portable|fax|interno|ext)\b\.?\s*:?\s*[+(\d]|\+\d[\d\s./-]{7,}$|[\w.+-]+@[\w-]+(?:\.[\w-]+)+\s*$)",
    re.IGNORECASE,
)


def _trailing_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """(signature, body lines): the last paragraph, when it is short and holds a contact line, and is not the
    message's only paragraph."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and lines[start - 1].strip():
        start -= 1
    block = [ln.strip() for ln in lines[start:end]]
    if start == 0 or not block or len(block) > 6 or not any(_CONTACT_LINE.match(ln) for ln in block):
        return [], lines
    return block, lines[:start]


def clean(text: str) -> CleanText:
    """Cut a message down to what the user wrote now."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _REPLY_HEADER.search(text)
    if m:
        text = text[: m.start()]
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(">") and not _SENT_FROM.match(ln)]
    signature: list[str] = []
    for i, line in enumerate(lines):
        if _SIG_DELIMITER.match(line) or (_CLOSING.match(line) and i > 0):
            signature = [ln.strip() for ln in lines[i + 1 :] if ln.strip()]
            lines = lines[:i]
            break
    if not signature:
        signature, lines = _trailing_signature(lines)
    # The greeting: drop it where it opens the message, keep the rest of its line.
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines:
        rest = _GREETING.sub("", lines[0], count=1)
        if rest != lines[0]:
            lines[0] = rest
    body = "\n".join(_SPACES.sub(" ", ln).strip() for ln in lines)
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    return CleanText(body=body, signature=tuple(signature[:6]))


def strip_subject_prefixes(subject: str) -> str:
    """`Re: R: Fwd: I: problema` → `problema`."""
    return re.sub(r"^\s*(?:(?:re|r|fw|fwd|i|inoltra|aw|sv|rif)\s*(?:\[\d+\])?\s*:\s*)+", "", subject, flags=re.I).strip()
