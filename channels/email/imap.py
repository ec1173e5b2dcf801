"""The IMAP fetcher (IMAP4rev1, RFC 3501; IDLE RFC 2177; MOVE RFC 6851; UIDPLUS RFC 4315) on imapclient.

Exactly once, with no state of our own to lose: a mailbox's folder holds the mail still to take in. Each
round fetches by UID with `BODY.PEEK[]` (nothing is marked read), stores and parses the messages, commits
them to the core in one `deliver_many`, and only then MOVEs them to the processed folder (or, configured so,
flags them `$HelpdeskDone`). A crash at any point before the MOVE leaves the mail where it was: the next
round fetches it again and the core answers "duplicate", so it is moved without a second ticket.

The key the core dedups on is the Message-ID with a fingerprint of the content, or the fingerprint alone
when there is no Message-ID (`parse.intake_key`). It covers (mailbox, UIDVALIDITY, UID) without a table of
its own: the bytes under one UID never change (RFC 3501 §2.3.1.1), so every re-fetch of a UID yields the
same key, also without Message-ID; two different messages that share a Message-ID differ in the fingerprint
and make two tickets; and one mail delivered twice into the folder (two UIDs, the same bytes) is one
ticket, where a key on the UID alone would make two.

UIDVALIDITY is checked at every SELECT: when it changes the folder was recreated and old UIDs mean nothing.
No UID outlives the round that fetched it, so the folder is simply read again in full (the keys above make
that safe: what was taken in already comes back as a duplicate and is moved). IDLE is used when the server
offers it, polling otherwise; a lost connection is reopened with exponential backoff; a message that cannot
be committed is left in place and retried later without holding up the others.
"""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import Future
import logging
import threading
import time
from typing import Any, Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from .process import Handled, Prepared, prepare, submit
from .settings import ImapMailbox

log = logging.getLogger("channels.email.imap")

DONE_KEYWORD = b"$HelpdeskDone"


class ImapFetcher:
    """Drains one mailbox into the core, in a thread of its own; `await start()` / `await stop()`."""

    def __init__(
        self,
        mailbox: ImapMailbox,
        *,
        intake: Any,
        blobs,
        max_attachment: int = 25 * 1024 * 1024,
        prefix: str = "HD",
        on_committed: Callable[[list[Handled]], None] | None = None,
        sender_check: Callable | None = None,
        max_backoff: float = 60.0,
        parse_pool: concurrent.futures.Executor | None = None,
    ):
        self.mailbox = mailbox
        self.name = f"email-imap:{mailbox.user}@{mailbox.host}:{mailbox.port}/{mailbox.folder}"
        self.intake = intake  # the core's port (ticketing.ports.IntakePort)
        extractor = getattr(intake, "extractor", None)
        self.extractor = extractor() if extractor is not None else None  # fields extracted beside the parsing
        self.blobs, self.max_attachment, self.prefix = blobs, max_attachment, prefix
        self.on_committed = on_committed
        self.sender_check = sender_check  # channels/email/auth.py: DMARC alignment, for acknowledgements
        self.max_backoff = max_backoff
        self.uidvalidity: int | None = None
        self.validity_changes = 0
        self.taken = 0  # messages committed and moved, for tests and logs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: IMAPClient | None = None
        # The email channel's parse workers (other processes, shared with the SMTP receiver): parsing, the sender
        # check and extraction then run beside this thread's fetching and the committer, on every core. Without
        # them, a few threads of this process.
        self._workers = parse_pool
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="imap-prepare")

    @property
    def connected(self) -> bool:
        """Whether the fetcher holds a live IMAP connection now (for /readyz)."""
        return self._client is not None

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.start_thread()

    async def stop(self) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self.stop_thread)

    def start_thread(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop_thread(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=True)

    def run(self) -> None:
        """Connect, drain, wait for news; on any connection error reconnect after a growing pause."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.5
            except Exception as e:  # noqa: BLE001 - the server went away, refused us, or spoke nonsense
                if self._stop.is_set():
                    break
                log.warning("%s: %s: %s; reconnecting in %.1fs", self.name, type(e).__name__, e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                self._close()

    # -- one connection ----------------------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        m = self.mailbox
        client = IMAPClient(m.host, port=m.port, ssl=m.tls, timeout=30)
        client.login(m.user, m.secret())
        if m.processed_folder and not client.folder_exists(m.processed_folder):
            try:
                client.create_folder(m.processed_folder)
            except IMAPClientError:  # created meanwhile by another fetcher
                pass
        self.select(client)
        return client

    def select(self, client: IMAPClient) -> None:
        info = client.select_folder(self.mailbox.folder)
        validity = int(info[b"UIDVALIDITY"])
        if self.uidvalidity is not None and validity != self.uidvalidity:
            # No UID of ours is kept across rounds, so nothing is stale: the folder is simply read again,
            # and mail already taken in under the old UIDs comes back as duplicates (moved, not ticketed).
            log.warning("%s: UIDVALIDITY changed %s -> %s: reading the whole folder again", self.name, self.uidvalidity, validity)
            self.validity_changes += 1
        self.uidvalidity = validity

    def _session(self) -> None:
        client = self._client = self.connect()
        idle = b"IDLE" in client.capabilities()
        while not self._stop.is_set():
            failures = self.drain(client)
            if failures:  # something could not be committed (the database?): retry later, not in a spin
                self._stop.wait(min(self.mailbox.poll_seconds, 5.0))
                continue
            if idle:
                client.idle()
                try:
                    deadline = time.monotonic() + min(self.mailbox.poll_seconds, 25 * 60)
                    while not self._stop.is_set() and time.monotonic() < deadline:
                        if client.idle_check(timeout=0.5):
                            break
                finally:
                    client.idle_done()
            else:
                self._stop.wait(self.mailbox.poll_seconds)
                client.noop()
            self.select(client)  # cheap, and where a changed UIDVALIDITY shows up

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001
                try:
                    client.shutdown()
                except Exception:  # noqa: BLE001
                    pass

    # -- the work ----------------------------------------------------------------------------------------
    def pending(self, client: IMAPClient) -> list[int]:
        if self.mailbox.processed_folder:
            return sorted(client.search("ALL"))
        return sorted(client.search(["UNKEYWORD", DONE_KEYWORD.decode()]))

    def drain(self, client: IMAPClient) -> int:
        """Take in every pending message; returns how many could not be committed (left for later).

        Three stages overlap: batch N+1 is fetched while batch N is parsed (by the parse workers) and batch N-1
        is in the core's committer; a batch is MOVEd once committed, before the next one is handed over. The
        connection is only used from this thread."""
        failures = 0
        uids = self.pending(client)
        parsing: tuple[list[int], dict[int, Future]] | None = None
        in_commit: tuple[list[tuple[int, Prepared]], list[Future]] | None = None
        for start in range(0, len(uids) + self.mailbox.batch, self.mailbox.batch):
            batch = uids[start : start + self.mailbox.batch] if not self._stop.is_set() else []
            fetched = client.fetch(batch, ["BODY.PEEK[]"]) if batch else {}
            # A UID missing from the answer was expunged meanwhile by someone else.
            started = (batch, {uid: self._submit_prepare(data.get(b"BODY[]") or b"") for uid, data in fetched.items()})
            del fetched
            if parsing is not None:
                items, lost = self._parsed(*parsing)
                failures += lost
                if in_commit is not None:
                    failures += self._finish(client, *in_commit)
                in_commit = (items, [submit(p, self.intake) for _, p in items])
            parsing = started if batch else None
            if not batch:
                break
        if in_commit is not None:
            failures += self._finish(client, *in_commit)
        return failures

    def _parsed(self, batch: list[int], futures: dict[int, Future]) -> tuple[list[tuple[int, Prepared]], int]:
        """A batch's prepared mails in UID order, and how many could not be stored (left in the mailbox)."""
        items: list[tuple[int, Prepared]] = []
        lost = 0
        for uid in batch:
            if uid not in futures:
                continue
            try:
                items.append((uid, futures[uid].result()))
            except Exception as e:  # noqa: BLE001 - the blob store failed: leave it in the mailbox
                log.error("%s: UID %d not stored: %s", self.name, uid, e)
                lost += 1
        return items, lost

    def _finish(self, client: IMAPClient, items: list[tuple[int, Prepared]], futures: list[Future]) -> int:
        """Wait for a batch's commits, then move what is committed out of the folder; returns the failures."""
        handled: list[Handled | None] = []
        for (uid, p), f in zip(items, futures):
            try:
                handled.append(f.result())
            except Exception as e:  # noqa: BLE001 - left in the folder: the next round tries it again
                log.error("%s: UID %d not committed: %s: %s", self.name, uid, type(e).__name__, e)
                handled.append(None)
        done = [uid for (uid, _), h in zip(items, handled) if h is not None]
        if log.isEnabledFor(logging.DEBUG):
            for (uid, p), h in zip(items, handled):
                what = "not committed" if h is None else h.ticket_number or f"rejection {h.rejection_id}"
                log.debug("%s: UIDVALIDITY %s UID %d %s: %s", self.name, self.uidvalidity, uid, p.contact.external_id, what)
        if self.on_committed is not None:
            try:
                self.on_committed([h for h in handled if h is not None])
            except Exception:  # noqa: BLE001 - what follows a commit never undoes it
                log.exception("%s: after-commit hook failed", self.name)
        if done:
            self._mark_done(client, done)
            self.taken += len(done)
        return len(items) - len(done)

    def _submit_prepare(self, raw: bytes) -> Future:
        if self._workers is not None:
            from .receiver import prepare_job

            root = str(getattr(self.blobs, "root", self.blobs))
            return self._workers.submit(prepare_job, (raw, root, None, self.max_attachment, self.prefix, self.sender_check, self.extractor))
        return self._pool.submit(self._prepare, raw)

    def _prepare(self, raw: bytes) -> Prepared:
        return prepare(raw, self.blobs, max_attachment=self.max_attachment, prefix=self.prefix, sender_check=self.sender_check,
                       extractor=self.extractor)

    def _mark_done(self, client: IMAPClient, uids: list[int]) -> None:
        dest = self.mailbox.processed_folder
        if dest:
            if b"MOVE" in client.capabilities():
                client.move(uids, dest)
            else:  # RFC 3501 without MOVE: copy, then delete just these (UID EXPUNGE with UIDPLUS)
                client.copy(uids, dest)
                client.add_flags(uids, [b"\\Deleted"], silent=True)
                client.uid_expunge(uids) if b"UIDPLUS" in client.capabilities() else client.expunge()
        else:
            client.add_flags(uids, [DONE_KEYWORD, b"\\Seen"], silent=True)
