"""The IVR flow: one state machine for every voice transport (SIP through pjsua2, Twilio webhooks).

A transport feeds it events (the call started, keys pressed, an answer recorded, a timeout, the caller hung
up, and the answers to the flow's own requests: the ticket was created, a status was looked up) and carries
out the actions it returns (play prompts, gather keys, record an answer, read digits, transfer, submit the
report, look up a status, hang up). Nothing here knows pjsua2, HTTP, the database or audio: the flow is plain
data in, plain data out, and is tested on its own, every path.

The call: greeting with the recording notice → language (`FlowSettings.languages` in menu order: 1 italiano,
2 français, 3 English; the desk's language when nothing is pressed) → menu: 1 report a problem, 2 status of a
ticket, 0 an operator.
Report: a caller the directory knows by caller id confirms who they are (1 yes, 2 no), otherwise records
their name; then the asset and the problem are recorded; "is the whole office blocked?" (1 yes, 2 no) sets
the urgency. The ticket is created at once from the recordings; its number and PIN are read back digit by
digit; transcription fills the fields in later.
Confirmation: right after the name and the asset answers the flow asks the gateway what the answer says
(`Understand`: transcribed and matched at once, like any contact's text, while the caller waits). When that is
a directory user or a known asset, the IVR says it back ("are you …", "I understood …") and asks 1 to
confirm, 2 to say it again. A confirmed answer is certain (`Heard.confirmed`); after `max_refusals` refusals
(or no key at all) the best guess stays, flagged as unsure. A first answer that matches nothing is asked for
once more ("I did not understand, please say it again": `say-again`): an asset that is no known asset, a name
of which nothing was heard (a name the directory lacks is an unknown caller's own: it is not asked again);
then the call goes on with the best guess, and the transcript fills the field in later.
Status: the caller keys the ticket number and #; when the caller id is the reporter's number the status is
read at once, otherwise the flow asks for the ticket's PIN. A number that does not exist is also asked for a
PIN and then gets the same "not found" as a wrong PIN, so tickets cannot be enumerated by phone.
Every question allows `max_retries` tries; then the caller is transferred to an operator when one is
configured, or asked for one free recording that becomes the ticket. A caller who hangs up after saying
anything still leaves a ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ticketing.contact import BlobRef


# -- events ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallStarted:
    call_id: str
    caller_id: str | None = None
    known_name: str | None = None  # the directory's name for the caller id, looked up by the transport


@dataclass(frozen=True)
class Digits:
    digits: str  # the keys pressed for the pending Gather, without the terminating '#'


@dataclass(frozen=True)
class Recorded:
    blob: BlobRef | None  # None when nothing usable was recorded
    seconds: float = 0.0
    silent: bool = False  # the transport found no speech in it (RMS under the floor)


@dataclass(frozen=True)
class Timeout:
    pass


@dataclass(frozen=True)
class HungUp:
    pass


@dataclass(frozen=True)
class Understood:
    """The gateway's reading of one recorded answer (the reply to `Understand`)."""

    question: str
    value: str | None = None  # what the desk takes it for: an asset's tag, a directory user's name; None: nothing known
    spoken: str | None = None  # what the IVR says back to the caller (the asset's name, the user's name)
    confidence: float = 0.0
    said: str | None = None  # the words heard ("" for none); None: the answer could not be transcribed here


@dataclass(frozen=True)
class TicketCreated:
    number: str  # HD-2026-000123
    pin: str


@dataclass(frozen=True)
class StatusFound:
    status: str | None  # None: not found (or not allowed: the caller cannot tell which)
    level: int | None = None


Event = Union[CallStarted, Digits, Recorded, Timeout, HungUp, Understood, TicketCreated, StatusFound]


# -- actions ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """Words to synthesise at run time (a name), where a recorded prompt cannot exist."""

    text: str


Prompt = Union[str, Text]  # a prompt's name (config/prompts/<lang>/<name>.wav) or text to speak


@dataclass(frozen=True)
class Play:
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class Gather:
    prompts: tuple[Prompt, ...]
    max_digits: int
    timeout: float
    finish_on_key: str = "#"


@dataclass(frozen=True)
class Record:
    question: str  # name | asset | anomaly | message
    prompts: tuple[Prompt, ...]
    max_seconds: int
    finish_on_key: str = "#"


@dataclass(frozen=True)
class SayDigits:
    digits: str  # read one by one with the digit prompts


@dataclass(frozen=True)
class Transfer:
    target: str


@dataclass(frozen=True)
class Submit:
    report: Report


@dataclass(frozen=True)
class Lookup:
    digits: str  # the ticket number as keyed
    caller_id: str | None
    pin: str | None


@dataclass(frozen=True)
class Understand:
    """Transcribe and interpret `question`'s answer now, while the caller waits; answered with `Understood`."""

    question: str  # name | asset
    recording: BlobRef
    # Earlier answers that help read this one, as confirmed or heard: (("name", "Luca Ferrari"),) for the asset,
    # so "la stampante" from someone of the Tributi is read as the Tributi printer.
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hangup:
    pass


Action = Union[Play, Gather, Record, SayDigits, Transfer, Submit, Lookup, Understand, Hangup]


# -- what the call produced ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heard:
    """An answer the IVR understood during the call (plain data: it is saved with the call's state)."""

    value: str  # an asset's tag, a directory user's name
    confidence: float  # 1.0 once the caller confirmed it
    confirmed: bool  # the caller pressed 1 when it was said back; False: the best guess after refusals, unsure


@dataclass
class Report:
    call_id: str
    caller_id: str | None
    language: str
    confirmed_name: str | None = None
    recordings: dict[str, BlobRef] = field(default_factory=dict)  # question -> recording
    urgent: bool | None = None
    abandoned: bool = False  # the caller hung up before the end
    heard: dict[str, Heard] = field(default_factory=dict)  # question -> what the caller confirmed (or the best guess)
    said: dict[str, str] = field(default_factory=dict)  # question -> the words heard in its latest recording, at once

    @property
    def said_anything(self) -> bool:
        return bool(self.recordings)


@dataclass(frozen=True)
class FlowSettings:
    default_language: str = "it"
    languages: tuple[str, ...] = ("it", "fr", "en")  # the language menu's order: key 1, 2, 3
    max_retries: int = 3
    max_refusals: int = 2  # "2, say it again" this many times: then the best guess stays, flagged
    unsure_confidence: float = 0.5  # the most an unconfirmed guess is worth (under the desk's low_confidence)
    gather_timeout: float = 6.0
    max_name_seconds: int = 8
    max_asset_seconds: int = 15
    max_problem_seconds: int = 120
    operator: str | None = None  # SIP URI or number to transfer to; None: record a message instead


class Flow:
    """One call's IVR. `handle(event)` returns the actions to carry out, in order."""

    def __init__(self, settings: FlowSettings | None = None):
        self.s = settings or FlowSettings()
        self.state = "idle"
        self.language = self.s.default_language
        self.report: Report | None = None
        self.tries = 0
        self.known_name: str | None = None
        self.status_digits = ""
        self.submitted = False
        self.finished = False
        # The answer being confirmed (plain data, saved with the call): its question, what it was taken for,
        # the best guess so far across tries, and how many times the caller said "no, again".
        self.question: str | None = None
        self.candidate: Understood | None = None
        self.best: Understood | None = None
        self.refusals = 0
        self.repeated = False  # the question was asked again (refused, or nothing matched)

    # -- the one entry point -------------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Action]:
        if self.finished:
            return []
        if isinstance(event, HungUp):
            return self._hung_up()
        if isinstance(event, (TicketCreated, StatusFound, Understood)) and self.state not in _AWAITING_REPLY:
            return []  # a reply to a request this call is not waiting for: not the caller's mistake
        handler = getattr(self, f"_on_{self.state}", None)
        if handler is None:
            return []
        return handler(event)

    # -- states --------------------------------------------------------------------------------------------
    def _on_idle(self, e: Event) -> list[Action]:
        if not isinstance(e, CallStarted):
            return []
        self.report = Report(e.call_id, e.caller_id, self.language)
        self.known_name = e.known_name
        return self._ask("language", ("greeting", "recording-notice", "choose-language"), 1)

    def _on_language(self, e: Event) -> list[Action]:
        if isinstance(e, Timeout):  # nothing pressed: the desk's language
            return self._menu()
        if isinstance(e, Digits) and e.digits.isdigit() and 1 <= int(e.digits) <= len(self.s.languages):
            self.language = self.s.languages[int(e.digits) - 1]
            self.report.language = self.language
            return self._menu()
        return self._retry(("greeting", "recording-notice", "choose-language"), 1)

    def _on_menu(self, e: Event) -> list[Action]:
        if isinstance(e, Digits):
            if e.digits == "1":
                return self._start_report()
            if e.digits == "2":
                return self._ask("status_number", ("enter-ticket-number",), 12)
            if e.digits == "0":
                return self._operator()
        return self._retry(("menu",), 1)

    # report ----------------------------------------------------------------------------------------------
    def _start_report(self) -> list[Action]:
        if self.known_name:
            return self._ask("confirm_name", ("are-you", Text(self.known_name), "yes-no"), 1)
        return self._record("name", ("say-name",), self.s.max_name_seconds)

    def _on_confirm_name(self, e: Event) -> list[Action]:
        if isinstance(e, Digits) and e.digits == "1":
            self.report.confirmed_name = self.known_name
            return self._record("asset", ("say-asset",), self.s.max_asset_seconds)
        if isinstance(e, Digits) and e.digits == "2":
            return self._record("name", ("say-name",), self.s.max_name_seconds)
        return self._retry(("are-you", Text(self.known_name or ""), "yes-no"), 1)

    def _on_record_name(self, e: Event) -> list[Action]:
        return self._answer(e, "name", lambda: self._understand("name"))

    def _on_record_asset(self, e: Event) -> list[Action]:
        return self._answer(e, "asset", lambda: self._understand("asset"))

    # confirmation: what the answer was taken for, said back -----------------------------------------------
    def _understand(self, question: str) -> list[Action]:
        if self.question != question:  # a new question (not "say it again"): its own count
            self.question, self.best, self.refusals, self.repeated = question, None, 0, False
        self.state, self.candidate = "understanding", None
        name = self.report.confirmed_name or self.report.said.get("name")
        context = (("name", name),) if question == "asset" and name else ()
        return [Understand(question, self.report.recordings[question], context)]

    def _on_understanding(self, e: Event) -> list[Action]:
        if not isinstance(e, Understood) or e.question != self.question:
            return []
        if e.said and e.said.strip():  # the words of the recording now kept for this question
            self.report.said[self.question] = e.said.strip()
        else:
            self.report.said.pop(self.question, None)
        if not e.value:  # nothing the desk knows: asked once more, then the transcript fills the field in later
            if not self.repeated and self._say_again(e):
                self.repeated = True
                return self._record(self.question, ("say-again", *_RECORD_PROMPTS[self.question]), self._limit(self.question))
            return self._after_confirmation()
        if self.best is None or e.confidence >= self.best.confidence:
            self.best = e
        self.candidate = e
        self.state, self.tries = "confirming", 0
        return [Gather(self._confirm_prompts(), 1, self.s.gather_timeout)]

    def _on_confirming(self, e: Event) -> list[Action]:
        if isinstance(e, Digits) and e.digits == "1":
            self.report.heard[self.question] = Heard(self.candidate.value, 1.0, True)
            if self.question == "name":
                self.report.confirmed_name = self.candidate.value
            return self._after_confirmation()
        if isinstance(e, Digits) and e.digits == "2":
            self.refusals += 1
            self.repeated = True
            if self.refusals >= self.s.max_refusals:
                return self._after_confirmation()
            return self._record(self.question, _RECORD_PROMPTS[self.question], self._limit(self.question))
        self.tries += 1
        if self.tries >= self.s.max_retries:  # no answer to "is that right?": the guess stays, unsure
            return self._after_confirmation()
        return [Play(("not-understood",)), Gather(self._confirm_prompts(), 1, self.s.gather_timeout)]

    def _say_again(self, e: Understood) -> bool:
        """Whether an answer that matched nothing is worth asking again: not when it could not be transcribed at
        all (no model here), nor for a name that was heard (an unknown caller's own name)."""
        if e.said is None:
            return False
        return self.question == "asset" or not e.said.strip()

    def _confirm_prompts(self) -> tuple[Prompt, ...]:
        lead = "are-you" if self.question == "name" else "you-said"
        return (lead, Text(self.candidate.spoken or self.candidate.value), "confirm-or-repeat")

    def _after_confirmation(self) -> list[Action]:
        """The question is settled: keep the best unconfirmed guess, flagged, then ask the next question."""
        question = self.question
        self._keep_guess()
        self.question, self.candidate, self.best, self.refusals, self.repeated = None, None, None, 0, False
        if question == "name":
            return self._record("asset", ("say-asset",), self.s.max_asset_seconds)
        return self._record("anomaly", ("say-problem",), self.s.max_problem_seconds)

    def _keep_guess(self) -> None:
        if self.question and self.best is not None and self.question not in self.report.heard:
            confidence = min(self.best.confidence, self.s.unsure_confidence)
            self.report.heard[self.question] = Heard(self.best.value, round(confidence, 3), False)

    def _on_record_anomaly(self, e: Event) -> list[Action]:
        return self._answer(e, "anomaly", lambda: self._ask("urgent", ("office-blocked", "yes-no"), 1))

    def _on_urgent(self, e: Event) -> list[Action]:
        if isinstance(e, Digits) and e.digits in ("1", "2"):
            self.report.urgent = e.digits == "1"
            return self._submit()
        return self._retry(("office-blocked", "yes-no"), 1)

    def _on_record_message(self, e: Event) -> list[Action]:
        return self._answer(e, "message", self._submit)

    def _on_submitting(self, e: Event) -> list[Action]:
        if isinstance(e, TicketCreated):
            self.finished = True
            return [
                Play(("ticket-created",)),
                SayDigits(_digits_of(e.number)),
                Play(("your-pin",)),
                SayDigits(e.pin),
                Play(("goodbye",)),
                Hangup(),
            ]
        return []

    # status ----------------------------------------------------------------------------------------------
    def _on_status_number(self, e: Event) -> list[Action]:
        if isinstance(e, Digits) and e.digits.isdigit():
            self.status_digits = e.digits
            self.state = "status_by_caller"
            return [Lookup(e.digits, self.report.caller_id, None)]
        return self._retry(("enter-ticket-number",), 12)

    def _on_status_by_caller(self, e: Event) -> list[Action]:
        if isinstance(e, StatusFound) and e.status is not None:
            return self._read_status(e)
        if isinstance(e, StatusFound):  # unknown number or another caller: ask for the PIN either way
            self.tries = 0
            return self._ask("status_pin", ("enter-pin",), 4)
        return []

    def _on_status_pin(self, e: Event) -> list[Action]:
        if isinstance(e, Digits) and e.digits.isdigit():
            self.state = "status_by_pin"
            return [Lookup(self.status_digits, self.report.caller_id, e.digits)]
        return self._retry(("enter-pin",), 4)

    def _on_status_by_pin(self, e: Event) -> list[Action]:
        if isinstance(e, StatusFound) and e.status is not None:
            return self._read_status(e)
        if isinstance(e, StatusFound):
            self.tries = 0
            return [Play(("ticket-not-found",)), *self._ask("menu", ("menu",), 1)]
        return []

    def _read_status(self, e: StatusFound) -> list[Action]:
        self.finished = True
        return [Play((f"status-{e.status}", f"level-{e.level or 1}", "goodbye")), Hangup()]

    # operator and fallback ------------------------------------------------------------------------------
    def _operator(self) -> list[Action]:
        if self.s.operator:
            self.finished = True
            if self.report.said_anything:  # what was said so far still makes a ticket
                self.submitted = True
                return [Submit(self.report), Play(("transferring",)), Transfer(self.s.operator)]
            return [Play(("transferring",)), Transfer(self.s.operator)]
        return self._record("message", ("leave-message",), self.s.max_problem_seconds)

    def _fallback(self) -> list[Action]:
        self._keep_guess()
        if self.s.operator:
            return self._operator()
        if self.report.said_anything:
            return self._submit()
        return self._record("message", ("say-everything",), self.s.max_problem_seconds)

    def _hung_up(self) -> list[Action]:
        self.finished = True
        if self.report is not None:
            self._keep_guess()  # hung up while asked to confirm: what we understood still counts, unsure
        if self.report is not None and self.report.said_anything and not self.submitted:
            self.report.abandoned = True
            self.submitted = True
            return [Submit(self.report)]
        return []

    # helpers ----------------------------------------------------------------------------------------------
    def _menu(self) -> list[Action]:
        return self._ask("menu", ("menu",), 1)

    def _ask(self, state: str, prompts: tuple[Prompt, ...], max_digits: int) -> list[Action]:
        self.state, self.tries = state, 0
        return [Gather(prompts, max_digits, self.s.gather_timeout)]

    def _record(self, question: str, prompts: tuple[Prompt, ...], seconds: int) -> list[Action]:
        self.state, self.tries = f"record_{question}", 0
        return [Record(question, prompts, seconds)]

    def _retry(self, prompts: tuple[Prompt, ...], max_digits: int) -> list[Action]:
        self.tries += 1
        if self.tries >= self.s.max_retries:
            return self._fallback()
        return [Play(("not-understood",)), Gather(prompts, max_digits, self.s.gather_timeout)]

    def _answer(self, e: Event, question: str, then) -> list[Action]:
        if isinstance(e, Recorded) and e.blob is not None and not e.silent and e.seconds >= 0.5:
            self.report.recordings[question] = e.blob
            return then()
        if isinstance(e, (Recorded, Timeout)):
            self.tries += 1
            if self.tries >= self.s.max_retries:
                if question == "message":  # the last resort got nothing: nothing to keep
                    self.finished = True
                    return [Play(("goodbye",)), Hangup()]
                return self._fallback()
            rec = Record(question, ("not-understood", *_RECORD_PROMPTS[question]), self._limit(question))
            return [rec]
        return []

    def _limit(self, question: str) -> int:
        return {"name": self.s.max_name_seconds, "asset": self.s.max_asset_seconds}.get(question, self.s.max_problem_seconds)

    def _submit(self) -> list[Action]:
        self.state = "submitting"
        self.submitted = True
        return [Submit(self.report)]


_AWAITING_REPLY = frozenset({"submitting", "status_by_caller", "status_by_pin", "understanding"})
_RECORD_PROMPTS = {"name": ("say-name",), "asset": ("say-asset",), "anomaly": ("say-problem",), "message": ("leave-message",)}


def _digits_of(number: str) -> str:
    """HD-2026-000123 → "2026000123": what a caller keys to ask for it again."""
    return "".join(ch for ch in number if ch.isdigit())
