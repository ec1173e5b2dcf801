"""Fetching a caller's answer from Twilio: the `<Record>` action's RecordingUrl, as WAV, into the call's spool.

Twilio's Recording media (https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file) is
served at `RecordingUrl + ".wav"` (8 kHz mono 16-bit PCM) with HTTP Basic authentication by the account SID
and auth token. When the `<Record>` action is requested the file is often not there yet: Twilio answers 404
for a moment, so a 404 (or a connection error, or a 5xx) is tried again after a pause, up to a number of
attempts and within the time Twilio waits for the webhook's answer; a refusal of our credentials is not
tried again, it is logged as our error.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx

log = logging.getLogger("channels.voice.twilio")

MAX_BYTES = 64 * 1024 * 1024  # 15 minutes of 8 kHz 16-bit audio is 14 MB: anything far larger is not an answer
RETRY_STATUSES = {404, 429, 500, 502, 503, 504}
BUDGET_SECONDS = 12.0  # Twilio waits 15 s for a webhook's answer, and this download is part of one


def media_url(recording_url: str) -> str:
    return recording_url if recording_url.lower().endswith((".wav", ".mp3")) else recording_url + ".wav"


def fetch(
    recording_url: str,
    target: Path,
    *,
    auth: tuple[str, str] | None,
    attempts: int,
    pause: float,
    budget: float = BUDGET_SECONDS,
) -> bool:
    """Download the recording into `target` (written whole or not at all); False when it could not be had
    within `attempts` tries or `budget` seconds."""
    url = media_url(recording_url)
    target = Path(target)
    deadline = time.monotonic() + budget
    timeout = min(5.0, budget)
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:  # httpx drops the credentials on a cross-host redirect
        for attempt in range(1, attempts + 1):
            try:
                if _try_once(client, url, target, auth):
                    return True
            except _Final as e:
                log.error("recording %s cannot be downloaded: %s", url, e)
                return False
            except (httpx.HTTPError, OSError) as e:
                log.info("recording %s: attempt %d/%d failed: %s", url, attempt, attempts, e)
            if attempt == attempts or time.monotonic() + pause + timeout > deadline:
                log.error("recording %s was still not available after %d attempt(s)", url, attempt)
                return False
            time.sleep(pause)
    return False


class _Final(Exception):
    pass


def _try_once(client: httpx.Client, url: str, target: Path, auth) -> bool:
    with client.stream("GET", url, auth=auth) as response:
        if response.status_code in RETRY_STATUSES:
            log.info("recording %s not ready (HTTP %d)", url, response.status_code)
            return False
        if response.status_code != 200:
            raise _Final(f"HTTP {response.status_code}")
        tmp = target.with_name(target.name + ".part")
        try:
            size = 0
            with open(tmp, "wb") as f:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise _Final(f"larger than {MAX_BYTES} bytes")
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # a download cut off half-way leaves nothing behind
        return True
