"""What a caller's answer says, at once, while the caller waits: the IVR's confirmation step ("I understood …").

The flow asks `Understand(question, recording)` right after the name and the asset answers; the call's session
answers it with this object's reading, an `Understood`. Two ports do the work, both given from outside:
- `transcribe(path, language, question) -> text`: a quick transcriber (`channels/voice/stt`), the same engines
  the transcription jobs use;
- `interpret(question, text, language) -> reading`: the core's own asset and name steps
  (`ticketing/extraction.py`), handed to the channel by `gateway/` through `ChannelContext.interpret`, so a
  spoken answer is matched exactly as an email or a form field would be.

Nothing here is an error the caller hears: no model for the language, an empty transcript, a reading that is no
known asset or user, all come back as "nothing understood", and the call goes on without asking back. The
recording still has its transcription job, which fills the field in later.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from ticketing.contact import BlobRef

from .flow import Understood

log = logging.getLogger("channels.voice.understand")

Transcribe = Callable[[Path, str, str], str]
Interpret = Callable[[str, str, str], Any]


class Understander:
    """`understander(question, recording, language) -> Understood`; thread-safe, called by many calls at once."""

    def __init__(self, transcribe: Transcribe, interpret: Interpret, blobs):
        self.transcribe, self.interpret, self.blobs = transcribe, interpret, blobs
        self._no_model: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, question: str, recording: BlobRef, language: str) -> Understood:
        if language in self._no_model:
            return Understood(question)
        try:
            text = self.transcribe(self.blobs.path(recording.sha256), language, question)
        except LookupError as e:  # no engine for this language here: said once, then never tried again
            with self._lock:
                if language not in self._no_model:
                    self._no_model.add(language)
                    log.warning("no confirmation of answers in %s: %s", language, e)
            return Understood(question)
        if not text or not text.strip():
            return Understood(question)
        reading = self.interpret(question, text, language)
        understood = as_understood(question, reading)
        log.info("the %s answer %r was taken for %r (%.2f)", question, text, understood.value, understood.confidence)
        return understood


def as_understood(question: str, reading: Any) -> Understood:
    """The interpret port's answer as the flow's event: an `Understood`, an object with `value`, `spoken`
    (or `name`) and `confidence`, or None."""
    if reading is None:
        return Understood(question)
    if isinstance(reading, Understood):
        return reading
    value = getattr(reading, "value", None)
    spoken = getattr(reading, "spoken", None) or getattr(reading, "name", None) or value
    confidence = float(getattr(reading, "confidence", 0.0) or 0.0)
    return Understood(question, value, spoken, confidence) if value else Understood(question)


def quick_transcriber(stt_settings) -> Transcribe:
    """A transcriber for answers of a few seconds, engines loaded once and shared by the calls of a process."""
    from .stt.base import EngineError
    from .stt.transcriber import Transcriber

    transcriber = Transcriber(stt_settings)

    def transcribe(path: Path, language: str, question: str) -> str:
        try:
            return transcriber.transcribe(path, language).text
        except EngineError as e:
            raise LookupError(str(e)) from e

    return transcribe


def from_context(ctx, settings) -> Understander | None:
    """The channel's understander, when the gateway gave an interpret port and confirmation is on."""
    interpret = getattr(ctx, "interpret", None)
    if interpret is None or not settings.ivr.confirm:
        return None
    return Understander(quick_transcriber(settings.stt), interpret, ctx.blobs)
