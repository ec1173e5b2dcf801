"""What the desk's ticket page shows beside the ticket's own record: each recording with its transcript.

Pure functions of the `TicketView` (no storage): a recording attachment is paired with the latest `transcribed`
event whose `recording` is its SHA-256; the event's words carry their confidence and, since the event stores
`times`, their start and end in the recording, so the page shades unsure words and seeks the audio to one
(`static/transcript.js`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

WORD_THRESHOLD = 0.6  # a word the engine is less sure of than this is shaded for the operator to listen to


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float
    start: float | None
    end: float | None

    @property
    def unsure(self) -> bool:
        return self.confidence < WORD_THRESHOLD


@dataclass(frozen=True)
class Recording:
    sha256: str
    filename: str
    question: str | None
    text: str | None  # None: not transcribed yet
    confidence: float | None
    silent: bool
    words: tuple[Word, ...]


def _words(data: dict) -> tuple[Word, ...]:
    words, times = data.get("words") or [], data.get("times") or []
    out = []
    for i, w in enumerate(words):
        if not isinstance(w, (list, tuple)) or len(w) < 2:
            continue
        start, end = (times[i] + [None, None])[:2] if i < len(times) and isinstance(times[i], list) else (None, None)
        try:
            out.append(Word(str(w[0]), float(w[1]), float(start) if start is not None else None, float(end) if end is not None else None))
        except (TypeError, ValueError):
            continue
    return tuple(out)


def recordings(ticket) -> tuple[Recording, ...]:
    latest: dict[str, dict] = {}
    for e in ticket.events:  # in order: a later transcription of the same recording replaces the earlier one
        if e.kind == "transcribed" and e.data.get("recording"):
            latest[e.data["recording"]] = e.data
    out = []
    for m in ticket.messages:
        for a in m.attachments:
            if a.kind != "recording" or not a.sha256:
                continue
            d = latest.get(a.sha256)
            question = (d or {}).get("question") or (a.filename.removeprefix("answer-").rsplit(".", 1)[0] if a.filename.startswith("answer-") else None)
            out.append(Recording(
                a.sha256, a.filename, question, (d or {}).get("text") if d else None,
                float(d["confidence"]) if d and d.get("confidence") is not None else None,
                bool(d and d.get("silent")), _words(d or {}),
            ))
    return tuple(out)


# The answer of a call each extracted field comes from: its recording is what the operator plays to check it.
FIELD_QUESTION = {"reporter_name": "name", "asset": "asset", "anomaly": "anomaly", "urgency": "urgent"}


@dataclass(frozen=True)
class Check:
    name: str
    value: str | None
    source: str | None
    confidence: float
    recording: Recording | None


def checks(ticket, recs: tuple[Recording, ...]) -> tuple[Check, ...]:
    """Every low-confidence field with its evidence: the recording of the answer it came from, if any."""
    by_question = {r.question: r for r in recs}
    return tuple(
        Check(f.name, f.value, f.source, f.confidence, by_question.get(FIELD_QUESTION.get(f.name, f.name.removeprefix("transcript_"))))
        for f in ticket.fields if f.check
    )


def minutes_left(due: datetime | None, now: datetime | None = None) -> int | None:
    """Whole minutes until `due` (negative once past); stored times are UTC."""
    if due is None:
        return None
    now = now or datetime.now(timezone.utc)
    if due.tzinfo is None:
        due = due.replace(tzinfo=timezone.utc)
    return int((due - now).total_seconds() // 60)


def ticket_page_context(ticket) -> dict:
    recs = recordings(ticket)
    return {
        "recordings": recs, "word_threshold": WORD_THRESHOLD, "checks": checks(ticket, recs), "minutes_left": minutes_left,
        "urgencies": ("low", "normal", "high", "critical"),
    }
