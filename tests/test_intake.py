"""The intake service on SQLite and on a real PostgreSQL: idempotence (also under a race between processes),
threading by ticket number and by In-Reply-To, reopening, and what the stored ticket holds."""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime, timezone

from sqlalchemy import func, select

from ticketing.contact import Answer, Attachment, Channel, Contact, Sender, ThreadHints
from ticketing.intake import Outcome
from ticketing.models import Event, Message, Ticket


def mail(external_id: str, text: str, **kw) -> Contact:
    kw.setdefault("sender", Sender("Giulia Bianchi", "giulia.bianchi@regione.example.it"))
    kw.setdefault("subject", "Problema")
    kw.setdefault("thread", ThreadHints(message_id=external_id))
    return Contact(channel=Channel.EMAIL, external_id=external_id, text=text, **kw)


def count(core, model) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_new_contact_makes_a_prefilled_ticket(core):
    blob = core.blobs.put(b"%PDF-1.4 screenshot")
    result = core.intake.submit(
        mail(
            "<a1@regione.example.it>",
            "Buongiorno,\nil programma dell'anagrafe non si apre, sono bloccata.\n\nCordiali saluti\nGiulia Bianchi",
            attachments=(Attachment("errore.pdf", "application/pdf", blob),),
        )
    )
    assert result.outcome is Outcome.CREATED
    assert result.ticket_number == f"HD-{datetime.now(timezone.utc).year}-{result.ticket_id:06d}"
    with core.sessions() as s:
        t = s.get(Ticket, result.ticket_id)
        assert t.status == "new" and t.level == 1 and t.channel == "email"
        assert t.value("reporter_name") == "Giulia Bianchi" and t.field("reporter_name").source == "directory"
        assert t.value("asset").startswith("ANAG-DB") or t.value("asset").startswith("PC-0277")
        assert "non si apre" in t.value("anomaly") and "Cordiali" not in t.value("anomaly")
        assert t.urgency == "high" and t.respond_by < t.resolve_by
        assert [e.kind for e in t.events] == ["created"]
        (m,) = t.messages
        assert m.attachments[0].filename == "errore.pdf" and m.attachments[0].sha256 == blob.sha256
    assert core.blobs.get(blob.sha256) == b"%PDF-1.4 screenshot"


def test_the_same_external_id_twice_makes_one_ticket(core):
    first = core.intake.submit(mail("<dup@x>", "La stampante non stampa"))
    again = core.intake.submit(mail("<dup@x>", "La stampante non stampa"))
    assert again.outcome is Outcome.DUPLICATE and again.ticket_id == first.ticket_id
    assert count(core, Ticket) == 1 and count(core, Message) == 1


def test_a_batch_with_a_duplicate_inside_commits_the_rest(core):
    results = core.intake.submit_many([mail("<b1@x>", "uno"), mail("<b2@x>", "due"), mail("<b1@x>", "uno")])
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.CREATED, Outcome.DUPLICATE]
    assert count(core, Ticket) == 2


def _race(url: str, data_dir: str, ids: list[str], barrier, out) -> None:
    from gateway.app import build_core
    from tests.conftest import make_config
    from pathlib import Path

    c = build_core(make_config(Path(data_dir), url))
    barrier.wait()
    outcomes = [str(c.intake.submit(mail(i, f"contatto {i}")).outcome) for i in ids]
    out.put(outcomes)
    c.close()


def test_two_processes_racing_on_the_same_ids_make_one_ticket_each(core, tmp_path):
    ids = [f"<race-{n}@x>" for n in range(60)]
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    url = core.config.storage.database_url()
    procs = [ctx.Process(target=_race, args=(url, str(tmp_path / f"p{n}"), ids, barrier, out)) for n in range(2)]
    for p in procs:
        p.start()
    outcomes = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    created = sum(o.count("created") for o in outcomes)
    duplicates = sum(o.count("duplicate") for o in outcomes)
    assert created == 60 and duplicates == 60
    assert count(core, Ticket) == 60 and count(core, Message) == 60


def test_a_ticket_number_in_the_subject_threads_into_that_ticket(core):
    first = core.intake.submit(mail("<t1@x>", "Il VPN non si connette"))
    reply = core.intake.submit(mail("<t2@x>", "Ho riavviato ma niente", subject=f"Re: [{first.ticket_number}] VPN"))
    assert reply.outcome is Outcome.APPENDED and reply.ticket_id == first.ticket_id
    with core.sessions() as s:
        t = s.get(Ticket, first.ticket_id)
        assert len(t.messages) == 2 and [e.kind for e in t.events] == ["created", "message_added"]


def test_a_number_typed_in_lower_case_or_with_spaces_still_threads(core):
    first = core.intake.submit(mail("<s1@x>", "Problema alla stampante"))
    n = first.ticket_number.lower()
    reply = core.intake.submit(mail("<s2@x>", f"riguardo al ticket {n}: ancora rotta", subject="stampante"))
    assert reply.ticket_id == first.ticket_id


def test_a_number_that_does_not_exist_opens_a_new_ticket(core):
    year = datetime.now(timezone.utc).year
    r = core.intake.submit(mail("<n1@x>", "testo", subject=f"[HD-{year}-999999] vecchio"))
    assert r.outcome is Outcome.CREATED


def test_in_reply_to_a_received_message_threads_even_from_someone_in_cc(core):
    first = core.intake.submit(mail("<orig@x>", "La rete non va al piano 2"))
    colleague = Sender("Anna De Luca", "anna.deluca@regione.example.it")
    reply = core.intake.submit(
        mail("<cc-reply@x>", "Confermo, anche da me", sender=colleague, subject="Re: rete",
             thread=ThreadHints(message_id="<cc-reply@x>", in_reply_to="<orig@x>", references=("<orig@x>",)))
    )
    assert reply.outcome is Outcome.APPENDED and reply.ticket_id == first.ticket_id


def test_a_reply_to_our_acknowledgement_threads_by_references(core):
    first = core.intake.submit(mail("<q1@x>", "Outlook chiede la password"))
    core.intake.record_outbound(first.ticket_id, "email", "<ack-1@helpdesk>", to="giulia.bianchi@regione.example.it", subject="ack", text="preso in carico")
    reply = core.intake.submit(mail("<q2@x>", "grazie", subject="Re: ack", thread=ThreadHints(message_id="<q2@x>", references=("<ack-1@helpdesk>",))))
    assert reply.outcome is Outcome.APPENDED and reply.ticket_id == first.ticket_id


def test_writing_again_after_resolution_reopens(core):
    first = core.intake.submit(mail("<r1@x>", "Il cedolino non si scarica"))
    with core.sessions() as s, s.begin():
        t = s.get(Ticket, first.ticket_id)
        core.lifecycle.take(t, "op1")
        core.lifecycle.resolve(t, "op1", "Ripristinato il servizio stipendi")
    again = core.intake.submit(mail("<r2@x>", f"Non va ancora ({first.ticket_number})"))
    assert again.outcome is Outcome.APPENDED and again.reopened
    with core.sessions() as s:
        t = s.get(Ticket, first.ticket_id)
        assert t.status == "in_progress" and t.assignee == "op1"
        assert [e.kind for e in t.events][-2:] == ["reopened", "message_added"]


def test_writing_to_a_closed_ticket_opens_a_new_one_that_says_which_it_follows(core):
    first = core.intake.submit(mail("<c1@x>", "Il proiettore non si accende"))
    with core.sessions() as s, s.begin():
        t = s.get(Ticket, first.ticket_id)
        core.lifecycle.resolve(t, "op1", "Sostituita la lampada")
        core.lifecycle.close(t, "op1")
    again = core.intake.submit(mail("<c2@x>", f"Di nuovo spento, vedi {first.ticket_number}"))
    assert again.outcome is Outcome.CREATED and again.ticket_id != first.ticket_id
    with core.sessions() as s:
        created = s.scalars(select(Event).where(Event.ticket_id == again.ticket_id)).one()
        assert created.data["follows"] == first.ticket_number


def test_a_voice_contact_is_identified_by_caller_id_and_answers(core):
    contact = Contact(
        channel=Channel.VOICE,
        external_id="call-0001",
        sender=Sender(phone="0554382144"),
        answers={
            "asset": Answer("la postazione dell'anagrafe", "transcript", 0.8),
            "anomaly": Answer("il computer non si accende", "transcript", 0.7),
        },
        urgent=False,
    )
    r = core.intake.submit(contact)
    with core.sessions() as s:
        t = s.get(Ticket, r.ticket_id)
        assert t.value("reporter_name") == "Giulia Bianchi" and t.field("reporter_name").source == "directory"
        assert t.value("asset").startswith("PC-0277")
        assert t.value("anomaly") == "il computer non si accende" and t.field("anomaly").confidence == 0.7
        assert t.value("urgency") == "normal" and t.pin and len(t.pin) == 4


def test_a_rejection_is_recorded_once_and_noted_on_its_ticket(core):
    first = core.intake.submit(mail("<k1@x>", "Il badge non funziona"))
    bounce = mail("<bounce@x>", "Delivery failed", sender=Sender(email="mailer-daemon@x"))
    core.intake.reject(bounce, "bounce of our acknowledgement", ticket_number=first.ticket_number)
    core.intake.reject(bounce, "bounce of our acknowledgement", ticket_number=first.ticket_number)
    with core.sessions() as s:
        t = s.get(Ticket, first.ticket_id)
        assert [e.kind for e in t.events] == ["created", "delivery_problem"]
    assert count(core, Ticket) == 1


def test_the_group_committer_batches_what_arrives_during_a_commit_and_isolates_a_failure():
    import threading

    import pytest

    from ticketing.committer import GroupCommitter

    release, entered = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def commit_many(items: list[int]) -> list[int]:
        if not batches:
            entered.set()
            release.wait(10)  # the first commit is slow: everything submitted meanwhile waits for the next
        batches.append(list(items))
        if 13 in items:
            raise ValueError("contact 13 trips the core")
        return [i * 10 for i in items]

    committer = GroupCommitter(commit_many, max_batch=64)
    first = committer.submit(0)
    assert entered.wait(10)  # the commit thread has taken the first item and waits in commit_many
    rest = [committer.submit(i) for i in range(1, 21)]
    release.set()
    assert first.result(10) == 0
    results = []
    for i, f in zip(range(1, 21), rest):
        if i == 13:
            with pytest.raises(ValueError):
                f.result(10)
        else:
            results.append(f.result(10))
    assert results == [i * 10 for i in range(1, 21) if i != 13]
    assert batches[0] == [0] and batches[1] == list(range(1, 21))  # one batch for the 20, then one by one
    assert len(batches) == 2 + 20
    committer.close()
