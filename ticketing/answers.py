"""One answer read while the caller waits: the core's side of the IVR's confirmation port.

`AnswerReader(directory)` is what `gateway/` gives the voice channel as `ChannelContext.interpret`:
- `reader(question, text, language, context=None)`: the core's reading of one transcribed answer, by the same
  extraction steps every contact goes through (`extraction.interpret_answer`: the asset step, the reporter step),
  with the call's earlier answers as context (the caller's name, whose office places "la stampante");
- `reader.phrases(question)`: what answers to that question may name (the inventory's asset names, aliases and
  tags; the directory's people), for the transcriber to listen for (Whisper hotwords, Vosk grammars).

Both read the directory snapshot current at the call (`DirectoryCache.get`), so an inventory import shows in the
next call without a restart. Nothing here knows audio or telephony.
"""

from __future__ import annotations

import threading
from typing import Callable

from .directory import Directory
from .extraction import Interpretation, interpret_answer


class AnswerReader:
    def __init__(self, directory: Callable[[], Directory]):
        self.directory = directory
        self._lock = threading.Lock()
        self._of: Directory | None = None
        self._phrases: dict[str, list[str]] = {}

    def __call__(self, question: str, text: str, language: str | None = None, context: dict[str, str] | None = None) -> Interpretation:
        return interpret_answer(question, text, self.directory(), language, context)

    def phrases(self, question: str) -> list[str]:
        directory = self.directory()
        with self._lock:
            if directory is not self._of:  # a new snapshot: its phrases, once
                self._of, self._phrases = directory, expected_phrases(directory)
            return self._phrases.get(question, [])


def expected_phrases(directory: Directory) -> dict[str, list[str]]:
    """Per question, the words an answer may name: assets (name, aliases, tag) and people (their names)."""
    assets = [p for a in directory.assets for p in (a.name, *a.aliases, a.tag) if p]
    people = [u.name for u in directory.users]
    return {"asset": _clean(assets), "name": _clean(people)}


def _clean(items) -> list[str]:
    words = (" ".join("".join(ch.lower() if ch.isalnum() else " " for ch in p).split()) for p in items)
    return sorted(set(words) - {""})
