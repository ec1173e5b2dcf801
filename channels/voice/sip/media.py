"""What a SIP call plays and records, resolved to files before it reaches the pjsua2 thread.

The flow's media actions name prompts (`config/prompts/<lang>/<name>.wav`) or carry text to speak
(`flow.Text`, e.g. the caller's name in "are you …?"). Turning them into files may read the disk and run
espeak-ng, so it happens on a worker thread; the pjsua2 thread only gets `Step`s holding paths. Nothing here
imports pjsua2.

Also here: the caller id taken from an INVITE's From header (RFC 3261 §20.20: the user part of the URI, or
the display name when it is the number a PBX puts there), and the tone played before each recording.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import struct
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

from .. import prompts as prompt_files
from ..calls import CallSession
from ..flow import Action, Gather, Hangup, Play, Prompt, Record, SayDigits, Text, Transfer

log = logging.getLogger("channels.voice.sip")

BEEP = "beep.wav"


# -- what the pjsua2 thread carries out -------------------------------------------------------------------------
@dataclass(frozen=True)
class PlayStep:
    files: tuple[Path, ...]


@dataclass(frozen=True)
class GatherStep:
    files: tuple[Path, ...]  # interrupted by the first key
    max_digits: int
    timeout: float  # from the end of the prompts, and between keys
    finish_on_key: str


@dataclass(frozen=True)
class RecordStep:
    question: str
    files: tuple[Path, ...]  # the question, then the tone
    path: Path  # where the answer is written
    max_seconds: int
    finish_on_key: str


@dataclass(frozen=True)
class TransferStep:
    target: str


@dataclass(frozen=True)
class HangupStep:
    pass


Step = PlayStep | GatherStep | RecordStep | TransferStep | HangupStep


class PromptFiles:
    """Prompt names and texts → WAV files, for one process. Thread-safe; synthesised texts are cached."""

    def __init__(self, prompts_dir: Path, cache_dir: Path):
        self.prompts_dir, self.cache_dir = Path(prompts_dir), Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.beep = self.cache_dir / BEEP
        if not self.beep.exists():
            write_tone(self.beep)

    def resolve(self, prompts: tuple[Prompt, ...], language: str) -> tuple[Path, ...]:
        out = []
        for p in prompts:
            path = self._text(p.text, language) if isinstance(p, Text) else prompt_files.prompt_path(self.prompts_dir, language, p)
            if path is not None and path.exists():
                out.append(path)
            else:  # a missing file must not break the call: the caller hears the rest
                log.error("prompt %r (%s) has no audio file (%s): run 'helpdesk-gateway prompts build'", p, language, path)
        return tuple(out)

    def _text(self, text: str, language: str) -> Path | None:
        if not text.strip():
            return None
        voice = prompt_files.ESPEAK_VOICES.get(language, language)  # a name said in another voice is another file
        key = hashlib.sha256(f"{language}\0{voice}\0{text}".encode()).hexdigest()[:24]
        target = self.cache_dir / language / f"{key}.wav"
        with self._lock:  # two calls asking for the same name synthesise it once
            if not target.exists():
                try:
                    prompt_files.synthesise(text, language, target)
                except Exception:  # noqa: BLE001 - no name read back is better than no call
                    log.exception("could not synthesise %r", text)
                    return None
        return target

    def steps(self, actions: list[Action], session: CallSession) -> list[Step]:
        """The flow's media actions as steps with files, in the call's current language."""
        lang = session.language
        out: list[Step] = []
        for a in actions:
            if isinstance(a, Play):
                out.append(PlayStep(self.resolve(a.prompts, lang)))
            elif isinstance(a, SayDigits):
                out.append(PlayStep(self.resolve(tuple(f"digit-{d}" for d in a.digits if d.isdigit()), lang)))
            elif isinstance(a, Gather):
                out.append(GatherStep(self.resolve(a.prompts, lang), a.max_digits, a.timeout, a.finish_on_key))
            elif isinstance(a, Record):
                files = (*self.resolve(a.prompts, lang), self.beep)
                out.append(RecordStep(a.question, files, session.recording_path(a.question), a.max_seconds, a.finish_on_key))
            elif isinstance(a, Transfer):
                out.append(TransferStep(a.target))
            elif isinstance(a, Hangup):
                out.append(HangupStep())
            else:  # Submit and Lookup are answered by the session; anything else is a bug worth hearing about
                log.error("the SIP transport cannot carry out %r", a)
        if session.finished and not any(isinstance(s, (HangupStep, TransferStep)) for s in out):
            out.append(HangupStep())  # the flow has nothing more to say: do not leave the line open
        return out


def write_tone(path: Path, *, hz: float = 1000.0, seconds: float = 0.25, rate: int = 8000) -> None:
    """The short tone after "after the tone, say …" (8 kHz mono 16-bit, like the prompts)."""
    n = int(rate * seconds)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n))
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    tmp.replace(path)


_URI = re.compile(r"(?:sips?:([^@;>?\s]*)@|tel:([^;>?\s]*))", re.IGNORECASE)
_DISPLAY = re.compile(r'^\s*"?([^"<]*?)"?\s*<')
_NUMBER = re.compile(r"^\+?[0-9][0-9\-. ()]{1,30}$")


def caller_id(remote_uri: str) -> str | None:
    """The caller's number from a From header value: the URI's user part when it is a number, else the display
    name when that is one (PBXs put the extension there), else the user part (an address-like id) or None."""
    m = _URI.search(remote_uri or "")
    user = (m.group(1) or m.group(2) or "") if m else ""
    user = re.sub(r"%([0-9A-Fa-f]{2})", lambda x: chr(int(x.group(1), 16)), user)
    if _NUMBER.match(user):
        return _plain_number(user)
    d = _DISPLAY.match(remote_uri or "")
    display = d.group(1).strip() if d else ""
    if _NUMBER.match(display):
        return _plain_number(display)
    return user or None


def _plain_number(s: str) -> str:
    return ("+" if s.startswith("+") else "") + re.sub(r"[^0-9]", "", s)
