"""The voice tests' helpers: everything lives in `channels/voice/testing.py` (so `bench/voice.sh` can use it
without importing tests/); only the check that needs the suite's `missing()` stays here."""

from __future__ import annotations

from channels.voice.testing import *  # noqa: F401,F403
from channels.voice.testing import have, sound_file


def require_sip_peers(*sounds: str) -> None:
    """What every SIP test needs here: sipp, espeak-ng and ffmpeg (prompts), the Asterisk sound files it
    sends, and the pjsua2 wheel. A missing one fails under CI=true and skips elsewhere."""
    from tests.conftest import missing

    if have("sipp"):
        missing("sipp is not installed (Debian package sip-tester)")
    if have("espeak-ng", "ffmpeg"):
        missing("espeak-ng and ffmpeg are needed to build the IVR prompts")
    if any(sound_file(name) is None for name in sounds):
        missing("Asterisk's English sound files are not installed (asterisk-core-sounds-en-wav)")
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        missing("the pjsua2 wheel is not installed")
