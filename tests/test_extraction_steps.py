"""Each extraction step alone, on a small directory: what it fills, from where, how sure — and that it leaves a
field empty rather than invent."""

from __future__ import annotations

import pytest

from ticketing.contact import Answer, Channel, Contact, Sender
from ticketing.directory import DirAsset, Directory, DirUser
from ticketing.extraction import STEPS, Extraction, check_pipeline, extract
from ticketing.text import clean, guess_language, strip_subject_prefixes

DIRECTORY = Directory(
    users=[
        DirUser(1, "Mario Rossi", "mario.rossi@x.it", ("+39 055 1234567",)),
        DirUser(2, "Anna De Luca", "anna.deluca@x.it", ("+39 055 7654321",)),
    ],
    assets=[
        DirAsset(10, "PRN-0210", "Stampante multifunzione piano 2", "hardware", ("stampante", "fotocopiatrice"), "prn-0210", "VNB3K12345", "low"),
        DirAsset(11, "PROT-01", "Protocollo informatico", "software", ("protocollo",), "prot-app01", None, "critical"),
        DirAsset(12, "PC-0277", "PC Ufficio Anagrafe 1", "hardware", ("postazione anagrafe",), "pc-0277", None, "medium"),
    ],
)


def run(step: str, contact: Contact, *before: str) -> Extraction:
    x = Extraction(contact, DIRECTORY)
    for name in (*before, step):
        STEPS[name](x)
    return x


def email(text: str = "", **kw) -> Contact:
    return Contact(channel=Channel.EMAIL, external_id="<x@y>", text=text, **kw)


# -- clean_text ------------------------------------------------------------------------------------------------
def test_clean_removes_greeting_quote_and_signature():
    c = clean(
        "Buongiorno,\nla stampante è inceppata.\n\nCordiali saluti\nMario Rossi\nUfficio Ragioneria\n\n"
        "Il giorno lun 3 nov 2026 alle 10:12 Help Desk <hd@x.it> ha scritto:\n> La sua richiesta è chiusa"
    )
    assert c.body == "la stampante è inceppata."
    assert c.signature == ("Mario Rossi", "Ufficio Ragioneria")


def test_clean_cuts_outlook_original_message_and_quoted_lines():
    c = clean("Ancora rotta.\n-----Messaggio originale-----\nDa: Help Desk\nInviato: ieri\n> vecchio testo")
    assert c.body == "Ancora rotta."


def test_clean_keeps_an_unpunctuated_transcript_after_the_greeting():
    assert clean("buongiorno sono mario rossi la stampante non va").body == "sono mario rossi la stampante non va"


@pytest.mark.parametrize("subject, clean_subject", [("Re: R: Fwd: problema", "problema"), ("RE: [HD-2026-000001] stampante", "[HD-2026-000001] stampante"), ("Riunione", "Riunione")])
def test_subject_prefixes(subject, clean_subject):
    assert strip_subject_prefixes(subject) == clean_subject


def test_language_guess():
    assert guess_language("la stampante non funziona e non riesco a lavorare") == "it"
    assert guess_language("the printer is not working and I cannot print") == "en"
    assert guess_language("PRN-0210") == "it"  # no evidence: the desk's default


# -- identify_reporter -----------------------------------------------------------------------------------------
def test_reporter_from_directory_by_email():
    x = run("identify_reporter", email(sender=Sender(None, "Mario.Rossi@x.it")), "clean_text")
    f = x.fields["reporter_name"]
    assert (f.value, f.confidence, f.source) == ("Mario Rossi", 1.0, "directory")
    assert x.user.id == 1


def test_reporter_from_caller_id_in_any_format():
    x = run("identify_reporter", Contact(channel=Channel.VOICE, external_id="c1", sender=Sender(phone="0039 0557654321")), "clean_text")
    assert x.fields["reporter_name"].value == "Anna De Luca" and x.fields["reporter_phone"].source == "caller_id"


def test_reporter_from_display_name_not_in_directory_is_a_header_guess():
    x = run("identify_reporter", email(sender=Sender("Carla Neri", "carla@esterni.it")), "clean_text")
    assert (x.fields["reporter_name"].value, x.fields["reporter_name"].source) == ("Carla Neri", "header")
    assert x.fields["reporter_name"].confidence < 1.0 and x.user is None


def test_reporter_from_a_phrase_and_from_a_signature():
    x = run("identify_reporter", email("Salve, mi chiamo Paolo Verdi e il protocollo non va"), "clean_text")
    assert x.fields["reporter_name"].value == "Paolo Verdi" and x.fields["reporter_name"].source == "body"
    x = run("identify_reporter", email("Il protocollo non va.\n\nSaluti\nDott. Paolo Verdi"), "clean_text")
    assert x.fields["reporter_name"].value == "Paolo Verdi" and x.fields["reporter_name"].source == "signature"


def test_lower_case_transcript_names_only_people_the_directory_knows():
    x = run("identify_reporter", Contact(channel=Channel.VOICE, external_id="c2", text="sono anna de luca la stampante è rotta"), "clean_text")
    assert x.fields["reporter_name"].value == "Anna De Luca"
    x = run("identify_reporter", Contact(channel=Channel.VOICE, external_id="c3", text="sono bloccato con la stampante"), "clean_text")
    assert x.fields["reporter_name"].value is None and x.fields["reporter_name"].confidence == 0.0


def test_a_role_mailbox_is_not_a_person():
    x = run("identify_reporter", email("testo", sender=Sender("Ufficio Protocollo", "protocollo@x.it")), "clean_text")
    assert x.fields["reporter_name"].value is None


# -- match_asset -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, tag, how",
    [
        ("il pc 0277 si riavvia", "PC-0277", 0.98),
        ("la VNB3K12345 fa rumore", "PRN-0210", 0.98),
        ("non riesco a protocollare, il protocollo è lento", "PROT-01", 0.9),
        ("la postazione dell'anagrafe è lenta", "PC-0277", 0.9),
        ("la stampnte fa le righe", "PRN-0210", None),
    ],
)
def test_asset_by_identifier_alias_and_near_miss(text, tag, how):
    x = run("match_asset", email(text), "clean_text")
    assert x.fields["asset"].value.split()[0] == tag and x.fields["asset"].source == "inventory"
    if how:
        assert x.fields["asset"].confidence == how
    else:
        assert x.fields["asset"].confidence < 0.9


def test_an_answer_that_matches_nothing_is_kept_as_free_text_with_low_confidence():
    c = Contact(channel=Channel.WEB, external_id="f1", answers={"asset": Answer("macchina del caffè", "form", 1.0)})
    x = run("match_asset", c, "clean_text")
    assert (x.fields["asset"].value, x.fields["asset"].source, x.fields["asset"].confidence) == ("macchina del caffè", "form", 0.5)
    assert x.asset_id is None


def test_no_asset_named_leaves_the_field_empty():
    x = run("match_asset", email("Come si cambia la password?"), "clean_text")
    assert x.fields["asset"].value is None and x.fields["asset"].confidence == 0.0


# -- extract_anomaly / set_urgency --------------------------------------------------------------------------------
def test_anomaly_is_the_cleaned_text_and_a_short_one_takes_the_subject():
    x = run("extract_anomaly", email("Buongiorno,\nnon stampa più da ieri sera, fa le righe.\nSaluti\nMario"), "clean_text")
    assert x.fields["anomaly"].value == "non stampa più da ieri sera, fa le righe." and x.fields["anomaly"].source == "body"
    x = run("extract_anomaly", email("vedi oggetto", subject="Re: VPN non si connette"), "clean_text")
    assert x.fields["anomaly"].value == "VPN non si connette: vedi oggetto"


@pytest.mark.parametrize(
    "text, urgency",
    [
        ("è urgente, sono bloccata", "high"),
        ("non è urgente, quando potete", "low"),
        ("tutti gli uffici sono senza rete", "critical"),
        ("the whole office cannot print", "critical"),
        ("no rush, the projector flickers", "low"),
        ("la stampante fa le righe", None),
    ],
)
def test_urgency_cues(text, urgency):
    x = run("set_urgency", email(text), "clean_text")
    assert x.fields["urgency"].value == urgency


def test_the_ivr_urgency_answer_decides_when_yes():
    c = Contact(channel=Channel.VOICE, external_id="c9", urgent=True)
    assert run("set_urgency", c, "clean_text").fields["urgency"].value == "critical"
    c = Contact(channel=Channel.VOICE, external_id="c10", urgent=False)
    assert run("set_urgency", c, "clean_text").fields["urgency"].value == "normal"


def test_pipeline_is_data_and_unknown_steps_are_refused():
    assert check_pipeline(["clean_text", "match_asset"]) == ("clean_text", "match_asset")
    with pytest.raises(ValueError, match="unknown extraction step"):
        check_pipeline(["clean_text", "guess_everything"])
    x = extract(email("il protocollo è lento"), DIRECTORY, ("clean_text", "match_asset"))
    assert x.fields["asset"].value.startswith("PROT-01") and x.fields["anomaly"].value is None
