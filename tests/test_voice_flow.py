"""The IVR flow on its own, every path: a caller's key presses and recordings in, what the caller hears and
what the desk gets out."""

from __future__ import annotations

import pytest

from channels.voice.flow import (
    CallStarted, Digits, Flow, FlowSettings, Gather, Hangup, Heard, HungUp, Lookup, Play, Record, Recorded,
    SayDigits, StatusFound, Submit, Text, TicketCreated, Timeout, Transfer, Understand, Understood,
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


MARIO = (("name", "Mario Rossi"),)  # the asset is read knowing who calls: their office places "la stampante"


def unheard(flow: Flow, question: str, blob, seconds: float = 3.0, context=()):
    """Record an answer the gateway does not recognise (no directory user, no asset): no question asked back."""
    assert flow.handle(Recorded(blob, seconds)) == [Understand(question, blob, context)]
    return flow.handle(Understood(question))


def test_full_report_by_an_unknown_caller_in_english():
    flow = Flow()
    to_menu(flow, "3", caller="+4989123")
    assert flow.language == "en"
    assert flow.handle(Digits("1")) == [Record("name", ("say-name",), 8)]
    assert unheard(flow, "name", NAME, 2.1) == [Record("asset", ("say-asset",), 15)]
    assert unheard(flow, "asset", ASSET) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.handle(Recorded(PROBLEM, 25.0)) == [Gather(("office-blocked", "yes-no"), 1, 6.0)]
    (submit,) = flow.handle(Digits("2"))
    r = submit.report
    assert (r.language, r.caller_id, r.urgent, r.abandoned, r.heard) == ("en", "+4989123", False, False, {})
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
    unheard(flow, "asset", ASSET, context=MARIO)
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
    unheard(flow, "name", NAME, 2)
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
    unheard(flow, "name", NAME, 2)
    unheard(flow, "asset", ASSET, 2)
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


# -- languages -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, language", [("1", "it"), ("2", "fr"), ("3", "en")])
def test_the_language_menu_is_italian_french_english(key, language):
    flow = Flow()
    to_menu(flow, key)
    assert flow.language == flow.report.language == language


def test_a_key_past_the_configured_languages_is_retried():
    flow = Flow(FlowSettings(languages=("it", "en")))
    start(flow)
    assert kinds(flow.handle(Digits("3"))) == ["Play", "Gather"]
    assert flow.handle(Digits("2")) == [Gather(("menu",), 1, 6.0)] and flow.language == "en"


# -- confirmation: what the gateway understood, said back ----------------------------------------------------------
PROT = Understood("asset", "PROT-01", "Protocollo informatico", 0.8)
CONFIRM_ASSET = Gather(("you-said", Text("Protocollo informatico"), "confirm-or-repeat"), 1, 6.0)


def to_asset(flow: Flow):
    """A known caller, past the name: the asset question."""
    to_menu(flow, known="Mario Rossi")
    flow.handle(Digits("1"))
    assert flow.handle(Digits("1")) == [Record("asset", ("say-asset",), 15)]


def test_a_known_asset_is_said_back_and_confirmed_with_1():
    flow = Flow()
    to_asset(flow)
    assert flow.handle(Recorded(ASSET, 5.0)) == [Understand("asset", ASSET, MARIO)]
    assert flow.handle(PROT) == [CONFIRM_ASSET]
    assert flow.handle(Digits("1")) == [Record("anomaly", ("say-problem",), 120)]
    flow.handle(Recorded(PROBLEM, 9))
    (submit,) = flow.handle(Digits("2"))
    assert submit.report.heard == {"asset": Heard("PROT-01", 1.0, True)}
    assert submit.report.recordings["asset"] == ASSET  # still transcribed for the record


def test_2_says_it_again_and_the_second_answer_is_confirmed():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(Understood("asset", "CONT-01", "Contabilità finanziaria", 0.9))
    assert flow.handle(Digits("2")) == [Record("asset", ("say-asset",), 15)]
    again = BlobRef("e" * 64, 9000)
    assert flow.handle(Recorded(again, 4.0)) == [Understand("asset", again, MARIO)]
    assert flow.handle(PROT) == [CONFIRM_ASSET]
    flow.handle(Digits("1"))
    assert flow.report.heard == {"asset": Heard("PROT-01", 1.0, True)} and flow.report.recordings["asset"] == again


def test_after_two_refusals_the_best_guess_stays_flagged():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(Understood("asset", "CONT-01", "Contabilità finanziaria", 0.9))
    flow.handle(Digits("2"))
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)  # 0.8: not as good a guess as the first
    assert flow.handle(Digits("2")) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.report.heard == {"asset": Heard("CONT-01", 0.5, False)}  # unsure: under the desk's low confidence


def test_no_key_at_the_confirmation_keeps_the_guess_unsure_and_goes_on():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(Understood("asset", "PROT-01", "Protocollo informatico", 0.4))
    assert flow.handle(Timeout()) == [Play(("not-understood",)), CONFIRM_ASSET]
    assert flow.handle(Digits("7")) == [Play(("not-understood",)), CONFIRM_ASSET]
    assert flow.handle(Timeout()) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.report.heard == {"asset": Heard("PROT-01", 0.4, False)}


def test_a_second_answer_that_matches_nothing_keeps_the_first_guess_flagged():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)
    flow.handle(Digits("2"))
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(Understood("asset")) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.report.heard == {"asset": Heard("PROT-01", 0.5, False)}


def test_hanging_up_at_the_confirmation_keeps_what_was_understood():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)
    (submit,) = flow.handle(HungUp())
    assert submit.report.abandoned and submit.report.heard == {"asset": Heard("PROT-01", 0.5, False)}


def test_an_unknown_caller_confirms_a_name_the_directory_knows():
    flow = Flow()
    to_menu(flow, "2", caller="+33479000000")
    flow.handle(Digits("1"))
    assert flow.handle(Recorded(NAME, 2.0)) == [Understand("name", NAME)]
    assert flow.handle(Understood("name", "Giulia Bianchi", "Giulia Bianchi", 0.7)) == [
        Gather(("are-you", Text("Giulia Bianchi"), "confirm-or-repeat"), 1, 6.0)
    ]
    assert flow.handle(Digits("1")) == [Record("asset", ("say-asset",), 15)]
    assert flow.report.confirmed_name == "Giulia Bianchi"
    assert flow.report.heard == {"name": Heard("Giulia Bianchi", 1.0, True)}
    # the asset's confirmation has its own count of refusals
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)
    assert flow.handle(Digits("2")) == [Record("asset", ("say-asset",), 15)]


def test_an_unknown_name_is_not_asked_about():
    flow = Flow()
    to_menu(flow, caller="+33479000000")
    flow.handle(Digits("1"))
    assert unheard(flow, "name", NAME) == [Record("asset", ("say-asset",), 15)]
    assert flow.report.confirmed_name is None and flow.report.heard == {}


SAY_ASSET_AGAIN = Record("asset", ("say-again", "say-asset"), 15)


def test_an_asset_that_matches_nothing_is_asked_once_more_then_the_call_goes_on():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(Understood("asset", said="la rotiene")) == [SAY_ASSET_AGAIN]
    again = BlobRef("e" * 64, 9000)
    assert flow.handle(Recorded(again, 4.0)) == [Understand("asset", again, MARIO)]
    assert flow.handle(Understood("asset", said="la ruptiene")) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.report.heard == {} and flow.report.recordings["asset"] == again  # the transcript fills it in later


def test_the_answer_said_again_is_said_back_and_confirmed():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(Understood("asset", said="")) == [SAY_ASSET_AGAIN]  # nothing heard at all
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(PROT) == [CONFIRM_ASSET]
    assert flow.handle(Digits("2")) == [Record("asset", ("say-asset",), 15)]  # refusals still have their own count
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)
    assert flow.handle(Digits("1")) == [Record("anomaly", ("say-problem",), 120)]
    assert flow.report.heard == {"asset": Heard("PROT-01", 1.0, True)}


def test_nothing_is_asked_again_when_the_answer_could_not_be_transcribed():
    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(Understood("asset")) == [Record("anomaly", ("say-problem",), 120)]  # no model here


def test_a_name_the_directory_lacks_is_not_asked_again_but_one_not_heard_is():
    flow = Flow()
    to_menu(flow, caller="+33479000000")
    flow.handle(Digits("1"))
    flow.handle(Recorded(NAME, 2.0))
    assert flow.handle(Understood("name", said="mi chiamo Ugo Foscolo")) == [Record("asset", ("say-asset",), 15)]
    # the asset is then read with the name as heard: "dell'ufficio tributi" said with it places "la stampante"
    assert flow.handle(Recorded(ASSET, 3.0)) == [Understand("asset", ASSET, (("name", "mi chiamo Ugo Foscolo"),))]
    flow = Flow()
    to_menu(flow, caller="+33479000000")
    flow.handle(Digits("1"))
    flow.handle(Recorded(NAME, 2.0))
    assert flow.handle(Understood("name", said=" ")) == [Record("name", ("say-again", "say-name"), 8)]
    flow.handle(Recorded(NAME, 2.0))
    assert flow.handle(Understood("name", said="")) == [Record("asset", ("say-asset",), 15)]


def test_a_late_or_foreign_reading_is_ignored():
    flow = Flow()
    to_asset(flow)
    assert flow.handle(PROT) == []  # not asked for
    flow.handle(Recorded(ASSET, 5.0))
    assert flow.handle(Understood("name", "Mario Rossi", "Mario Rossi", 1.0)) == []  # another question's
    assert flow.handle(PROT) == [CONFIRM_ASSET]


def test_the_flow_state_is_plain_data():
    """Everything a call keeps between steps is str, int, float, bool, None or frozen dataclasses of those:
    the spool saves it as JSON."""
    import dataclasses
    import json

    flow = Flow()
    to_asset(flow)
    flow.handle(Recorded(ASSET, 5.0))
    flow.handle(PROT)

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {k: plain(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    json.dumps({k: plain(v) for k, v in vars(flow).items()})
