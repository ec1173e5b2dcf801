"""Conformance over every real-world message of the shared corpus (`$HELPDESK_CORPORA/email/**`): no crash; each
one yields a ticket, a message appended to one, or a recorded rejection with its reason; bounces and
feedback-loop complaints never open a ticket. The corpus is not copied into the project (see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.email.process import commit, prepare
from ticketing.intake import Outcome
from ticketing.models import Message, Rejection, Ticket
from tests.conftest import missing

NO_TICKET = ("flanker/bounce", "flanker/complaints")


def corpus_files() -> list[Path]:
    root = os.environ.get("HELPDESK_CORPORA")
    if not root:
        return []
    return sorted(p for p in (Path(root) / "email").rglob("*") if p.is_file())


@pytest.fixture
def corpus():
    root = os.environ.get("HELPDESK_CORPORA")
    if not root:
        missing("HELPDESK_CORPORA is not set: no email corpus to check against")
    files = corpus_files()
    if not files:
        missing(f"no email corpus under {root}/email")
    return Path(root) / "email", files


def test_every_corpus_message_becomes_a_ticket_a_message_or_a_recorded_rejection(core, corpus):
    root, files = corpus
    outcomes: dict[str, str] = {}
    for path in files:
        name = path.relative_to(root).as_posix()
        p = prepare(path.read_bytes(), core.blobs, prefix="HD")
        (h,) = commit([p], core.intake)
        if h.result is not None:
            outcomes[name] = str(h.result.outcome)
        else:
            assert h.rejection_id and p.verdict.reason, name
            outcomes[name] = f"rejected: {p.verdict.reason}"
        if name.startswith(NO_TICKET):
            assert h.result is None, f"{name} opened a ticket"
    assert len(outcomes) == len(files) >= 90
    with core.sessions() as s:
        n_msg = s.scalar(select(func.count()).select_from(Message))
        n_rej = s.scalar(select(func.count()).select_from(Rejection))
        reasons = dict(s.execute(select(Rejection.external_id, Rejection.reason)).all())
        assert s.scalar(select(func.count()).select_from(Ticket)) >= 1
    # Several corpus files are the same message (same Message-ID): those are duplicates of one intake.
    taken = [n for n, o in outcomes.items() if o in (Outcome.CREATED, Outcome.APPENDED)]
    assert n_msg == len(taken)
    assert n_rej == len(set(reasons)) and all(reasons.values())
    assert all(o in (Outcome.CREATED, Outcome.APPENDED, Outcome.DUPLICATE) or o.startswith("rejected: ") for o in outcomes.values())


def test_the_corpus_twice_adds_nothing(sqlite_core, corpus):
    root, files = corpus
    items = [prepare(p.read_bytes(), sqlite_core.blobs) for p in files]
    commit(items, sqlite_core.intake)
    with sqlite_core.sessions() as s:
        before = [s.scalar(select(func.count()).select_from(m)) for m in (Ticket, Message, Rejection)]
    again = commit([prepare(p.read_bytes(), sqlite_core.blobs) for p in files], sqlite_core.intake)
    assert all(h.result is None or h.result.outcome is Outcome.DUPLICATE for h in again)
    with sqlite_core.sessions() as s:
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Ticket, Message, Rejection)] == before
