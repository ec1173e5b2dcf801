"""The IVR flow on its own, every path: a caller's key presses and recordings in, what the caller hears and
what the desk gets out."""

from __future__ import annotations

import pytest

from channels.voice.flow import (
    CallStarted, Digits, Flow, FlowSettings, Gather, Hangup, HungUp, Lookup, Play, Record, Recorded,
    SayDigits, StatusFound, Submit, Text, TicketCreated, Timeout, Transfer,
)
from ticketing.contact import BlobRef

NAME, ASSET, PROBLEM, MSG = (BlobRef(c * 64, 16000) for c in "abcd")


def kinds(actions):
    return [type(a).__name__ for a in actions]


def start(flow: Flow, caller="+390554382101", known=None):
    actions = flow.handle(CallStarted("call-1", caller, known))
    assert isinstance(actions[0], Gather) and actions[0].prompts[:2] == ("greeting", "recording-notice")
    return actions


def to_menu(flow: Flow, language_key: str | None = None, **kw):
    start(flow, **kw)
    actions = flow.handle(Digits(language_key) if language_key else Timeout())
    assert actions == [Gather(("menu",), 1, flow.s.gather_timeout)]


def test_full_report_by_an_unknown_caller_in_english():
    flow = Flow()
    to_menu(flow, "2", caller="+4989123")
    assert flow.language == "en"
    assert flow.handle(Digits("1")) == [Record("name", ("say-name",), 8)]
    assert flow.handle(Recorded(NAME, 2.1)) == [Record("asset", ("say-asset",), 15)]
    assert flow.handle(Recorded(ASSET, 3.0)) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.handle(Recorded(PROBLEM, 25.0)) == [Gather(("office-blocked", "yes-no"), 1, 6.0)]
    (submit,) = flow.handle(Digits("2"))
    r = submit.report
    assert (r.language, r.caller_id, r.urgent, r.abandoned) == ("en", "+4989123", False, False)
    assert r.recordings == {"name": NAME, "asset": ASSET, "anomaly": PROBLEM}
    actions = flow.handle(TicketCreated("HD-2026-000123", "4821"))
    assert actions == [
        Play(("ticket-created",)), SayDigits("2026000123"), Play(("your-pin",)), SayDigits("4821"), Play(("goodbye",)), Hangup()
    ]
    assert flow.handle(HungUp()) == []  # already submitted: no second ticket


def test_a_known_caller_confirms_and_skips_the_name():
    flow = Flow()
    to_menu(flow, known="Mario Rossi")
    assert flow.language == "it"
    assert flow.handle(Digits("1")) == [Gather(("are-you", Text("Mario Rossi"), "yes-no"), 1, 6.0)]
    assert kinds(flow.handle(Digits("1"))) == ["Record"] and flow.report.confirmed_name == "Mario Rossi"
    flow.handle(Recorded(ASSET, 2))
    flow.handle(Recorded(PROBLEM, 9))
    (submit,) = flow.handle(Digits("1"))
    assert submit.report.urgent is True and "name" not in submit.report.recordings


def test_a_known_number_used_by_someone_else_records_the_name():
    flow = Flow()
    to_menu(flow, known="Mario Rossi")
    flow.handle(Digits("1"))
    assert flow.handle(Digits("2")) == [Record("name", ("say-name",), 8)]
    assert flow.report.confirmed_name is None


def test_silence_is_retried_then_the_fallback_records_one_free_message():
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("1"))
    assert flow.handle(Recorded(NAME, 0.2)) == [Record("name", ("not-understood", "say-name"), 8)]
    assert flow.handle(Recorded(NAME, 3.0, silent=True)) == [Record("name", ("not-understood", "say-name"), 8)]
    assert flow.handle(Timeout()) == [Record("message", ("say-everything",), 120)]
    (submit,) = flow.handle(Recorded(MSG, 30))
    assert submit.report.recordings == {"message": MSG}


def test_the_fallback_keeps_what_was_said_so_far():
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("1"))
    flow.handle(Recorded(NAME, 2))
    for _ in range(2):
        flow.handle(Timeout())
    (submit,) = flow.handle(Timeout())
    assert isinstance(submit, Submit) and submit.report.recordings == {"name": NAME}


def test_the_fallback_transfers_when_an_operator_is_configured():
    flow = Flow(FlowSettings(operator="sip:operatore@pbx"))
    to_menu(flow)
    for _ in range(2):
        assert kinds(flow.handle(Digits("7"))) == ["Play", "Gather"]
    assert flow.handle(Digits("9")) == [Play(("transferring",)), Transfer("sip:operatore@pbx")]


def test_menu_zero_transfers_or_records_a_message():
    flow = Flow(FlowSettings(operator="+390550000000"))
    to_menu(flow)
    assert flow.handle(Digits("0"))[-1] == Transfer("+390550000000")
    flow = Flow()
    to_menu(flow)
    assert flow.handle(Digits("0")) == [Record("message", ("leave-message",), 120)]
    (submit,) = flow.handle(Recorded(MSG, 12))
    assert submit.report.recordings == {"message": MSG}


def test_an_invalid_language_key_is_retried():
    flow = Flow()
    start(flow)
    assert kinds(flow.handle(Digits("5"))) == ["Play", "Gather"]
    assert flow.handle(Digits("1")) == [Gather(("menu",), 1, 6.0)]


def test_hanging_up_after_saying_something_still_makes_a_ticket():
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("1"))
    flow.handle(Recorded(NAME, 2))
    flow.handle(Recorded(ASSET, 2))
    (submit,) = flow.handle(HungUp())
    assert submit.report.abandoned and submit.report.recordings == {"name": NAME, "asset": ASSET}
    assert flow.handle(Recorded(PROBLEM, 4)) == []


def test_hanging_up_before_saying_anything_makes_nothing():
    flow = Flow()
    to_menu(flow)
    assert flow.handle(HungUp()) == []


def test_status_read_at_once_for_the_reporters_own_phone():
    flow = Flow()
    to_menu(flow)
    assert flow.handle(Digits("2")) == [Gather(("enter-ticket-number",), 12, 6.0)]
    assert flow.handle(Digits("2026000123")) == [Lookup("2026000123", "+390554382101", None)]
    assert flow.handle(StatusFound("in_progress", 2)) == [Play(("status-in_progress", "level-2", "goodbye")), Hangup()]


@pytest.mark.parametrize("exists", [True, False])
def test_status_from_another_phone_needs_the_pin_and_a_wrong_one_is_not_found(exists):
    # Whether the number exists or not, the caller hears the same thing: no enumeration by phone.
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("2"))
    flow.handle(Digits("2026000123"))
    assert flow.handle(StatusFound(None)) == [Gather(("enter-pin",), 4, 6.0)]
    assert flow.handle(Digits("0000")) == [Lookup("2026000123", "+390554382101", "0000")]
    assert flow.handle(StatusFound(None)) == [Play(("ticket-not-found",)), Gather(("menu",), 1, 6.0)]


def test_status_with_the_right_pin():
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("2"))
    flow.handle(Digits("123"))
    flow.handle(StatusFound(None))
    flow.handle(Digits("4821"))
    assert flow.handle(StatusFound("resolved", 1)) == [Play(("status-resolved", "level-1", "goodbye")), Hangup()]


def test_the_last_resort_getting_nothing_says_goodbye():
    flow = Flow()
    to_menu(flow)
    flow.handle(Digits("0"))
    flow.handle(Timeout())
    flow.handle(Timeout())
    assert flow.handle(Timeout()) == [Play(("goodbye",)), Hangup()]
    assert flow.handle(HungUp()) == []


def test_events_out_of_place_are_ignored():
    flow = Flow()
    assert flow.handle(Digits("1")) == []  # before the call started
    to_menu(flow)
    assert flow.handle(TicketCreated("HD-2026-000001", "1111")) == []
    assert kinds(flow.handle(Recorded(NAME, 3))) == ["Play", "Gather"]  # a recording while in the menu: retry
