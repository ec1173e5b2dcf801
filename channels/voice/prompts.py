"""IVR prompts: audio files per language under `config/prompts/<lang>/<name>.wav`.

The texts are in `config/prompts/texts.toml`. `build()` synthesises every missing file with espeak-ng and
converts it to what telephony plays without resampling (8 kHz, mono, 16-bit PCM WAV); a recorded file of the
same name is never overwritten, so a professional recording replaces a synthetic one by simply being there.
Every prompt name the IVR flow uses must have a text: `missing_texts()` says which do not.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

ESPEAK_VOICES = {"it": "it", "fr": "fr", "en": "en-gb"}
FLOW_PROMPTS = (
    "greeting recording-notice choose-language menu not-understood are-you yes-no you-said confirm-or-repeat say-again say-name say-asset say-problem "
    "office-blocked ticket-created your-pin goodbye enter-ticket-number enter-pin ticket-not-found transferring "
    "leave-message say-everything status-new status-in_progress status-waiting status-resolved status-closed "
    "level-1 level-2 level-3"
).split() + [f"digit-{d}" for d in range(10)]


def load_texts(directory: Path) -> dict[str, dict[str, str]]:
    with open(Path(directory) / "texts.toml", "rb") as f:
        return tomllib.load(f)


def missing_texts(texts: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    return {lang: [p for p in FLOW_PROMPTS if p not in t] for lang, t in texts.items() if any(p not in t for p in FLOW_PROMPTS)}


def prompt_path(directory: Path, language: str, name: str) -> Path:
    return Path(directory) / language / f"{name}.wav"


def synthesise(text: str, language: str, target: Path, *, rate: int = 8000) -> None:
    """espeak-ng → 8 kHz mono 16-bit WAV at `target` (written whole or not at all)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (Debian package 'espeak-ng')")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", ESPEAK_VOICES.get(language, language), "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
        out = Path(tmp) / "out.wav"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-ac", "1", "-ar", str(rate), "-sample_fmt", "s16", str(out)],
            check=True,
            capture_output=True,
        )
        shutil.move(out, target)


def build(directory: Path, languages: list[str] | None = None, progress=None) -> list[Path]:
    """Synthesise the missing prompt files; returns the files written."""
    texts = load_texts(directory)
    written = []
    for language, entries in texts.items():
        if languages and language not in languages:
            continue
        for name, text in entries.items():
            target = prompt_path(directory, language, name)
            if not target.exists():
                synthesise(text, language, target)
                written.append(target)
            if progress:
                progress(1)
    return written
