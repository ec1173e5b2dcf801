"""Field extraction: from a contact to the three facts of a ticket (who, what, the anomaly) and its urgency.

Extraction is a pipeline of named steps declared as data (`DEFAULT_PIPELINE`); each step is a small function
that reads the contact and the directory and writes fields on an `Extraction`. A step that cannot decide
leaves its field empty with confidence 0: it never invents. Every field carries where it came from
(`source`) and how sure the step is (`confidence`, 0–1), so an operator sees at a glance what to check.

Sources: directory, inventory, header, signature, body, transcript, form, caller_id, operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from .contact import Contact
from .directory import Directory, DirUser
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
    asset_id: int | None = None
    asset_criticality: str | None = None
    language: str = "it"
    cleaned: CleanText | None = None

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
_STRONG_PHRASE = re.compile(r"\b(?:mi chiamo|il mio nome [eè]|my name is|nome e cognome:?|name:)\s+(.{2,60})", re.I)
_WEAK_PHRASE = re.compile(rf"\b(?:[Ss]ono|[Tt]his is|I am|I'm|[Ss]criv[eo] )\s*({_CAP_NAME})")
# Transcripts have no capitals: "sono giulia bianchi dell'anagrafe" names someone only if the directory knows them.
_LOWER_PHRASE = re.compile(r"\b(?:sono|this is|i am|i'm|parla|qui [eè])\s+([a-zà-ÿ']+(?:\s+[a-zà-ÿ']+){0,2})")
# Words that end a name spoken or written after "mi chiamo…" / "my name is…".
_NAME_STOP = frozenset(
    "sono e ed and from of dell della del dal dalla dello degli i i'm im sto ho vi ti con per the da al in "
    "dall dall' dell' dalla' ufficio office dipendente from calling chiamo".split()
)
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

    # (name, confidence when not in the directory, source, may override a phone match)
    candidates: list[tuple[str, float, str, bool]] = []
    if (answer := c.answers.get("name")) is not None:
        candidates.append((_TITLE.sub("", answer.value.strip()), answer.confidence * 0.9, answer.source, True))
    if c.sender.name and _plausible_name(display := _TITLE.sub("", c.sender.name.strip().strip('"'))):
        candidates.append((display, 0.8, "header", False))
    text = x.cleaned.body if x.cleaned else c.text
    if m := _STRONG_PHRASE.search(text):
        words = []
        for w in re.split(r"[\s]+", re.split(r"[,.;:\n]", m.group(1), maxsplit=1)[0].strip()):
            if fold(w) in _NAME_STOP or "'" in w or len(words) == 3:
                break
            words.append(w)
        if words:
            cap = _CAP_NAME_RE.match(" ".join(words))
            candidates.append((cap.group(1) if cap else " ".join(w.capitalize() for w in words), 0.7 if cap else 0.5, "body", True))
    elif m := _WEAK_PHRASE.search(text):
        candidates.append((m.group(1), 0.6, "body", True))
    elif (m := _LOWER_PHRASE.search(text)) and (hit := _directory_prefix(d, m.group(1))):
        candidates.append((hit, 0.0, "body", True))
    for line in (x.cleaned.signature if x.cleaned else ())[:3]:
        if (m := _SIG_NAME.match(_TITLE.sub("", line))) and _plausible_name(m.group(1)):
            candidates.append((m.group(1), 0.6, "signature", False))
            break

    for name, confidence, source, stated in candidates:
        hit = d.user_by_name(name)
        if hit:
            if x.user is None:
                _found(x, hit[0], round(0.9 * hit[1], 3))
            elif x.user.id == hit[0].id:  # the name confirms the email or phone match
                x.set("reporter_name", x.user.name, 1.0, "directory")
            elif stated and c.sender.email is None:
                # Someone who says who they are, calling from a colleague's phone: the person beats the phone.
                x.fields["reporter_name"] = Field(hit[0].name, round(0.85 * hit[1], 3), "directory")
                x.user = hit[0]
        elif confidence > 0:
            x.set("reporter_name", name, confidence, source)

    if not x.fields["reporter_email"].value and (m := _EMAIL_RE.search(text)):
        x.set("reporter_email", m.group(0).lower(), 0.6, "body")
    if not x.fields["reporter_phone"].value and (m := _PHONE_RE.search(text)):
        x.set("reporter_phone", m.group(0).strip(), 0.6, "body")


def _directory_prefix(d: Directory, words: str) -> str | None:
    """The longest run of the first words (3, then 2) that is a name in the directory."""
    parts = words.split()
    for n in (3, 2):
        if len(parts) >= n and d.user_by_name(" ".join(parts[:n]), cutoff=90):
            return " ".join(parts[:n])
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
    if answer is not None:
        hit = d.match_asset(answer.value)
        if hit:
            _asset(x, hit, answer.confidence)
            return
    texts = [x.subject, x.cleaned.body if x.cleaned else c.text]
    if (problem := c.answers.get("anomaly")) is not None:
        texts.append(problem.value)
    hit = d.match_asset("\n".join(t for t in texts if t))
    if hit:
        _asset(x, hit, 1.0 if answer is None else 0.8)
    elif answer is not None:
        x.set("asset", answer.value, answer.confidence * 0.5, answer.source)


def _asset(x: Extraction, hit, weight: float) -> None:
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
                 r"non bloccante"]),
        ("critical", [r"tutt[io] gli uffici", r"tutto l'ufficio", r"(?:l')?intero ufficio", r"tutto il (?:palazzo|piano|settore|servizio)",
                      r"tutta la sede", r"tutti i colleghi", r"nessuno (?:riesce|puo|di noi)", r"tutti bloccati",
                      r"siamo tutti fermi", r"(?:siamo )?fermi tutti", r"sportell[oi] (?:chius[oi]|ferm[oi])", r"whole office", r"entire office",
                      r"all (?:users|offices|of us|staff)", r"nobody can", r"no one can", r"everyone is blocked",
                      r"servizio (?:completamente )?(?:bloccato|fermo|down)", r"l'ufficio e bloccato"]),
        ("high", [r"urgente", r"urgentissim[oa]", r"urgenza", r"con urgenza", r"bloccat[oai]", r"bloccante",
                  r"non (?:posso|riesco a) lavorare", r"impossibile lavorare", r"ferm[oa] da", r"scadenza (?:oggi|domani)",
                  r"entro oggi", r"urgent(?:ly)?", r"asap", r"as soon as possible", r"blocked", r"blocking",
                  r"can ?not work", r"can't work", r"deadline (?:today|tomorrow)", r"stuck"]),
    )
)


def set_urgency(x: Extraction) -> None:
    """Urgency from the desk's question ("is the whole office blocked?") or from cues in the text (Italian and
    English); a negated cue ("non urgente") wins over the plain one. No cue: left for the operator."""
    c = x.contact
    answered = "dtmf" if c.channel == "voice" else "form"
    if c.urgent:
        x.set("urgency", "critical", 0.9, answered)
        return
    text = fold(f"{x.subject}\n{x.cleaned.body if x.cleaned else c.text}")
    for level, cue in _URGENCY_CUES:
        if cue.search(text):
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

