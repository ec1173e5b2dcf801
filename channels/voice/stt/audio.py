"""Audio normalisation for the engines: any recording to mono 16-bit PCM at the engine's rate, repaired and checked.

- RIFF/WAVE (Microsoft WAVE format; RFC 2361 for its codec ids): a recording whose header was never finalised
  (the process was killed mid-call, so the RIFF and `data` sizes are 0 or 0xFFFFFFFF) is repaired from the
  length of the data actually on disk.
- A 16-bit mono PCM WAV already at the engine's rate is passed through untouched: 8 kHz telephone audio reaches
  an 8 kHz model at its real rate, never resampled. Anything else (other rates, stereo, G.711 µ-law/A-law
  WAV, MP3 from Twilio) is decoded and resampled by ffmpeg (the converter pydub finds).
- A recording whose RMS is below a floor (a payload-type mismatch, a muted line) is flagged `silent`, so the
  ticket says so instead of carrying an empty transcript.
"""

from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydub import AudioSegment
from pydub.utils import which

SILENCE_FLOOR_DBFS = -50.0  # speech on a phone line sits around -30 to -15 dBFS; line noise alone well below
_UNFINISHED = {0, 0xFFFFFFFF}


class AudioError(ValueError):
    """The input is not audio ffmpeg can decode (the sender's fault, not ours)."""


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes  # mono, 16-bit little-endian
    rate: int
    source_rate: int | None  # the rate the recording had, when known
    rms_dbfs: float
    silent: bool
    repaired: bool  # the WAV header was rewritten from the data length
    resampled: bool

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.rate


def repair_wav_header(data: bytes) -> tuple[bytes, bool]:
    """Rewrite the RIFF and `data` chunk sizes of a WAV whose header was never finalised; other input is
    returned as it is. Returns (bytes, whether they were changed)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data, False
    pos, block_align = 12, 1
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt " and pos + 8 + 14 <= len(data):
            block_align = max(1, struct.unpack_from("<H", data, pos + 8 + 12)[0])
        if cid == b"data":
            available = len(data) - (pos + 8)
            true_size = available - available % block_align
            riff_size = len(data) - 8
            if size == true_size and struct.unpack_from("<I", data, 4)[0] == riff_size:
                return data, False
            if size in _UNFINISHED or size > available or struct.unpack_from("<I", data, 4)[0] in _UNFINISHED:
                fixed = bytearray(data[: pos + 8 + true_size])
                struct.pack_into("<I", fixed, 4, len(fixed) - 8)
                struct.pack_into("<I", fixed, pos + 4, true_size)
                return bytes(fixed), True
            return data, False
        if size in _UNFINISHED:  # a chunk before `data` was never closed either: nothing sane to do
            return data, False
        pos += 8 + size + (size & 1)
    return data, False


def _pcm16_mono(data: bytes) -> tuple[bytes, int] | None:
    """(frames, rate) when `data` is a plain 16-bit mono PCM WAV, else None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt " and len(body) >= 16:
            fmt = struct.unpack_from("<HHIIHH", body)
        elif cid == b"data":
            if fmt is None:
                return None
            tag, channels, rate, _, _, bits = fmt
            # 1 = PCM; 0xFFFE = WAVE_FORMAT_EXTENSIBLE, whose subformat ffmpeg checks for us.
            if tag == 1 and channels == 1 and bits == 16:
                return body[: len(body) - len(body) % 2], rate
            return None
        pos += 8 + size + (size & 1)
    return None


def ffmpeg_binary() -> str:
    found = which("ffmpeg") or which("avconv")
    if not found:
        raise AudioError("ffmpeg is not installed (Debian package 'ffmpeg'): only 16-bit mono PCM WAV can be read")
    return found


def _decode(data: bytes, rate: int) -> bytes:
    cmd = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
           "-ac", "1", "-ar", str(rate), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]
    proc = subprocess.run(cmd, input=data, capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"cannot decode the audio: {reason[-1] if reason else 'ffmpeg failed'}")
    return proc.stdout


def rms_dbfs(pcm: bytes, rate: int) -> float:
    if not pcm:
        return float("-inf")
    return AudioSegment(data=pcm, sample_width=2, frame_rate=rate, channels=1).dBFS


def speech_seconds(pcm: bytes, rate: int) -> float:
    """Seconds of speech in 16-bit mono PCM: Silero's voice activity (shipped with faster-whisper, at 16 kHz);
    elsewhere, the 30-ms frames within 20 dB of the loudest one."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if not len(samples):
        return 0.0
    if rate == 16000:
        try:
            from faster_whisper.vad import VadOptions, get_speech_timestamps
        except ImportError:
            pass
        else:
            spans = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=300, speech_pad_ms=100))
            return sum(s["end"] - s["start"] for s in spans) / rate
    frame = max(1, int(rate * 0.03))
    n = len(samples) // frame
    if n == 0:
        return 0.0
    energy = (samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    return float((energy > energy.max() * 10 ** -2).sum() * frame / rate)


def load(source: bytes | str | Path, rate: int, *, silence_floor: float = SILENCE_FLOOR_DBFS) -> Audio:
    """Normalise a recording (bytes or a path) to mono 16-bit PCM at `rate`."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if not data:
        raise AudioError("the recording is empty (0 bytes)")
    data, repaired = repair_wav_header(data)
    plain = _pcm16_mono(data)
    if plain is not None and plain[1] == rate:
        pcm, source_rate, resampled = plain[0], rate, False
    else:
        pcm = _decode(data, rate)
        source_rate, resampled = (plain[1] if plain else None), True
        if not pcm and len(data) > 44:
            raise AudioError("cannot decode the audio: no samples")
    level = rms_dbfs(pcm, rate)
    return Audio(pcm, rate, source_rate, level, level < silence_floor, repaired, resampled)
