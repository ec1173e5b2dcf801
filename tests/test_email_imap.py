"""The IMAP fetcher against a real Dovecot (Debian `dovecot-imapd`, started here on a loopback port with a
throwaway passwd-file and Maildir): fetch with BODY.PEEK and MOVE after commit, IDLE wake-up, a kill between
commit and MOVE followed by a restart (one ticket per message, with and without Message-ID), a UIDVALIDITY
reset, two different messages sharing a Message-ID (two tickets) beside a mail delivered twice (one), and
flag mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from channels.email.dovecot import Dovecot, DovecotMissing
from channels.email.imap import DONE_KEYWORD, ImapFetcher
from channels.email.settings import ImapMailbox
from ticketing.models import Message, Rejection, Ticket
from tests.conftest import ROOT, missing, wait_for

DATA = Path(__file__).parent / "data" / "email"
# A different mail from a mailer that reuses Message-IDs: the same one as it_attachment.eml.
SAME_ID_OTHER = (
    b"From: Scanner piano 2 <scanner2@regione.example.it>\nTo: assistenza@example.org\nSubject: Scansione\n"
    b"Date: Tue, 03 Mar 2026 09:15:00 +0100\nMessage-ID: <it-attach-1@regione.example.it>\n\n"
    b"Lo scanner del secondo piano segnala un inceppamento.\n"
)


@pytest.fixture(scope="module")
def dovecot():
    try:
        server = Dovecot({"desk": "secret"}).start()
    except DovecotMissing as e:
        missing(str(e))
    except RuntimeError as e:
        missing(f"Dovecot would not start: {e}")
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot) -> ImapMailbox:
    tag = uuid.uuid4().hex[:8]
    box = ImapMailbox(host="127.0.0.1", port=dovecot.port, tls=False, user="desk", password="secret", folder=f"Support{tag}", processed_folder=f"Done{tag}")
    with admin(box) as c:
        c.create_folder(box.folder)
    return box


def admin(box: ImapMailbox) -> IMAPClient:
    c = IMAPClient(box.host, port=box.port, ssl=False, timeout=30)
    c.login(box.user, "secret")
    return c


def append(box: ImapMailbox, *messages: bytes) -> None:
    with admin(box) as c:
        for m in messages:
            c.append(box.folder, m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def uids_in(box: ImapMailbox, folder: str) -> dict[int, tuple]:
    with admin(box) as c:
        c.select_folder(folder, readonly=True)
        return {u: d[b"FLAGS"] for u, d in c.fetch(c.search("ALL"), ["FLAGS"]).items()}


def fetcher(core, box: ImapMailbox, **kw) -> ImapFetcher:
    return ImapFetcher(box, intake=core.intake, blobs=core.blobs, **kw)


def count(core, model) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def drain_once(f: ImapFetcher) -> int:
    client = f.connect()
    try:
        return f.drain(client)
    finally:
        client.logout()


def test_fetch_commits_then_moves_without_marking_read(core, mailbox):
    append(mailbox, (DATA / "it_attachment.eml").read_bytes(), (DATA / "no_message_id.eml").read_bytes(), (DATA / "ack_bounce.eml").read_bytes())
    f = fetcher(core, mailbox)
    assert drain_once(f) == 0
    assert count(core, Ticket) == 2 and count(core, Rejection) == 1
    assert uids_in(mailbox, mailbox.folder) == {}
    moved = uids_in(mailbox, mailbox.processed_folder)
    assert len(moved) == 3 and not any(b"\\Seen" in flags for flags in moved.values())  # BODY.PEEK
    assert drain_once(f) == 0 and count(core, Message) == 2  # nothing left, nothing taken twice
    f.stop_thread()


def test_idle_wakes_the_fetcher_when_mail_arrives(sqlite_core, mailbox):
    box = mailbox.model_copy(update={"poll_seconds": 120})  # well beyond the wait below: only IDLE can wake it
    f = fetcher(sqlite_core, box)
    f.start_thread()
    try:
        wait_for(lambda: f.uidvalidity is not None)
        time.sleep(0.5)  # in IDLE by now
        append(box, (DATA / "html_only.eml").read_bytes())
        wait_for(lambda: count(sqlite_core, Ticket) == 1, timeout=10)
        wait_for(lambda: uids_in(box, box.folder) == {}, timeout=10)
    finally:
        f.stop_thread()


KILLED = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from channels.email.imap import ImapFetcher
    from channels.email.settings import ImapMailbox
    from gateway.app import build_core
    from tests.conftest import make_config

    box = ImapMailbox.model_validate_json(sys.argv[3])
    core = build_core(make_config(Path(sys.argv[1]), sys.argv[2]))
    # Killed between the commit and the MOVE: the after-commit hook is the last thing before the MOVE.
    f = ImapFetcher(box, intake=core.intake, blobs=core.blobs,
                    on_committed=lambda handled: os._exit(9))
    f.drain(f.connect())
    """
)


def test_a_kill_between_commit_and_move_then_a_restart_gives_one_ticket(core, mailbox, tmp_path):
    append(mailbox, (DATA / "it_attachment.eml").read_bytes(), (DATA / "no_message_id.eml").read_bytes(), SAME_ID_OTHER)
    url = core.config.storage.database_url()
    child = subprocess.run(
        [sys.executable, "-c", KILLED, str(tmp_path / "child"), url, mailbox.model_dump_json()],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 9, child.stderr[-2000:]
    assert count(core, Ticket) == 3 and len(uids_in(mailbox, mailbox.folder)) == 3  # committed, not moved
    f = fetcher(core, mailbox)  # the restart
    assert drain_once(f) == 0
    assert count(core, Ticket) == 3 and count(core, Message) == 3
    assert uids_in(mailbox, mailbox.folder) == {} and len(uids_in(mailbox, mailbox.processed_folder)) == 3
    f.stop_thread()


def test_a_uidvalidity_reset_reads_the_folder_again_without_duplicates(sqlite_core, mailbox):
    old = [(DATA / n).read_bytes() for n in ("it_attachment.eml", "no_message_id.eml")] + [SAME_ID_OTHER]
    append(mailbox, *old)
    f = fetcher(sqlite_core, mailbox)
    drain_once(f)
    first = f.uidvalidity
    # The folder is recreated (a restore, a migration): new UIDVALIDITY, old mail back in it, plus a new one.
    with admin(mailbox) as c:
        c.delete_folder(mailbox.folder)
        c.create_folder(mailbox.folder)
    append(mailbox, *old, (DATA / "html_only.eml").read_bytes())
    assert drain_once(f) == 0
    assert f.uidvalidity != first and f.validity_changes == 1
    assert count(sqlite_core, Ticket) == 4 and count(sqlite_core, Message) == 4
    assert uids_in(mailbox, mailbox.folder) == {}
    f.stop_thread()


def test_two_mails_sharing_a_message_id_are_two_tickets_and_a_mail_delivered_twice_is_one(sqlite_core, mailbox):
    first = (DATA / "it_attachment.eml").read_bytes()
    again = b"Delivered-To: assistenza@example.org\n" + first  # the same mail, delivered a second time
    append(mailbox, first, SAME_ID_OTHER, again)
    f = fetcher(sqlite_core, mailbox)
    assert drain_once(f) == 0
    with sqlite_core.sessions() as s:
        subjects = sorted(s.scalars(select(Message.subject)).all())
    assert subjects == ["Il programma dell'anagrafe non si apre - urgente perché bloccata", "Scansione"]
    assert count(sqlite_core, Ticket) == 2
    assert uids_in(mailbox, mailbox.folder) == {} and len(uids_in(mailbox, mailbox.processed_folder)) == 3
    f.stop_thread()


def test_flag_mode_leaves_mail_in_place_flagged_and_takes_it_once(sqlite_core, mailbox):
    box = mailbox.model_copy(update={"processed_folder": None})
    append(box, (DATA / "html_only.eml").read_bytes(), (DATA / "forwarded_tnef.eml").read_bytes())
    f = fetcher(sqlite_core, box)
    drain_once(f)
    flags = uids_in(box, box.folder)
    assert len(flags) == 2 and all(DONE_KEYWORD in fl for fl in flags.values())
    drain_once(f)
    assert count(sqlite_core, Ticket) == 2 and count(sqlite_core, Message) == 2
    f.stop_thread()


def test_a_server_that_is_down_is_retried_with_backoff(sqlite_core, dovecot):
    from tests.conftest import free_port

    box = ImapMailbox(host="127.0.0.1", port=free_port(), tls=False, user="desk", password="secret")
    f = fetcher(sqlite_core, box, max_backoff=0.2)
    f.start_thread()
    time.sleep(1.0)
    f.stop_thread()  # it kept trying, and stops when told
    assert f.uidvalidity is None
