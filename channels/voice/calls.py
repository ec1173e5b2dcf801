"""Calls: the IVR flow run for a voice transport, with what every call needs from the gateway.

A transport (SIP through pjsua2, Twilio webhooks) opens a `CallSession` per call and feeds it the flow's
events. The session answers the flow's requests to the gateway itself — `Submit` delivers the report as an
intake record, `Lookup` reads a ticket's status by phone — so a transport only ever carries out media actions:
`Play`, `Gather`, `Record`, `SayDigits`, `Transfer`, `Hangup`.

Durability. Each call has a spool directory, `<spool>/<hash of the call id>/`, holding the recordings as the
transport writes them (`recording_path(question)`) and the flow's state after every step (`state.json`,
versioned and fsynced: `spool.py`). When the report is delivered, the directory goes. A process killed
mid-call leaves it behind: `recover()`, run when the transport starts and then periodically, repairs the
recordings' WAV headers (a recorder killed mid-write never finalised them) and delivers what the caller said
as an abandoned call. The call id is the contact's external id, so a call delivered twice (a retried webhook,
a recovery after a late crash) still makes one ticket.
A spool this code cannot read (a corrupt or foreign state file, an unknown version, recordings without a
state) is never deleted: it moves to `<spool>/quarantine/`, recordings and all, and is recorded as a rejection
with fault `ours` (the channel's `reject` port), where an operator sees it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ticketing.contact import BlobRef, Channel, Contact, Sender

from .flow import (
    Action,
    CallStarted,
    Event,
    Flow,
    FlowSettings,
    Gather,
    Hangup,
    HungUp,
    Lookup,
    Play,
    Record,
    Recorded,
    SayDigits,
    StatusFound,
    Submit,
    TicketCreated,
    Transfer,
    Understand,
    Understood,
)
from . import spool as spooled
from .report import report_to_contact

log = logging.getLogger("channels.voice.calls")

MEDIA_ACTIONS = (Play, Gather, Record, SayDigits, Transfer, Hangup)
STATE_FILE = spooled.STATE_FILE
QUARANTINE = "quarantine"
LEGACY_STATE_FILES = ("state.pickle",)  # written by earlier versions: never unpickled, quarantined


@dataclass(frozen=True)
class RecordingInfo:
    blob: BlobRef | None
    seconds: float
    silent: bool
    repaired: bool


def inspect_recording(path: Path, blobs, silence_floor: float) -> RecordingInfo:
    """Store a finished (or cut-off) recording in the blob store, repaired, and measure it."""
    from .stt.audio import AudioError, load, repair_wav_header

    try:
        data = Path(path).read_bytes()
    except OSError:
        return RecordingInfo(None, 0.0, False, False)
    if not data:
        return RecordingInfo(None, 0.0, False, False)
    data, repaired = repair_wav_header(data)
    try:
        audio = load(data, 8000, silence_floor=silence_floor)
    except AudioError as e:
        log.warning("recording %s cannot be read: %s", path, e)
        return RecordingInfo(blobs.put(data), 0.0, True, repaired)
    return RecordingInfo(blobs.put(data), audio.duration, audio.silent, repaired)


class CallSession:
    """One call: its flow, its spool directory. Called by one thread at a time (the transport's)."""

    def __init__(self, calls: Calls, call_id: str, caller_id: str | None, flow: Flow, directory: Path):
        self.calls, self.call_id, self.caller_id, self.flow, self.dir = calls, call_id, caller_id, flow, directory
        self.ticket_number: str | None = None
        self.undelivered = False  # the report could not be delivered: recover() will

    @property
    def finished(self) -> bool:
        return self.flow.finished

    @property
    def language(self) -> str:
        return self.flow.language

    def recording_path(self, question: str) -> Path:
        """Where the transport writes the answer to `question` (a retry overwrites the previous try)."""
        return self.dir / f"answer-{question}.wav"

    def recorded(self, question: str, path: Path | None = None) -> list[Action]:
        """The transport finished recording `question` (to `recording_path(question)` unless `path` is given)."""
        info = inspect_recording(path or self.recording_path(question), self.calls.blobs, self.calls.silence_floor)
        return self.handle(Recorded(info.blob, info.seconds, info.silent))

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; returns the media actions to carry out, in order."""
        pending = list(self.flow.handle(event))
        out: list[Action] = []
        while pending:
            action = pending.pop(0)
            if isinstance(action, Submit):
                pending[0:0] = self._submit(action)
            elif isinstance(action, Lookup):
                pending[0:0] = self.flow.handle(self.calls.lookup(action))
            elif isinstance(action, Understand):
                pending[0:0] = self.flow.handle(self.calls.understand(action, self.language))
            else:
                out.append(action)
        self._save()
        return out

    def hang_up(self) -> None:
        """The call ended (either side): what the caller said is delivered, the spool goes."""
        if not self.flow.finished:
            self.handle(HungUp())
        self.calls._forget(self)

    # -- internals ----------------------------------------------------------------------------------------
    def _submit(self, action: Submit) -> list[Action]:
        try:
            number, pin = self.calls.submit(action.report)
        except Exception:  # noqa: BLE001 - ours (the database is down): the spool keeps the call for recover()
            log.exception("call %s: the report could not be delivered; it stays in the spool for a later try", self.call_id)
            self.flow.submitted, self.flow.finished = False, True
            self.undelivered = True
            return [Play(("goodbye",)), Hangup()]
        self.ticket_number = number
        return self.flow.handle(TicketCreated(number, pin))

    def _save(self) -> None:
        if self.flow.submitted and self.flow.finished:
            return  # delivered: nothing left to recover
        if not self.dir.exists():
            return
        spooled.write_durably(self.dir / STATE_FILE, spooled.dumps(self.call_id, self.caller_id, self.flow))


class Calls:
    """The calls of one transport: opens sessions, answers their requests, recovers what a crash left."""

    def __init__(
        self,
        *,
        deliver: Callable[[Contact], object],
        desk,
        reject: Callable[..., int] | None = None,
        blobs,
        spool: Path,
        flow_settings: FlowSettings | None = None,
        silence_floor: float = -50.0,
        recover_after: float = 0.0,
        understand: Callable[[str, BlobRef, str], Understood] | None = None,
    ):
        self.deliver, self.desk, self.blobs = deliver, desk, blobs
        self.reject = reject  # where a spool that cannot be read is recorded (fault "ours")
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.flow_settings = flow_settings or FlowSettings()
        self.silence_floor = silence_floor
        # A spooled call not open in this process is recovered once its state is this many seconds old: 0 for SIP
        # (a call lives in its process), longer for Twilio, whose calls go on across a restart of ours.
        self.recover_after = recover_after
        # What an answer says, while the caller waits (channels/voice/understand.py); None: never asked back.
        self.understander = understand
        self._lock = threading.Lock()
        self._open: dict[str, CallSession] = {}

    def open(self, call_id: str, caller_id: str | None) -> tuple[CallSession, list[Action]]:
        """A new call: its session and the first actions (the greeting). A call id already open is resumed."""
        existing = self.get(call_id)
        if existing is not None:
            return existing, []
        session = CallSession(self, call_id, caller_id, Flow(self.flow_settings), self.spool / _dirname(call_id))
        with self._lock:  # open before its directory exists, so recover() never takes a starting call for a dead one
            self._open[call_id] = session
        session.dir.mkdir(parents=True, exist_ok=True)
        known = self._caller_name(caller_id)
        return session, session.handle(CallStarted(call_id, caller_id, known))

    def get(self, call_id: str) -> CallSession | None:
        """The open session of `call_id`, from memory or from its spool (after a restart), else None."""
        with self._lock:
            session = self._open.get(call_id)
        if session is not None:
            return session
        state = self.spool / _dirname(call_id) / STATE_FILE
        if not state.exists():
            return None
        try:
            saved = spooled.loads(state.read_bytes(), self.flow_settings)
        except (OSError, spooled.SpoolError):
            return None  # recover() quarantines it
        if saved.call_id != call_id:
            return None
        session = CallSession(self, call_id, saved.caller_id, saved.flow, state.parent)
        with self._lock:
            self._open[call_id] = session
        return session

    def open_calls(self) -> int:
        with self._lock:
            return len(self._open)

    # -- what the flow asks of the gateway --------------------------------------------------------------------
    def submit(self, report) -> tuple[str, str]:
        """Deliver a call's report; returns (ticket number, PIN)."""
        result = self.deliver(report_to_contact(report))
        pin = getattr(result, "pin", None) or self.desk.pin(result.ticket_number) or ""
        log.info("call %s: ticket %s (%s)", report.call_id, result.ticket_number, result.outcome)
        return result.ticket_number, pin

    def understand(self, action: Understand, language: str) -> Understood:
        """Transcribe and interpret one answer now; nothing understood (never an error) when that fails."""
        if self.understander is None:
            return Understood(action.question)
        try:
            return self.understander(action.question, action.recording, language, dict(action.context) or None)
        except Exception:  # noqa: BLE001 - ours; the call goes on unconfirmed and the transcription job still runs
            log.exception("could not understand the %s answer at once", action.question)
            return Understood(action.question)

    def lookup(self, action: Lookup) -> StatusFound:
        found = self.desk.phone_status(action.digits, action.caller_id, action.pin)
        return StatusFound(*found) if found else StatusFound(None)

    def _caller_name(self, caller_id: str | None) -> str | None:
        try:
            return self.desk.caller_name(caller_id)
        except Exception:  # noqa: BLE001 - the directory being unreachable must not fail the call
            log.exception("caller id lookup failed")
            return None

    # -- crash recovery ---------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Deliver the calls a previous process left in the spool (killed mid-call). Returns how many."""
        delivered = 0
        for directory in sorted(p for p in self.spool.iterdir() if p.is_dir() and p.name != QUARANTINE):
            with self._lock:
                if any(s.dir == directory for s in self._open.values()):
                    continue
            try:
                if self._recover_one(directory):
                    delivered += 1
            except Exception:  # noqa: BLE001 - one broken spool must not stop the others; it stays for a person
                log.exception("could not recover the call spooled in %s", directory)
        return delivered

    def _recover_one(self, directory: Path) -> bool:
        if self.recover_after and time.time() - _last_change(directory) < self.recover_after:
            return False
        state = directory / STATE_FILE
        if not state.exists():
            if any(directory.glob("answer-*.wav")) or any((directory / name).exists() for name in LEGACY_STATE_FILES):
                self._quarantine(directory, "no readable state beside the recordings")
                return False
            shutil.rmtree(directory, ignore_errors=True)  # killed before the first step: nothing was said
            return False
        try:
            saved = spooled.loads(state.read_bytes(), self.flow_settings)
        except (OSError, spooled.SpoolError) as e:
            self._quarantine(directory, str(e))
            return False
        call_id = saved.call_id
        flow: Flow = saved.flow
        report = flow.report
        if report is None or flow.submitted:
            shutil.rmtree(directory, ignore_errors=True)
            return False
        for wav in sorted(directory.glob("answer-*.wav")):
            question = wav.stem.removeprefix("answer-")
            info = inspect_recording(wav, self.blobs, self.silence_floor)
            if info.blob is not None and info.seconds >= 0.5:
                report.recordings[question] = info.blob
                if info.repaired:
                    log.info("call %s: recording %s repaired from its data length", call_id, wav.name)
        if not report.recordings:
            shutil.rmtree(directory, ignore_errors=True)
            return False
        report.abandoned = True
        number, _ = self.submit(report)
        log.warning("call %s was cut off (process stopped): delivered as %s", call_id, number)
        shutil.rmtree(directory, ignore_errors=True)
        return True

    def _quarantine(self, directory: Path, why: str) -> Path:
        """Move an unreadable call spool aside, recordings and all, once it is recorded where an operator sees it.

        Recorded first: when the database is down the spool stays where it is and the next round tries again."""
        target = self.spool / QUARANTINE / directory.name
        if target.exists():
            target = target.with_name(f"{directory.name}-{int(time.time())}")
        reason = f"call spool unreadable ({why}); kept in {target}"
        if self.reject is not None:
            raw = None
            for name in (STATE_FILE, *LEGACY_STATE_FILES):
                try:
                    raw = self.blobs.put((directory / name).read_bytes())
                    break
                except OSError:
                    continue
            recordings = len(list(directory.glob("answer-*.wav")))
            contact = Contact(channel=Channel.VOICE, external_id=f"spool:{directory.name}", sender=Sender(), raw=raw,
                              note=f"A call whose spool could not be read: {recordings} recording(s) kept.")
            self.reject(contact, reason, fault="ours")
        target.parent.mkdir(parents=True, exist_ok=True)
        directory.rename(target)  # same file system: atomic, nothing copied, nothing lost
        log.error("%s", reason)
        return target

    def _forget(self, session: CallSession) -> None:
        with self._lock:
            self._open.pop(session.call_id, None)
        if session.flow.submitted or not session.flow.report or not session.flow.report.said_anything:
            shutil.rmtree(session.dir, ignore_errors=True)


def _last_change(directory: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in (directory, *directory.iterdir()))
    except (OSError, ValueError):
        return 0.0


def _dirname(call_id: str) -> str:
    return hashlib.sha256(call_id.encode("utf-8", "surrogateescape")).hexdigest()[:24]

