"""MIME to the intake record, and the mail that must never open a ticket, on the recorded fixtures in
tests/data/email; then the whole path (prepare → commit) into a real core: tickets, threading, rejections."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.email.classify import classify
from channels.email.parse import decode_bytes, load, parse_message, sanitize
from channels.email.process import commit, prepare
from ticketing.intake import Outcome
from ticketing.models import Event, Message, Rejection, Ticket

DATA = Path(__file__).parent / "data" / "email"


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_rfc2047_subject_rfc2231_filename_plain_text_preferred_and_attachments_stored(tmp_path):
    from ticketing.storage import BlobStore

    blobs = BlobStore(tmp_path / "blobs")
    c = parse_message(raw("it_attachment.eml"), blobs)
    assert c.subject == "Il programma dell'anagrafe non si apre - urgente perché bloccata"
    assert c.sender.name == "Giulia Bianchi" and c.sender.email == "giulia.bianchi@regione.example.it"
    assert "non si apre più" in c.text and "<b>" not in c.text  # text/plain chosen over the HTML alternative
    names = [a.filename for a in c.attachments]
    assert names == ["schermata d’errore.pdf", "immagine.png"]  # RFC 2231 and RFC 2047 names; inline image kept
    assert blobs.get(c.attachments[0].blob.sha256) == b"%PDF-1.4 fake"
    assert c.thread.message_id == "<it-attach-1@regione.example.it>" and c.external_id.startswith("<it-attach-1@regione.example.it>#")


def test_html_only_becomes_readable_text_without_scripts_or_styles():
    c = parse_message(raw("html_only.eml"))
    assert c.text == "La stampante del 2° piano non stampa è ferma.\nGrazie"


@pytest.mark.parametrize("name", ["undeclared_latin1.eml", "unknown_charset.eml"])
def test_missing_or_unknown_charset_degrades_but_never_raises(name):
    c = parse_message(raw(name))
    assert "è" in c.text  # 8-bit Latin-1 with no or a bogus charset: read as Windows-1252


def test_wrong_charset_gives_replacement_characters_not_an_exception():
    assert decode_bytes("perché".encode("utf-8"), "ascii") == "perché"  # mislabelled UTF-8 is recovered
    assert "\ufffd" in decode_bytes(b"\x81\x8d\x8f", "utf-8")
    assert decode_bytes(b"abc", "rot13") == "abc"  # a codec that is not a text encoding
    assert sanitize("a\x00b\udce8c") == "abèc"  # NUL dropped (PostgreSQL refuses it), raw byte recovered


def test_forwarded_message_tnef_and_a_broken_part_are_all_kept(tmp_path):
    c = parse_message(raw("forwarded_tnef.eml"))
    assert "Vi inoltro" in c.text and "errore 500 a tutti" in c.text and "Subject: Protocollo informatico" in c.text
    by_name = {a.filename: a for a in c.attachments}
    assert by_name["winmail.dat"].content_type == "application/ms-tnef" and by_name["winmail.dat"].blob
    assert "InvalidBase64" in by_name["broken.bin"].note


def test_attachment_over_the_limit_is_noted_not_kept(tmp_path):
    from ticketing.storage import BlobStore

    blobs = BlobStore(tmp_path / "blobs")
    c = parse_message(raw("it_attachment.eml"), blobs, max_attachment=10)
    pdf = c.attachments[0]
    assert pdf.blob is None and "over the 10-byte limit" in pdf.note
    assert c.attachments[1].blob is not None  # the 8-byte image is under it


def test_a_mail_without_message_id_is_keyed_by_its_content():
    a = parse_message(raw("no_message_id.eml"))
    relayed = parse_message(b"Received: from relay by mx; Tue, 3 Mar 2026 10:00:05 +0100\r\n" + raw("no_message_id.eml").replace(b"\n", b"\r\n"))
    assert a.external_id.startswith("sha256:") and a.external_id == relayed.external_id
    other = parse_message(raw("no_message_id.eml").replace(b"sportello 3", b"sportello 4"))
    assert other.external_id != a.external_id


def test_a_copy_keeps_its_key_and_another_mail_with_the_same_message_id_gets_its_own():
    a = parse_message(raw("it_attachment.eml"))
    copy = parse_message(b"Received: from relay by mx; Tue, 3 Mar 2026 10:00:05 +0100\r\nDelivered-To: desk@example.org\r\n" + raw("it_attachment.eml"))
    other = parse_message(raw("it_attachment.eml").replace(b"non si apre", b"si chiude"))  # same Message-ID
    assert copy.external_id == a.external_id
    assert other.external_id != a.external_id and other.thread.message_id == a.thread.message_id


@pytest.mark.parametrize(
    "name, kind, words",
    [
        ("out_of_office.eml", "auto_reply", "Auto-Submitted"),
        ("x_autoreply.eml", "auto_reply", "X-Autoreply"),
        ("ack_bounce.eml", "bounce", "delivery-status"),
    ],
)
def test_automatic_mail_is_classified_with_its_reason(name, kind, words):
    data = raw(name)
    v = classify(load(data), data)
    assert v is not None and v.kind == kind and words in v.reason


def test_envelope_and_header_cues():
    person = raw("no_message_id.eml")
    assert classify(load(person), person) is None
    assert classify(load(person), person, envelope_from="<>").kind == "bounce"
    for extra in (b"Precedence: bulk\n", b"Precedence: junk\n", b"Auto-Submitted: auto-generated\n", b"X-Auto-Response-Suppress: OOF\n"):
        assert classify(load(extra + person)).kind == "auto_reply", extra
    assert classify(load(b"Auto-Submitted: no\n" + person)) is None
    oof = person.replace(b"Subject: Nessun Message-ID", b"Subject: Out of Office: back on Monday")
    assert classify(load(oof)).kind == "auto_reply"


def test_a_bounce_of_our_acknowledgement_names_its_ticket():
    data = raw("ack_bounce.eml")
    assert classify(load(data), data).ticket_number == "HD-2026-000001"


# -- into the core ------------------------------------------------------------------------------------------
def _take_in(core, data: bytes, **kw):
    p = prepare(data, core.blobs, **kw)
    return commit([p], core.intake)[0]


def _count(core, model) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_mail_makes_a_prefilled_ticket_with_its_raw_bytes_stored(core):
    data = raw("it_attachment.eml")
    h = _take_in(core, data)
    assert h.result.outcome is Outcome.CREATED
    assert core.blobs.get(h.prepared.contact.raw.sha256) == data
    with core.sessions() as s:
        t = s.get(Ticket, h.result.ticket_id)
        assert t.value("reporter_name") == "Giulia Bianchi" and t.urgency in ("high", "critical")
        assert "non si apre" in t.value("anomaly") and "Cordiali" not in t.value("anomaly")
        assert [a.filename for a in t.messages[0].attachments] == ["schermata d’errore.pdf", "immagine.png"]
    again = _take_in(core, data)  # an SMTP retry or an IMAP re-fetch
    assert again.result.outcome is Outcome.DUPLICATE and _count(core, Message) == 1


def test_replies_by_subject_tag_and_by_references_from_cc_append_to_the_ticket(core):
    first = _take_in(core, raw("no_message_id.eml")).result
    tagged = raw("no_message_id.eml").replace(b"Subject: Nessun Message-ID", f"Subject: Re: [{first.ticket_number}] monitor".encode())
    assert _take_in(core, tagged).result.ticket_id == first.ticket_id
    opened = _take_in(core, raw("it_attachment.eml")).result
    reply_all = (
        b"From: Collega in CC <collega@regione.example.it>\nTo: assistenza@example.org\nSubject: Re: anagrafe\n"
        b"Message-ID: <cc-reply@x>\nIn-Reply-To: <it-attach-1@regione.example.it>\n"
        b"References: <it-attach-1@regione.example.it>\n\nAnche io ho lo stesso problema.\n"
    )
    r = _take_in(core, reply_all).result
    assert r.outcome is Outcome.APPENDED and r.ticket_id == opened.ticket_id
    assert _count(core, Ticket) == 2


def test_automatic_mail_is_recorded_not_ticketed_and_a_bounce_of_our_ack_is_noted_on_its_ticket(core):
    t = _take_in(core, raw("it_attachment.eml")).result
    bounce = raw("ack_bounce.eml").replace(b"HD-2026-000001", t.ticket_number.encode())
    ooo = raw("out_of_office.eml")
    handled = [_take_in(core, bounce), _take_in(core, ooo)]
    assert all(h.result is None and h.rejection_id for h in handled)
    assert _count(core, Ticket) == 1
    with core.sessions() as s:
        rows = {r.external_id.split("#")[0]: r for r in s.scalars(select(Rejection))}  # Message-ID#fingerprint
        assert rows["<bounce-ack-1@mx.example.net>"].reason.startswith("bounce: delivery status notification")
        assert rows["<bounce-ack-1@mx.example.net>"].ticket_id == t.ticket_id
        assert rows["<ooo-1@regione.example.it>"].fault == "sender"
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.ticket_id == t.ticket_id))]
        assert "delivery_problem" in kinds
    _take_in(core, ooo)  # recorded once however often it arrives
    assert _count(core, Rejection) == 2


def test_a_batch_commits_people_and_records_the_rest(sqlite_core):
    core = sqlite_core
    items = [prepare(raw(n), core.blobs) for n in ("it_attachment.eml", "out_of_office.eml", "html_only.eml", "it_attachment.eml")]
    handled = commit(items, core.intake)
    assert [h.result.outcome if h.result else "rejected" for h in handled] == [Outcome.CREATED, "rejected", Outcome.CREATED, Outcome.DUPLICATE]
