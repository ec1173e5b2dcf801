"""Synthetic callers: the spoken test set's texts said by voices the IVR's prompts never use, then carried by a
telephone line (G.711 µ-law at 8 kHz, with line noise) as the gateway would record them.

Voices (two per language, so a caller asked to "say it again" can say it with the other one):
- Italian: Debian's festival diphone voices `festvox-itapc16k` (male, "pc") and `festvox-italp16k` (female, "lp");
- English: festival's `festvox-kallpc16k` (US male diphone) and `festvox-us-slt-hts` (US female, HTS);
- French: no festival voice is packaged in Debian main (nor mbrola, which is in contrib), so two espeak-ng
  variants that the prompts (plain `fr`) never use: the Swiss French language with a male variant, and French
  with the "f3" female variant, each at its own rate.
The IVR prompts use plain espeak-ng voices (`channels/voice/prompts.py`: `it`, `fr`, `en-gb`).

The line: the voice is resampled to 8 kHz mono, pink or brown noise (sox `synth`) is mixed in at a given
signal-to-noise ratio measured on the speech, with half a second of line before and a second after (the
caller pausing, as a recording holds), then encoded to G.711 µ-law and decoded back to 16-bit PCM: the bytes
an IVR stores. Everything is cached by content (text, voice, line settings) under a cache directory, never
committed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
CACHE = Path(os.environ.get("HELPDESK_SPOKEN_CACHE", Path(tempfile.gettempdir()) / "helpdesk-spoken-cache"))
DEBS = ("festival", "festvox-itapc16k", "festvox-italp16k", "festvox-kallpc16k", "festvox-us-slt-hts", "espeak-ng", "sox")


@dataclass(frozen=True)
class Voice:
    name: str  # short label for reports: "festival:pc_diphone"
    engine: str  # festival | espeak-ng
    voice: str  # festival voice function suffix, or espeak-ng -v argument
    encoding: str = "utf-8"  # what the engine reads (festival's Italian voices read Latin-1)
    rate: int = 0  # espeak-ng words per minute (0: its default)


VOICES: dict[str, tuple[Voice, Voice]] = {
    "it": (Voice("festival:pc_diphone", "festival", "pc_diphone", "latin-1"),
           Voice("festival:lp_diphone", "festival", "lp_diphone", "latin-1")),
    "en": (Voice("festival:kal_diphone", "festival", "kal_diphone", "latin-1"),
           Voice("festival:slt_hts", "festival", "cmu_us_slt_arctic_hts", "latin-1")),
    "fr": (Voice("espeak-ng:fr-ch+m1", "espeak-ng", "fr-ch+m1", rate=125),
           Voice("espeak-ng:fr+f3", "espeak-ng", "fr+f3", rate=130)),
}


@dataclass(frozen=True)
class Line:
    snr_db: float = 22.0  # speech to noise, on the speech's RMS
    noise: str = "pinknoise"  # sox synth noise colour: pinknoise | brownnoise | whitenoise
    lead: float = 0.5  # seconds of line before the speech
    tail: float = 1.0  # and after


def missing_tools() -> list[str]:
    """The programs the synthesis needs that are not installed (empty when all are)."""
    out = [p for p in ("text2wave", "espeak-ng", "sox") if shutil.which(p) is None]
    voices = Path("/usr/share/festival/voices")
    for v in ("italian/pc_diphone", "italian/lp_diphone", "english/kal_diphone", "us/cmu_us_slt_arctic_hts"):
        if not (voices / v).is_dir():
            out.append(f"festival voice {v}")
    return out


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def speak(text: str, voice: Voice, target: Path) -> None:
    """The voice saying `text`, as a WAV at the engine's own rate."""
    if voice.engine == "festival":
        with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
            f.write(text.encode(voice.encoding, errors="replace"))
        try:
            _run(["text2wave", "-eval", f"(voice_{voice.voice})", f.name, "-o", str(target)])
        finally:
            os.unlink(f.name)
    elif voice.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice.voice, "-w", str(target)]
        if voice.rate:
            cmd += ["-s", str(voice.rate)]
        _run(cmd + [text])
    else:
        raise ValueError(f"unknown speech engine {voice.engine!r}")


def _read_8k(path: Path) -> np.ndarray:
    # -D: no dither (random noise otherwise): the same text gives the same audio, so a run can be repeated
    raw = _run(["sox", "-D", str(path), "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-"]).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float64)


def _noise(seconds: float, colour: str, seed: int) -> np.ndarray:
    # sox -R makes the noise repeatable; the seed picks a different stretch of it for each recording
    raw = _run(["sox", "-R", "-n", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-",
                "synth", f"{seconds + 2:.3f}", colour]).stdout
    n = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    return np.roll(n, seed % max(1, len(n)))


def ulaw_roundtrip(pcm: np.ndarray) -> np.ndarray:
    """`pcm` (int16 range) through G.711 µ-law and back, with sox: the 8-bit codec of a telephone line."""
    with tempfile.TemporaryDirectory() as tmp:
        src, mid, out = Path(tmp) / "a.raw", Path(tmp) / "b.wav", Path(tmp) / "c.raw"
        src.write_bytes(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())
        fmt = ["-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed"]
        _run(["sox", "-D", *fmt, str(src), "-e", "mu-law", "-b", "8", str(mid)])
        _run(["sox", "-D", str(mid), *fmt, str(out)])
        return np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.int16)


def telephone(speech: np.ndarray, line: Line, seed: int) -> np.ndarray:
    """Speech (8 kHz, int16 range) as a phone line delivers it: padded, noise at `line.snr_db`, G.711 µ-law."""
    speech = speech / max(1.0, np.abs(speech).max()) * 0.5 * 32767  # about -6 dBFS peak, as a handset gives
    pad = lambda s: np.zeros(int(s * RATE))  # noqa: E731
    signal = np.concatenate([pad(line.lead), speech, pad(line.tail)])
    voiced = speech[np.abs(speech) > 0.02 * np.abs(speech).max()]  # the speech's own level, not its pauses
    s_rms = np.sqrt(np.mean(voiced**2)) if len(voiced) else 1.0
    noise = _noise(len(signal) / RATE + 0.1, line.noise, seed)[: len(signal)]
    noise = np.pad(noise, (0, len(signal) - len(noise)))
    n_rms = np.sqrt(np.mean(noise**2)) or 1.0
    mixed = signal + noise * (s_rms / n_rms) / (10 ** (line.snr_db / 20))
    return ulaw_roundtrip(mixed)


def write_wav(path: Path, pcm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    os.replace(tmp, path)


def recording(text: str, voice: Voice, line: Line = Line(), *, cache: Path = CACHE) -> Path:
    """The 8 kHz 16-bit WAV of `voice` saying `text` over `line` (cached; made when missing)."""
    key = hashlib.sha256(repr((text, voice, line, 1)).encode()).hexdigest()[:20]
    target = Path(cache) / f"{key}.wav"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "voice.wav"
        speak(text, voice, raw)
        pcm = telephone(_read_8k(raw), line, seed=int(key[:8], 16))
    write_wav(target, pcm)
    return target
