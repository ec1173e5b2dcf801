"""A finished (or abandoned) call's `Report` as the core's intake record.

The call id is the external id, so a transport that delivers the same call twice (a retried webhook, a
restart) makes one ticket. Recordings travel as attachments of kind `recording`, already in the blob store;
their transcripts fill the ticket's fields in later. The contact has no text of its own (a note describes the
call to operators), so extraction never mines the gateway's words for an asset or an anomaly. What the caller keyed
is certain and says so: a name confirmed against the directory, an asset or a name the IVR said back and the
caller confirmed (`Answer(tag, "caller", 1.0)`), the answer to "is the whole office blocked?".
"""

from __future__ import annotations

from datetime import datetime, timezone

from ticketing.contact import Answer, Attachment, Channel, Contact, Sender

from .flow import Report


def report_to_contact(report: Report, received_at: datetime | None = None) -> Contact:
    # What the IVR said back and the caller confirmed is certain (source "caller"); a guess the caller refused
    # is kept as the transcript's, unsure, for an operator to check.
    answers = {
        question: Answer(heard.value, "caller" if heard.confirmed else "transcript", heard.confidence)
        for question, heard in report.heard.items()
    }
    if report.confirmed_name and "name" not in answers:
        answers["name"] = Answer(report.confirmed_name, "caller_id", 1.0)
    attachments = tuple(
        Attachment(f"answer-{question}.wav", "audio/wav", blob, kind="recording", question=question,
                   transcript=report.said.get(question))
        for question, blob in report.recordings.items()
    )
    note = " (the caller hung up before the end)" if report.abandoned else ""
    return Contact(
        channel=Channel.VOICE,
        external_id=report.call_id,
        received_at=received_at or datetime.now(timezone.utc),
        sender=Sender(name=report.confirmed_name, phone=report.caller_id),
        subject=None,
        text="",  # the caller's words are in the recordings; their transcripts fill the fields in
        note=f"Phone call, {len(attachments)} recorded answer(s){note}.",
        language=report.language,
        attachments=attachments,
        answers=answers,
        urgent=report.urgent,
    )
