"""Field extraction: from a contact to the three facts of a ticket (who, what, the anomaly) and its urgency.

Extraction is a pipeline of named steps declared as data (`DEFAULT_PIPELINE`); each step is a small function
that reads the contact and the directory and writes fields on an `Extraction`. A step that cannot decide
leaves its field empty with confidence 0: it never invents. Every field carries where it came from
(`source`) and how sure the step is (`confidence`, 0–1), so an operator sees at a glance what to check.

The same steps read every channel: a mail's text, a form's fields, and a call's answers once transcribed
(`transcription.call_contact`); `interpret_answer` runs one step on one answer for the IVR's confirmation.
Italian, French and English: spoken-name phrases, number words and synonym classes (`vocabulary`), negated
urgency cues.

Sources: directory, inventory, header, signature, body, transcript, form, caller_id, caller (confirmed by the
caller when read back), dtmf, operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from rapidfuzz import fuzz

from .contact import Answer, Channel, Contact
from .directory import DirAsset, Directory, DirUser, asset_words, stems
from .vocabulary import KINDS
from .people import name_words
from .text import CleanText, clean, fold, guess_language, strip_subject_prefixes

FIELD_NAMES = ("reporter_name", "reporter_email", "reporter_phone", "asset", "anomaly", "urgency")
ANOMALY_MAX_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Field:
    value: str | None
    confidence: float
    source: str | None

    @classmethod
    def empty(cls) -> Field:
        return cls(None, 0.0, None)


@dataclass
class Extraction:
    """The working state of one contact's extraction, and its result."""

    contact: Contact
    directory: Directory
    fields: dict[str, Field] = field(default_factory=lambda: {n: Field.empty() for n in FIELD_NAMES})
    user: DirUser | None = None
    asset: DirAsset | None = None
    asset_id: int | None = None
    asset_criticality: str | None = None
    language: str = "it"
    cleaned: CleanText | None = None
    office: str | None = None  # where the reporter works, as said ("sono Luca Ferrari dei tributi") or in the directory

    def set(self, name: str, value: str | None, confidence: float, source: str) -> None:
        if value is None or not str(value).strip():
            return
        current = self.fields[name]
        if current.value is None or confidence > current.confidence:
            self.fields[name] = Field(str(value).strip(), round(min(1.0, max(0.0, confidence)), 3), source)

    @property
    def subject(self) -> str:
        return strip_subject_prefixes(self.contact.subject or "")


Step = Callable[[Extraction], None]


# -- step: clean the text ---------------------------------------------------------------------------------------
def clean_text(x: Extraction) -> None:
    """Remove quoted replies, signatures and greetings; guess the language when the channel did not say."""
    x.cleaned = clean(x.contact.text or "")
    x.language = x.contact.language or guess_language(f"{x.subject}\n{x.cleaned.body}")


# -- step: identify the reporter -------------------------------------------------------------------------------
_NAME_WORD = r"[A-ZÀ-Ý][a-zà-ÿ'’]+(?:-[A-ZÀ-Ý][a-zà-ÿ'’]+)?"
_PARTICLE = r"(?:de|di|da|del|della|dal|van|von|la|lo|De|Di|Da|Del|Della|La|Lo)"
_CAP_NAME = rf"{_NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_NAME_WORD}){{0,2}}"
_STRONG_PHRASE = re.compile(
    r"\b(?:mi chiamo|il mio nome [eè]|my name is|nome e cognome:?|name:|je m'appelle|je m’appelle|mon nom est|nom et prénom:?|nom:)\s+(.{2,60})",
    re.I,
)
_WEAK_PHRASE = re.compile(rf"\b(?:[Ss]ono|[Tt]his is|I am|I'm|[Ss]criv[eo] |[Jj]e suis|[Ii]ci|[Cc]'est)\s*({_CAP_NAME})")
# Transcripts have no capitals: "sono giulia bianchi dell'anagrafe" names someone only if the directory knows them.
_LOWER_PHRASE = re.compile(r"\b(?:sono|this is|i am|i'm|parla|qui [eè]|je suis|ici|c'est|moi c'est)\s+([a-zà-ÿ']+(?:\s+[a-zà-ÿ']+){0,2})")
# Words that end a name spoken or written after "mi chiamo…" / "my name is…" / "je m'appelle…".
_NAME_STOP = frozenset(
    "sono e ed and from of dell della del dal dalla dello degli i i'm im sto ho vi ti con per the da al in "
    "dall dall' dell' dalla' ufficio office dipendente from calling chiamo "
    "et du des de l' d' au aux je j'ai suis travaille appelle bureau service at with who".split()
)

# -- a name said in an answer: "mi chiamo giorgio fontana", "sono paola marino dell'ufficio tecnico" --------
_SPOKEN_OPENING = re.compile(
    r"^(?:(?:buon\s?giorno|buona\s?sera|buon\s?pomeriggio|salve|ciao|allora|ecco|si|sì|pronto|bon\s?jour|bon\s?soir|salut|oui|allo|allô"
    r"|hello|hi|hey|good (?:morning|afternoon|evening)|yes|yeah|well|so)\b[\s,.!]*)+",
    re.I,
)
_SPOKEN_PHRASE = re.compile(
    r"^(?:sono io|c'est moi|it's me|mi chiamo|il mio nome (?:è|e)|io sono|sono|parla|qui (?:è|e|parla)|je m['’ ]?appelle|mon nom (?:est|c'est)|moi c'est|je suis"
    r"|c'est|ici|my name is|my name's|this is|i am|i'm|it's|it is|name is)\b[\s,:]*",
    re.I,
)
_SPOKEN_TITLE = re.compile(
    r"^(?:(?:il |la )?(?:dottor(?:e|essa)?|dott\.?(?:ssa)?|ingegner(?:e)?|ing\.?|avvocat[oa]|geometra|ragionier(?:e|a)?"
    r"|signor(?:a|e)?|sig\.?(?:ra)?|madame|monsieur|mademoiselle|mme|mr|mrs|ms|miss|doctor|dr\.?)\s+)+",
    re.I,
)
# Where a spoken name ends and the department (a hint) begins: "dell'ufficio tributi", "de l'urbanisme", "from IT".
_DEPARTMENT = re.compile(
    r"\s+(?:dell['’ ]\s*|della |dello |del |dei |degli |delle |dall['’ ]\s*|dalla |dal |all['’ ]\s*|alla |al |presso (?:l['’ ]\s*|la |il )?"
    r"|di (?:la |lo |il |i |gli |le |l['’ ]\s*)|da (?:la |lo |il |l['’ ]\s*)"
    r"|de l['’ ]\s*|de la |du |des |d['’ ]\s*|au |à la |a la |from (?:the )?|of the |at the |in the |with the |in |at |of |dans l['’ ]\s*|chez |"
    r"(?=(?:ufficio|servizio|settore|segreteria|uffici|service|bureau|office|department|dipartimento|direzione|direction|polizia)\b))(.+)$",
    re.I,
)
_SPOKEN_TRAILER = re.compile(r"[\s,]+(?:speaking|here|calling|à l['’ ]appareil|al telefono|che parla|qui parle)$", re.I)
_SPOKEN_END = re.compile(r"\s+(?:e|ed|et|and|ho|avrei|vorrei|chiamo|j'ai|je|i|i'm|calling|che|qui|who)\s.*$", re.I)
_OFFICE_WORDS = re.compile(r"^(?:(?:l['’ ]\s*)?(?:ufficio|servizio|settore|uffici|service|bureau|office|department)\s+(?:di |de |of |du |della |del |dell['’ ]\s*)?)", re.I)


# The phrases again, as words, to recognise them misheard ("il m'appelci", "mi chiamano"): same number of
# words, near enough letter for letter.
_PHRASE_WORDS = tuple(
    p.split() for p in (
        "mi chiamo", "il mio nome è", "je m'appelle", "mon nom est", "my name is", "this is", "je suis", "io sono",
    )
)


def _strip_misheard_phrase(said: str) -> str:
    words = said.split()
    for phrase in _PHRASE_WORDS:
        n = len(phrase)
        if len(words) > n and fuzz.ratio(fold(" ".join(words[:n])), fold(" ".join(phrase))) >= 75:
            return " ".join(words[n:])
    return said


@dataclass(frozen=True, slots=True)
class SpokenName:
    name: str  # as said, capitalised: "Paola Marino"
    department: str | None  # what followed it as a hint: "tecnico", "tributi", "urbanisme"


def spoken_name(text: str, directory: Directory | None = None) -> SpokenName | None:
    """The name in a spoken (or typed) answer to "what is your name?", without the phrase around it.

    Greetings, "mi chiamo / sono / je m'appelle / c'est / my name is / this is" and titles go; the name ends at
    the department ("dell'ufficio tributi", "de l'urbanisme", "from accounting"), which is kept as a hint, or
    at a word that starts a sentence. When the directory knows the first two or three words, they are the
    name. Works on transcripts without capitals or punctuation.
    """
    said = re.sub(r"\s+", " ", (text or "").strip().strip(".,;:!?")).strip()
    said = _SPOKEN_OPENING.sub("", said)
    stripped = _SPOKEN_PHRASE.sub("", said, count=1)
    if stripped == said and not (directory is not None and _directory_prefix(directory, said)):
        stripped = _strip_misheard_phrase(said)  # no phrase heard right, and no known name first
    said = stripped
    said = _SPOKEN_TITLE.sub("", said).strip(" ,.")
    said = _SPOKEN_TRAILER.sub("", said).strip(" ,.")
    if not said:
        return None
    department = None
    if directory is not None and (known := _directory_prefix(directory, said)):
        rest = said[len(known):].strip(" ,.")
        m = _DEPARTMENT.match(" " + rest) if rest else None
        department = (m.group(1) if m else rest) or None
        name = known
    else:
        m = _DEPARTMENT.search(said)
        if m and m.start() > 0:
            department, said = m.group(1), said[: m.start()]
        said = _SPOKEN_END.sub("", said)
        if m := re.match(r"^([^,.;]+?)\s*[,.;]", said):  # "sarah johnson, ivana asked me to call": the name ends there
            if len(m.group(1).split()) >= 2:
                said = m.group(1)
        words = [w for w in re.split(r"[\s,]+", said) if w]
        cut = []
        for w in words:
            if fold(w) in _NAME_STOP and cut and fold(w) not in {"de", "di", "da", "la", "lo", "van", "von", "del", "della"}:
                break
            cut.append(w)
        name = " ".join(cut[:4])
        if any(fold(w) in _FUNCTION_WORDS for w in cut[:4]):
            return None  # words no name is made of: a garbled transcript ("vi chiaro ma dire lo sì"), not a name
    if department:
        department = _OFFICE_WORDS.sub("", department.strip(" ,.")).strip() or None
    name = " ".join("-".join(p[:1].upper() + p[1:] for p in w.split("-")) for w in name.split())
    if not name or not _plausible_name(name) or not re.search(r"[^\W\d_]{2}", name) or fold(name) in _PRONOUNS:
        return None
    return SpokenName(name, department)


_FUNCTION_WORDS = frozenset(
    "ma lo che non si no ho ha e il un una per con mi ti vi ci gli sì perché quando come "
    "et est pas les une pour avec je tu il elle ne que qui oui mais "
    "the and is not to of it yes but with for have has my".split()
)
_PRONOUNS = frozenset("io me moi lui lei him her myself sempre io stesso ca cela ok okay bene nessuno personne nobody".split())
_ARTICLES = frozenset("il lo la le i gli un una uno les un une the a".split())
_TITLE = re.compile(r"^(?:(?:dott|dr|ing|avv|geom|rag|arch|prof|sig|mr|mrs|ms)\.?(?:ssa|ra|a)?\.?\s+)+", re.I)
_CAP_NAME_RE = re.compile(rf"^({_CAP_NAME})\b")
_SIG_NAME = re.compile(rf"^({_CAP_NAME})$")
_NOT_NAMES = frozenset(fold(w) for w in ("Ufficio", "Servizio", "Settore", "Direzione", "Comune", "Regione", "Help", "Desk", "Team"))
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE_RE = re.compile(r"(?<![\w+])(?:\+|00)?(?:\d[\s./-]?){8,14}\d(?!\w)")


def _plausible_name(name: str) -> bool:
    words = name.split()
    return 1 <= len(words) <= 4 and "@" not in name and not any(fold(w) in _NOT_NAMES for w in words)


def identify_reporter(x: Extraction) -> None:
    """Who wrote or called: the directory by email, then phone, then a name given (form, transcript, header,
    a "mi chiamo… / sono… / my name is…" phrase, the signature), each checked against the directory."""
    c, d = x.contact, x.directory
    contact_source = "form" if "name" in c.answers and c.answers["name"].source == "form" else "header"
    phone_source = "caller_id" if c.channel == "voice" else contact_source
    if c.sender.email:
        x.set("reporter_email", c.sender.email.strip().lower(), 0.95, contact_source)
    if c.sender.phone:
        x.set("reporter_phone", c.sender.phone.strip(), 0.9, phone_source)

    user = d.user_by_email(c.sender.email)
    if user:
        _found(x, user, 1.0)
    elif (user := d.user_by_phone(c.sender.phone)) is not None:
        _found(x, user, 0.9 if c.channel == "voice" else 0.95)

    # (name, confidence when not in the directory, source, may override a phone match, what the directory
    # is searched in: the whole answer for a spoken one, so a misheard phrase around the name costs nothing)
    candidates: list[tuple[str | None, float, str, bool, str]] = []
    department = None
    if (answer := c.answers.get("name")) is not None:
        if answer.source == "caller":
            candidates.append((answer.value.strip(), answer.confidence * 0.9, answer.source, True, answer.value))
        else:
            said = spoken_name(answer.value, d)
            department = said.department if said else None
            candidates.append((said.name if said else None, answer.confidence * 0.9, answer.source, True, answer.value))
    if c.sender.name and _plausible_name(display := _TITLE.sub("", c.sender.name.strip().strip('"'))):
        candidates.append((display, 0.8, "header", False, display))
    text = x.cleaned.body if x.cleaned else c.text
    if m := _STRONG_PHRASE.search(text):
        words = []
        for w in re.split(r"[\s]+", re.split(r"[,.;:\n]", m.group(1), maxsplit=1)[0].strip()):
            # an article after two words starts the sentence, not a surname ("giorgio fontana la stampante")
            if fold(w) in _NAME_STOP or "'" in w or len(words) == 3 or (len(words) >= 2 and fold(w) in _ARTICLES):
                break
            words.append(w)
        if words:
            cap = _CAP_NAME_RE.match(" ".join(words))
            name = cap.group(1) if cap else " ".join(w.capitalize() for w in words)
            candidates.append((name, 0.7 if cap else 0.5, "body", True, name))
    elif m := _WEAK_PHRASE.search(text):
        candidates.append((m.group(1), 0.6, "body", True, m.group(1)))
    elif (m := _LOWER_PHRASE.search(text)) and (hit := _directory_prefix(d, m.group(1))):
        candidates.append((hit, 0.0, "body", True, hit))
    for line in (x.cleaned.signature if x.cleaned else ())[:3]:
        if (m := _SIG_NAME.match(_TITLE.sub("", line))) and _plausible_name(m.group(1)):
            candidates.append((m.group(1), 0.6, "signature", False, m.group(1)))
            break

    for name, confidence, source, stated, searched in candidates:
        hit = d.user_by_name(searched, department=department)
        if hit and searched is not name and name and _stated_before(name, searched, d):
            # The name stated ("sono Sara Johnson") comes before the directory name found, which is someone
            # else the caller speaks of, or a recogniser writing its hints: the stated name is the caller's.
            hit = d.user_by_name(name, department=department)
        if hit and source == "caller":  # read back to the caller and confirmed: certain
            _found(x, hit[0], 1.0)
            x.fields["reporter_name"] = Field(hit[0].name, 1.0, "caller")
        elif hit:
            if x.user is None:
                _found(x, hit[0], round(0.9 * hit[1], 3))
            elif x.user.id == hit[0].id:  # the name confirms the email or phone match
                x.set("reporter_name", x.user.name, 1.0, "directory")
            elif stated and c.sender.email is None:
                # Someone who says who they are, calling from a colleague's phone: the person beats the phone.
                x.fields["reporter_name"] = Field(hit[0].name, round(0.85 * hit[1], 3), "directory")
                x.user = hit[0]
        elif confidence > 0 and name:
            x.set("reporter_name", name, confidence, source)

    x.office = (x.user.department if x.user is not None else None) or department

    if not x.fields["reporter_email"].value and (m := _EMAIL_RE.search(text)):
        x.set("reporter_email", m.group(0).lower(), 0.6, "body")
    if not x.fields["reporter_phone"].value:
        # A signature's number ("Tel. 055 438 2101", "cell. 333 987 6543") before one met in the text.
        for line in x.cleaned.signature if x.cleaned else ():
            if m := _PHONE_RE.search(line):
                x.set("reporter_phone", m.group(0).strip(), 0.7, "signature")
                break
        else:
            if m := _PHONE_RE.search(text):
                x.set("reporter_phone", m.group(0).strip(), 0.6, "body")


def _stated_before(name: str, text: str, d: Directory) -> bool:
    """Whether `name`'s words are in `text` and end before the words of the directory user `text` names."""
    hit = d.match_person(text)
    stated, words = name_words(name), name_words(text)
    for i in range(len(words) - len(stated) + 1):
        if words[i : i + len(stated)] == stated:
            return hit is not None and i + len(stated) <= hit.start
    return False


def _directory_prefix(d: Directory, words: str) -> str | None:
    """The longest run of the first words (3, then 2) that is, all of it, a name in the directory."""
    parts = words.split()
    for n in (3, 2):
        if len(parts) >= n:
            prefix = " ".join(parts[:n])
            hit = d.match_person(prefix, least=0.9)
            if hit is not None and hit.matched == " ".join(name_words(prefix)):
                return prefix
    return None


def _found(x: Extraction, user: DirUser, confidence: float) -> None:
    x.user = user
    x.set("reporter_name", user.name, confidence, "directory")
    if user.email:
        x.set("reporter_email", user.email, confidence * 0.9, "directory")
    if user.phones:
        x.set("reporter_phone", user.phones[0], confidence * 0.8, "directory")


# -- step: match the asset -------------------------------------------------------------------------------------
def match_asset(x: Extraction) -> None:
    """The asset the contact is about: the answer to "which asset?" when there is one, else the subject and
    text, matched against the inventory; an answer that matches nothing is kept as free text."""
    c, d = x.contact, x.directory
    answer = c.answers.get("asset")
    if answer is not None and answer.source == "caller":
        # The IVR read the asset back and the caller confirmed it: its tag, certain.
        hit = d.match_asset(answer.value, fuzzy=False)
        if hit:
            _asset(x, hit, 1.0)
            x.fields["asset"] = Field(f"{hit.asset.tag} {hit.asset.name}", 1.0, "caller")
        else:
            x.set("asset", answer.value, 1.0, "caller")
        return
    if answer is not None:
        hit, weight = _at_the_office(x, d.match_asset(answer.value), answer.value, answer.confidence)
        if hit:
            _asset(x, hit, weight)
            return
    texts = [x.cleaned.body if x.cleaned else c.text]
    if (problem := c.answers.get("anomaly")) is not None:
        texts.append(problem.value)
    # A reply's subject is the old conversation's: what the user writes now comes first.
    replying = x.subject != (c.subject or "").strip()
    hit = d.match_asset("\n".join(t for t in texts if t)) if replying else None
    joined = "\n".join(t for t in (x.subject, *texts) if t)
    hit, weight = _at_the_office(x, hit or d.match_asset(joined), joined, 1.0 if answer is None else 0.8)
    if hit:
        _asset(x, hit, weight)
    elif answer is not None and (hit := d.guess_asset(answer.value)) is not None:
        _asset(x, hit, answer.confidence)  # a word only that asset has, in a half-heard answer: to be checked
    elif answer is not None:
        x.set("asset", answer.value, answer.confidence * 0.5, answer.source)


AT_THE_OFFICE = 0.85  # weight of an asset told by the reporter's office rather than by the words alone


def _at_the_office(x: Extraction, hit, text: str, weight: float) -> tuple:
    """A text that names only a kind of thing ("la stampante" with several printers, "il pc") made precise by
    where the reporter works (the directory's department, or as said: "sono Luca Ferrari dei tributi"): the
    tributi printer, as a desk operator would take it, a little less sure. `(hit, weight)`, hit possibly None."""
    d = x.directory
    if not x.office or (hit is not None and (not _kind_only(hit) or d.says_where(hit.asset, text))):
        return hit, weight
    kinds = {w for w in asset_words(text).split() if w in KINDS}  # every kind said: "stampante multifunzione"
    if not kinds and hit is not None:  # or the one the match stands on, as heard ("stampa")
        kinds = {k for k in KINDS if hit.matched in (k, stems(k))}
    if not kinds:
        return hit, weight  # no kind said: the office alone names nothing
    # "which stampante is at the tributi?", asked of the inventory as words written right
    better = d.match_asset(f"{' '.join(sorted(kinds))} {x.office}", fuzzy=False)
    if better is None or _kind_only(better) or not kinds <= d.kinds_of(better.asset) or (hit is not None and better.asset.tag == hit.asset.tag):
        return hit, weight
    return better, weight * AT_THE_OFFICE


_KIND_STEMS = frozenset(stems(k) for k in KINDS)


def _kind_only(hit) -> bool:
    """A match on the kind of thing alone ("stampante", or its stem "stampa"), which several assets may be."""
    return hit.matched in KINDS or hit.matched in _KIND_STEMS


def _asset(x: Extraction, hit, weight: float) -> None:
    x.asset = hit.asset
    x.asset_id = hit.asset.id
    x.asset_criticality = hit.asset.criticality
    x.set("asset", f"{hit.asset.tag} {hit.asset.name}", hit.confidence * weight, "inventory")


# -- step: extract the anomaly ---------------------------------------------------------------------------------
def extract_anomaly(x: Extraction) -> None:
    """The problem in the user's words: the answer to "what is the problem?", else the cleaned text, with the
    subject in front when the text alone says little."""
    c = x.contact
    if (answer := c.answers.get("anomaly")) is not None and answer.value.strip():
        x.set("anomaly", answer.value.strip()[:ANOMALY_MAX_CHARS], answer.confidence, answer.source)
        return
    body = x.cleaned.body if x.cleaned else (c.text or "").strip()
    subject = x.subject
    source = "transcript" if c.channel == "voice" else ("form" if c.channel == "web" else "body")
    if len(body) >= 20:
        x.set("anomaly", body[:ANOMALY_MAX_CHARS], 0.8, source)
    elif body or subject:
        joined = f"{subject}: {body}" if subject and body and fold(subject) not in fold(body) else (body or subject)
        x.set("anomaly", joined[:ANOMALY_MAX_CHARS], 0.5, source if body else "header")


# -- step: set the urgency -------------------------------------------------------------------------------------
_URGENCY_CUES: tuple[tuple[str, re.Pattern], ...] = tuple(
    (level, re.compile(r"\b(?:" + "|".join(cues) + r")\b"))
    for level, cues in (
        ("low", [r"non (?:e )?(?:piu )?urgente", r"non c'e fretta", r"nessuna fretta", r"con calma", r"quando potete",
                 r"quando possibile", r"not urgent", r"no rush", r"when you (?:can|have time)", r"low priority",
                 r"non bloccante", r"pas (?:tres |si )?(?:urgent|presse)e?", r"rien ne presse", r"sans urgence",
                 r"quand vous (?:pourrez|pouvez|aurez (?:le temps|un moment))", r"pas bloquant", r"no hurry",
                 r"whenever you can", r"nothing urgent", r"niente di urgente", r"rien d'urgent"]),
        ("critical", [r"tutt[io] gli uffici", r"tutto l'ufficio", r"(?:l')?intero ufficio", r"tutto il (?:palazzo|piano|settore|servizio)",
                      r"tutta la sede", r"tutti i colleghi", r"nessuno (?:riesce|puo|di noi)", r"tutti bloccati",
                      r"siamo tutti fermi", r"(?:siamo )?fermi tutti", r"sportell[oi] (?:chius[oi]|ferm[oi])", r"whole office", r"entire office",
                      r"all (?:users|offices|of us|staff)", r"nobody can", r"no one can", r"everyone is blocked",
                      r"servizio (?:completamente )?(?:bloccato|fermo|down)", r"l'ufficio e bloccato",
                      r"tout le (?:bureau|service|batiment|monde|personnel|etage)", r"tous les (?:bureaux|services|collegues|postes|agents|utilisateurs)",
                      r"personne ne peut", r"plus personne ne", r"nous sommes tous bloques", r"tous bloques",
                      r"service (?:completement )?(?:bloque|arrete|en panne)", r"(?:guichets?|accueil) (?:ferme|bloque)s?",
                      r"siamo tutti bloccati", r"we are all blocked", r"the whole (?:team|department|building|floor)"]),
        ("high", [r"urgente", r"urgentissim[oa]", r"urgenza", r"con urgenza", r"bloccat[oai]", r"bloccante",
                  r"non (?:posso|riesco a) lavorare", r"impossibile lavorare", r"ferm[oa] da", r"scadenza (?:oggi|domani)",
                  r"entro oggi", r"urgent(?:ly)?", r"asap", r"as soon as possible", r"blocked", r"blocking",
                  r"can ?not work", r"can't work", r"deadline (?:today|tomorrow)", r"stuck",
                  r"urgente?s?", r"urgence", r"bloquee?s?", r"bloquant", r"je ne (?:peux|peut) (?:pas|plus) travailler",
                  r"impossible de travailler", r"au plus vite", r"des que possible", r"echeance (?:aujourd'hui|demain)"]),
    )
)
# A cue under a negation ("non è urgentissimo", "ce n'est pas urgent", "not urgent at all", "niente di urgente"):
# the negation, then at most three small words, then the cue.
_NEGATORS = frozenset("non not pas no nessuna nessun niente nothing rien never mai isn't isnt aucune aucun sans senza without nemmeno".split())
_NEGATION_FILLERS = frozenset(
    "e e' est is 's very molto cosi proprio affatto tanto troppo particolarmente piu plus tres si so that really ancora encore "
    "c ce n it this di d at all per poi vraiment davvero ancora too".split()
)


def _negated(text: str, start: int) -> bool:
    words = re.findall(r"[\w']+", text[max(0, start - 60) : start])
    for w in reversed(words[-4:]):
        if w in _NEGATORS or w.endswith("n't"):
            return True
        if w not in _NEGATION_FILLERS:
            return False
    return False


def set_urgency(x: Extraction) -> None:
    """Urgency from the desk's question ("is the whole office blocked?") or from cues in the text (Italian,
    French and English); a cue said under a negation ("non è urgentissimo", "pas urgent", "not urgent at all")
    counts as low, and a low cue wins over the plain ones. No cue: left for the operator."""
    c = x.contact
    answered = "dtmf" if c.channel == "voice" else "form"
    if c.urgent:
        x.set("urgency", "critical", 0.9, answered)
        return
    text = fold(f"{x.subject}\n{x.cleaned.body if x.cleaned else c.text}")
    found: set[str] = set()
    for level, cue in _URGENCY_CUES:
        for m in cue.finditer(text):
            if level != "low" and _negated(text, m.start()):
                if level == "high":
                    found.add("low")
                continue
            found.add(level)
    for level in ("low", "critical", "high"):
        if level in found:
            x.set("urgency", level, 0.8, "body" if c.channel != "voice" else "transcript")
            return
    if c.urgent is False:  # asked and told "no": an ordinary problem
        x.set("urgency", "normal", 0.8, answered)


STEPS: dict[str, Step] = {
    "clean_text": clean_text,
    "identify_reporter": identify_reporter,
    "match_asset": match_asset,
    "extract_anomaly": extract_anomaly,
    "set_urgency": set_urgency,
}
DEFAULT_PIPELINE: tuple[str, ...] = ("clean_text", "identify_reporter", "match_asset", "extract_anomaly", "set_urgency")


def check_pipeline(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise ValueError(f"unknown extraction step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}")
    return tuple(names)


def extract(contact: Contact, directory: Directory, pipeline: tuple[str, ...] = DEFAULT_PIPELINE) -> Extraction:
    x = Extraction(contact, directory)
    for name in pipeline:
        STEPS[name](x)
    return x


# -- one answer, at once: the IVR's confirmation ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Interpretation:
    """The core's reading of one answer. `value` is set only when the directory or the inventory knows it (the
    asset's tag, the person's directory name): only then is there something to read back and confirm."""

    value: str | None  # asset: its tag ("PRN-0210"); name: the directory's name ("Paola Marino")
    confidence: float  # 0–1, the same figure the ticket's field would get
    source: str  # "inventory" | "directory" | "transcript"
    spoken: str | None = None  # what to say back: the asset's name, the person's name; else the words heard
    asset_id: int | None = None
    tag: str | None = None
    user_id: int | None = None

    @property
    def spoken_name(self) -> str | None:
        return self.spoken


def interpret_answer(question: str, text: str, directory: Directory, language: str | None = None,
                     context: dict[str, str] | None = None) -> Interpretation:
    """Read one answer's text with the same steps a whole contact goes through: "asset" with `match_asset`,
    "name" with `identify_reporter` (the spoken-name phrases included); other questions are kept as said.

    A pure function of its arguments, safe to call from any thread: the IVR's confirmation port
    (`ChannelContext.interpret`, bound to the directory snapshot in gateway/) calls it while the caller waits.
    `interpret_answer("asset", "la stampante del secondo piano", d, "it")` →
    `Interpretation(value="PRN-0210", spoken="Stampante multifunzione piano 2", confidence=0.77, …)`.
    `context`: the call's earlier answers; {"name": …} gives the asset step the reporter's office.
    """
    said = (text or "").strip()
    if question not in ("asset", "name") or not said:
        return Interpretation(None, 0.0, "transcript", said or None)
    answers = {question: Answer(said, "transcript", 1.0)}
    name = (context or {}).get("name") if question == "asset" else None
    if name and name.strip():
        answers["name"] = Answer(name.strip(), "transcript", 1.0)
    contact = Contact(channel=Channel.VOICE, external_id="answer", language=language, answers=answers)
    if question == "asset":
        x = extract(contact, directory, ("clean_text", "identify_reporter", "match_asset") if "name" in answers else ("clean_text", "match_asset"))
        f, a = x.fields["asset"], x.asset
        if a is None:
            return Interpretation(None, 0.0, "transcript", said)
        return Interpretation(a.tag, f.confidence, "inventory", a.name, a.id, a.tag)
    x = extract(contact, directory, ("clean_text", "identify_reporter"))
    f = x.fields["reporter_name"]
    if x.user is None:
        heard = spoken_name(said, directory)
        return Interpretation(None, 0.0, "transcript", heard.name if heard else said)
    return Interpretation(x.user.name, f.confidence, "directory", x.user.name, user_id=x.user.id)

