"""One SIP call on the pjsua2 thread: answers the INVITE and carries out the IVR's media steps.

Steps (see `media.py`) arrive already resolved to files and run one after the other:
- Play: one `AudioMediaPlayer` per file (PJMEDIA_FILE_NO_LOOP), the next started from the previous one's
  `onEof2`. Separate players rather than a playlist, so a recorded prompt at another rate still plays.
- Gather: keys from `onDtmfDigit` — RFC 4733 (formerly 2833) telephone-events and SIP INFO
  `application/dtmf-relay` both arrive there — until `max_digits` or the finish key, with `timeout` from the
  end of the prompt and between keys; the first key stops the prompt. Keys pressed while nothing is asking
  (during a plain Play, while the gateway works out the next step) are kept for the next Gather.
- Record: the question, a tone, then an `AudioMediaRecorder` fed by the caller's audio until `max_seconds`,
  the finish key, or ~3 s of quiet after the caller spoke (the caller's level, read every 100 ms).
- Transfer (REFER, RFC 3515) and Hangup (BYE).

What the call heard or keyed goes back to the service as flow events (`Digits`, `Timeout`,
`RecordingDone`); the service runs the IVR off this thread and posts the next steps. Watchdogs hang up a
call that lasts too long, whose RTP stopped, or whose 200 OK was never acknowledged.

Every pjsua2 callback is wrapped: an exception escaping into C++ would take the process down.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pjsua2 as pj

from ..flow import Digits, Timeout
from ..settings import SipSettings
from .media import GatherStep, HangupStep, PlayStep, RecordStep, Step, TransferStep

log = logging.getLogger("channels.voice.sip")

SILENCE_SECONDS = 3.0  # quiet after speech that ends an answer
SPEECH_LEVEL = 3  # the caller's level (pjsua's 0-100 scale) above which they are taken to be speaking
LEVEL_POLL_SECONDS = 0.1
TRANSFER_GRACE_SECONDS = 30.0
MAX_TYPEAHEAD = 32


@dataclass(frozen=True)
class RecordingDone:
    """The answer to `question` is on disk (finished by time, key, silence or hang-up)."""

    question: str


class _Player(pj.AudioMediaPlayer):
    def __init__(self, on_eof: Callable[[], None]):
        super().__init__()
        self.on_eof: Callable[[], None] | None = on_eof

    def onEof2(self):
        try:
            if self.on_eof is not None:
                self.on_eof()
        except Exception:  # noqa: BLE001
            log.exception("end of prompt")


class IvrCall(pj.Call):
    """A call answered by the IVR. Lives on the pjsua2 thread only."""

    def __init__(self, account, pj_call_id: int, *, loop, token: int, settings: SipSettings, on_event, on_end):
        super().__init__(account, pj_call_id)
        self.loop, self.token, self.settings = loop, token, settings
        self.on_event, self.on_end = on_event, on_end
        self.steps: deque[Step] = deque()
        self.current: Step | None = None
        self.media: pj.AudioMedia | None = None
        self.media_index = -1
        self.player: _Player | None = None
        self.play_queue: deque[Path] = deque()
        self.play_then: Callable[[], None] | None = None
        self.play_gen = 0
        self.recorder: pj.AudioMediaRecorder | None = None
        self.digits = ""
        self.typeahead = ""
        self.timers: dict[str, object] = {}  # "step", "level", "transfer": all cancelled when the call ends
        self.spoke = False
        self.quiet_since: float | None = None
        self.created = time.monotonic()
        self.answered_at: float | None = None
        self.confirmed = False
        self.ended = False
        self.rx_packets = -1
        self.rx_changed = time.monotonic()
        self.call_id = ""

    # -- driven by the service --------------------------------------------------------------------------------
    def ring(self) -> None:
        self._answer(pj.PJSIP_SC_RINGING)

    def accept(self, steps: list[Step]) -> None:
        """The IVR is ready with its greeting: 200 OK, then play it once the media is up."""
        if self.ended:
            return
        self._answer(200)
        self.answered_at = time.monotonic()
        self.perform(steps)

    def refuse(self, code: int) -> None:
        if not self.ended:
            self._answer(code)

    def perform(self, steps: list[Step]) -> None:
        if self.ended:
            return
        self.steps.extend(steps)
        self._advance()

    def hang_up(self, reason: str) -> None:
        if self.ended:
            return
        log.info("call %s: hanging up (%s)", self.call_id, reason)
        try:
            prm = pj.CallOpParam()
            prm.statusCode = 200 if self.answered_at else pj.PJSIP_SC_SERVICE_UNAVAILABLE
            self.hangup(prm)
        except pj.Error as e:
            log.warning("call %s: hangup failed: %s", self.call_id, e.info())

    def release(self) -> None:
        """End our side now, as if the call had been disconnected (the library is about to go)."""
        self._end()

    def watchdog(self, now: float) -> None:
        """Once a second: the call's limits (settings.sip)."""
        if self.ended:
            return
        s = self.settings
        if self.answered_at is None:
            if now - self.created > s.ack_timeout_seconds + 30:  # the IVR never got ready: do not ring forever
                self.hang_up("no answer from the IVR")
            return
        if not self.confirmed and now - self.answered_at > s.ack_timeout_seconds:
            self.hang_up(f"200 OK not acknowledged within {s.ack_timeout_seconds} s")
        elif now - self.answered_at > s.max_call_seconds:
            self.hang_up(f"longer than {s.max_call_seconds} s")
        elif self.media is None:
            if now - self.answered_at > s.no_rtp_seconds:
                self.hang_up("no audio stream was set up")
        else:
            packets = self._rx_packets()
            if packets != self.rx_packets:
                self.rx_packets, self.rx_changed = packets, now
            elif now - self.rx_changed > s.no_rtp_seconds:
                self.hang_up(f"no RTP for {s.no_rtp_seconds} s")

    # -- pjsua2 callbacks --------------------------------------------------------------------------------------
    def onCallState(self, prm):
        try:
            ci = self.getInfo()
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.confirmed = True
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                log.info("call %s: ended (%s %s)", self.call_id, ci.lastStatusCode, ci.lastReason)
                self._end()
        except Exception:  # noqa: BLE001
            log.exception("call state")

    def onCallMediaState(self, prm):
        try:
            ci = self.getInfo()  # bound first: iterating a temporary's media vector crashes
            for mi in ci.media:
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    self.media = self.getAudioMedia(mi.index)
                    self.media_index = mi.index
                    # The bridge reads a port only when it transmits somewhere. Sent to the (null) sound
                    # device, the caller's audio is drained every 20 ms: no stale second sits in the jitter
                    # buffer when a recorder is connected, and no frames are discarded to catch up.
                    self.media.startTransmit(pj.Endpoint.instance().audDevManager().getPlaybackDevMedia())
                    self._advance()
                    return
        except Exception:  # noqa: BLE001
            log.exception("call media state")

    def onDtmfDigit(self, prm):
        try:
            self._key(str(prm.digit))
        except Exception:  # noqa: BLE001
            log.exception("DTMF")

    def onCallTransferStatus(self, prm):
        try:
            if prm.finalNotify:
                self.hang_up(f"transfer answered {prm.statusCode}")
        except Exception:  # noqa: BLE001
            log.exception("transfer status")

    # -- steps ---------------------------------------------------------------------------------------------
    def _advance(self) -> None:
        while self.current is None and self.steps and not self.ended:
            step = self.steps[0]
            if self.media is None and not isinstance(step, (HangupStep, TransferStep)):
                return  # the rest waits for the media to come up
            self.current = self.steps.popleft()
            if isinstance(step, PlayStep):
                self._play(step.files, self._step_done)
            elif isinstance(step, GatherStep):
                self._gather(step)
            elif isinstance(step, RecordStep):
                self.typeahead = ""  # keys meant for an earlier question are not this answer's end
                self._play(step.files, lambda: self._start_recording(step))
            elif isinstance(step, TransferStep):
                self._transfer(step.target)
            elif isinstance(step, HangupStep):
                self.steps.clear()
                self.hang_up("the IVR is done")
                return

    def _step_done(self) -> None:
        self.current = None
        self._advance()

    # play
    def _play(self, files: tuple[Path, ...], then: Callable[[], None]) -> None:
        self.play_queue, self.play_then = deque(files), then
        self._next_file()

    def _next_file(self) -> None:
        self._stop_player()
        while self.play_queue and not self.ended:
            path = self.play_queue.popleft()
            gen = self.play_gen
            player = _Player(lambda: self.loop.post(lambda: self._eof(gen)))
            try:
                player.createPlayer(str(path), pj.PJMEDIA_FILE_NO_LOOP)
                player.startTransmit(self.media)
            except pj.Error as e:
                player.on_eof = None
                log.error("call %s: cannot play %s: %s", self.call_id, path, e.info())
                continue
            self.player = player
            log.debug("call %s: playing %s", self.call_id, path.name)
            return
        then, self.play_then = self.play_then, None
        if then is not None and not self.ended:
            then()

    def _eof(self, gen: int) -> None:
        if gen == self.play_gen and self.player is not None and not self.ended:
            self._next_file()

    def _stop_player(self) -> None:
        self.play_gen += 1
        player, self.player = self.player, None
        if player is None:
            return
        player.on_eof = None
        try:
            if self.media is not None:
                player.stopTransmit(self.media)
        except pj.Error:
            pass
        del player  # destroyed here, on this thread, after its transmission stopped

    def _interrupt(self) -> None:
        self.play_queue.clear()
        self.play_then = None
        self._stop_player()

    # gather
    def _gather(self, step: GatherStep) -> None:
        self.digits = ""
        buffered, self.typeahead = self.typeahead, ""
        if buffered:
            for key in buffered:
                if self._gather_key(step, key):
                    return
            return
        self._play(step.files, lambda: self._arm(step.timeout, self._gather_timeout))

    def _gather_key(self, step: GatherStep, key: str) -> bool:
        """One key for the Gather; True when it completed it."""
        self._interrupt()
        if key == step.finish_on_key:
            self._gather_done(Digits(self.digits))
            return True
        self.digits += key
        if len(self.digits) >= step.max_digits:
            self._gather_done(Digits(self.digits))
            return True
        self._arm(step.timeout, self._gather_timeout)
        return False

    def _gather_timeout(self) -> None:
        if isinstance(self.current, GatherStep):
            self._gather_done(Digits(self.digits) if self.digits else Timeout())

    def _gather_done(self, event) -> None:
        self._disarm()
        self.current, self.digits = None, ""
        self._emit(event)

    def _key(self, key: str) -> None:
        if self.ended:
            return
        log.debug("call %s: key %s", self.call_id, key)
        step = self.current
        if isinstance(step, GatherStep):
            self._gather_key(step, key)
        elif isinstance(step, RecordStep) and self.recorder is not None:
            if key == step.finish_on_key:
                self._finish_recording("key")
        elif isinstance(step, RecordStep):
            pass  # during the question: the answer has not started
        elif len(self.typeahead) < MAX_TYPEAHEAD:
            self.typeahead += key

    # record
    def _start_recording(self, step: RecordStep) -> None:
        if self.ended:
            return
        step.path.parent.mkdir(parents=True, exist_ok=True)
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(str(step.path))
            self.media.startTransmit(recorder)
        except pj.Error as e:
            log.error("call %s: cannot record to %s: %s", self.call_id, step.path, e.info())
            self.current = None
            self._emit(RecordingDone(step.question))
            return
        self.recorder = recorder
        self.spoke, self.quiet_since = False, None
        self._arm(step.max_seconds, lambda: self._finish_recording("time"))
        self._arm(LEVEL_POLL_SECONDS, self._listen, "level")

    def _listen(self) -> None:
        """Ends the answer after SILENCE_SECONDS of quiet once the caller has spoken."""
        self.timers.pop("level", None)
        if self.recorder is None or self.media is None or self.ended:
            return
        now = time.monotonic()
        # The caller's audio is what the call's port transmits into the bridge: its tx level (rx stays 0).
        if self.media.getTxLevel() > SPEECH_LEVEL:
            self.spoke, self.quiet_since = True, None
        elif self.spoke:
            self.quiet_since = self.quiet_since or now
            if now - self.quiet_since >= SILENCE_SECONDS:
                self._finish_recording("silence")
                return
        self._arm(LEVEL_POLL_SECONDS, self._listen, "level")

    def _stop_recorder(self) -> str | None:
        """Stop and close the recorder (its WAV header is written on destruction); returns its question."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        try:
            if self.media is not None:
                self.media.stopTransmit(recorder)
        except pj.Error:
            pass
        del recorder
        step = self.current
        return step.question if isinstance(step, RecordStep) else None

    def _finish_recording(self, why: str) -> None:
        self._disarm()
        question = self._stop_recorder()
        self.current = None
        if question is not None:
            log.debug("call %s: answer %s ended by %s", self.call_id, question, why)
            self._emit(RecordingDone(question))

    # transfer
    def _transfer(self, target: str) -> None:
        if not target.startswith(("sip:", "sips:", "tel:")):
            host = ""
            try:
                remote = self.getInfo().remoteUri
                host = remote.split("@", 1)[1].split(">", 1)[0].split(";", 1)[0] if "@" in remote else ""
            except pj.Error:
                pass
            target = f"sip:{target}@{host}" if host else f"sip:{target}"
        try:
            self.xfer(target, pj.CallOpParam(True))
        except pj.Error as e:
            log.error("call %s: transfer to %s failed: %s", self.call_id, target, e.info())
            self.hang_up("transfer failed")
            return
        self.current = None
        self._arm(TRANSFER_GRACE_SECONDS, lambda: self.hang_up("transfer not completed"), "transfer")

    # -- helpers -----------------------------------------------------------------------------------------------
    def _arm(self, seconds: float, fn: Callable[[], None], name: str = "step") -> None:
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()
        self.timers[name] = self.loop.call_later(seconds, fn)

    def _disarm(self, *names: str) -> None:
        for name in names or ("step", "level"):
            t = self.timers.pop(name, None)
            if t is not None:
                t.cancel()  # drops its function, so nothing outlives the call's references

    def _emit(self, event) -> None:
        if not self.ended:
            log.debug("call %s: %s", self.call_id, event)
            self.on_event(self.token, event)

    def _answer(self, code: int) -> None:
        try:
            prm = pj.CallOpParam()
            prm.statusCode = code
            self.answer(prm)
        except pj.Error as e:
            log.warning("call %s: cannot answer %d: %s", self.call_id, code, e.info())

    def _rx_packets(self) -> int:
        try:
            return self.getStreamStat(self.media_index).rtcp.rxStat.pkt
        except pj.Error:
            return self.rx_packets

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self._disarm(*list(self.timers))
        self.play_queue.clear()
        self.play_then = None
        self._stop_player()
        question = self._stop_recorder()  # what the caller said so far is kept
        self.steps.clear()
        self.current, self.media = None, None
        self.on_end(self.token, question)
