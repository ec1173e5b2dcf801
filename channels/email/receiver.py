"""The SMTP receiver (RFC 5321, with SIZE from RFC 1870 and enhanced status codes from RFC 3463) on aiosmtpd.

The edge rejects cheaply and answers only for what is done:
- RCPT TO a recipient that is not one of the desk's addresses: `550 5.1.1` (never an open relay); past the
  recipient limit: `452 4.5.3`.
- SIZE is advertised and enforced by aiosmtpd (`552` at MAIL FROM or at the end of DATA).
- After DATA: the raw message is stored in the blob store and parsed in a worker process (off the event
  loop, across the cores), then committed together with the mail of other sessions waiting at the same time
  (`Committer`, one `deliver_many` per batch). `250` is sent only once the commit returned; any failure of
  ours answers `451 4.3.0`, so the sending server keeps the message and tries again (aiosmtpd's own answer to
  an exception is a permanent 500, which would bounce the user's mail).

For relays that use them (all off by default, see `access`): STARTTLS (RFC 3207) with the configured
certificate, optionally required before MAIL (`530`); AUTH PLAIN / LOGIN (RFC 4954) against a file of Argon2
hashes, offered only after STARTTLS unless `auth_require_tls = false`, optionally required before MAIL
(`530 5.7.0`). A wrong password answers `535 5.7.8`, a fourth AUTH in one session `421` (and the end of
it), a users file gone bad `454 4.7.0`; the Argon2 check (a tenth of a second of CPU) runs in a thread so
that the other sessions are not held up meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from .access import PasswordFile, tls_context
from .auth import SenderCheck
from .process import CommitError, Handled, Prepared, commit, prepare
from .settings import EmailSettings

log = logging.getLogger("channels.email.smtp")

TEMPFAIL = "451 4.3.0 Requested action aborted: local error in processing, please try again later"
AUTH_TEMPFAIL = "454 4.7.0 Temporary authentication failure"


@dataclass
class _Pending:
    prepared: Prepared
    future: asyncio.Future


@dataclass
class Committer:
    """Commits the mail of concurrent sessions in batches: each waiter gets its own outcome or exception.

    One batch is committed at a time, in a dedicated thread; what arrives meanwhile waits for the next batch,
    so under load the batches grow by themselves and a single mail is never held back waiting for company.
    """

    deliver_many: Callable
    reject: Callable
    max_batch: int = 64
    on_committed: Callable[[list[Handled]], None] | None = None
    _queue: asyncio.Queue | None = None
    _task: asyncio.Task | None = None
    _thread: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="email-commit")
    )

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="email-committer")

    async def submit(self, prepared: Prepared) -> Handled:
        assert self._queue is not None, "Committer.start() first"
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(prepared, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            items = [p.prepared for p in batch]
            try:
                handled: list[Handled | None] = await loop.run_in_executor(self._thread, commit, items, self.deliver_many, self.reject)
                error: BaseException | None = None
            except CommitError as e:
                handled, error = e.handled, e.cause
                log.error("email: %s", e)
            except Exception as e:  # noqa: BLE001 - nothing of the batch is known committed
                handled, error = [None] * len(batch), e
                log.exception("email: committing %d mail(s) failed", len(batch))
            for pending, h in zip(batch, handled):
                if pending.future.done():  # the session went away; the mail is committed all the same
                    continue
                if h is not None:
                    pending.future.set_result(h)
                else:
                    pending.future.set_exception(error or RuntimeError("not committed"))
            done = [h for h in handled if h is not None]
            if done and self.on_committed is not None:
                try:
                    self.on_committed(done)
                except Exception:  # noqa: BLE001 - what follows a commit never undoes it
                    log.exception("email: after-commit hook failed")

    async def stop(self) -> None:
        if self._queue is not None:
            # Let the waiting sessions have their answers before stopping.
            for _ in range(200):
                if self._queue.empty():
                    break
                await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._thread.shutdown(wait=True)


class Handler:
    """aiosmtpd handler: the RCPT policy, DATA to a committed intake, and 451 for our own failures."""

    def __init__(self, settings: EmailSettings, blobs_root: Path, committer: Committer, pool: concurrent.futures.Executor, prefix: str):
        self.addresses = frozenset(a.lower() for a in settings.addresses)
        self.max_recipients = settings.smtp.max_recipients
        self.max_attachment = settings.max_attachment_bytes
        self.blobs_root = str(blobs_root)
        self.committer = committer
        self.pool = pool
        self.prefix = prefix
        self.auth = settings.smtp.auth != "off"
        self.sender_check = SenderCheck.from_settings(settings.ack)  # DMARC alignment, for acknowledgements

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if not self.auth:  # aiosmtpd offers AUTH after STARTTLS even when nobody could pass it
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list) -> str:
        if address.strip("<>").lower() not in self.addresses:
            return f"550 5.1.1 <{address}>: recipient address rejected: not a help desk address"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        started = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(
                self.pool,
                _prepare_job,
                (bytes(raw), self.blobs_root, envelope.mail_from, self.max_attachment, self.prefix, self.sender_check),
            )
            handled = await self.committer.submit(prepared)
        except Exception as e:  # noqa: BLE001 - ours: the sender keeps the mail and retries
            log.error("email from %r not taken in, answered 451: %s: %s", envelope.mail_from, type(e).__name__, e)
            return TEMPFAIL
        log.debug("email %s committed in %.1f ms", handled.prepared.contact.external_id, (time.monotonic() - started) * 1000)
        if handled.ticket_number:
            return f"250 2.0.0 OK {handled.ticket_number}"
        return f"250 2.0.0 OK recorded ({handled.prepared.verdict.kind if handled.prepared.verdict else 'message'})"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # the client's handshake failed: its problem, the session ends
            log.warning("email: STARTTLS handshake failed: %s", error.__cause__ or error)
        else:
            log.error("email: SMTP session error: %s: %s", type(error).__name__, error)
        return TEMPFAIL


class _Session(Session):
    # aiosmtpd 1.4 still sets this deprecated property after every AUTH, logging a warning each time.
    login_data = None


_PLAIN_PATH = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,255})>(.*)", re.S)


# Called with each reply the receiver sends ("250 2.0.0 …"): gateway/metrics.py counts them by class.
REPLY_OBSERVERS: list[Callable[[str], None]] = []


class _SMTP(SMTP):
    """aiosmtpd's protocol with a fast path for the common `<local@domain>` path (its general address parser,
    the `email` package's RFC 5322 grammar, cost a third of a millisecond per MAIL and per RCPT), and AUTH
    credentials checked in a thread."""

    async def push(self, status: Any) -> None:
        for observe in REPLY_OBSERVERS:
            observe(status if isinstance(status, str) else status.decode("ascii", "replace"))
        await super().push(status)

    def __init__(self, *args, passwords: PasswordFile | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.passwords = passwords

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _authenticate(self, mechanism: str, auth_data: LoginPassword):  # type: ignore[override]
        # aiosmtpd calls this synchronously, on the event loop: hand the credentials back to auth_PLAIN /
        # auth_LOGIN below, which check them in a thread.
        return auth_data

    async def auth_PLAIN(self, _, args: list[str]) -> AuthResult:
        return await self._check(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args: list[str]) -> AuthResult:
        return await self._check(await super().auth_LOGIN(_, args))

    async def _check(self, credentials: AuthResult | LoginPassword) -> AuthResult:
        if not isinstance(credentials, LoginPassword):
            return credentials  # the exchange ended before any credentials (aborted, bad base64): answered
        if self.passwords is None:
            return AuthResult(success=False, handled=False)
        try:
            ok = await asyncio.get_running_loop().run_in_executor(None, self.passwords.verify, credentials.login, credentials.password)
        except Exception as e:  # noqa: BLE001 - ours (the users file): the relay tries again later
            log.error("email: AUTH not checked, answered 454: %s: %s", type(e).__name__, e)
            return AuthResult(success=False, handled=False, message=AUTH_TEMPFAIL)
        if not ok:
            log.warning("email: AUTH failed for %r from %s", credentials.login.decode("utf-8", "replace"), self.session.peer if self.session else "?")
            return AuthResult(success=False, handled=False)  # 535 5.7.8
        return AuthResult(success=True, auth_data=credentials.login.decode("utf-8", "replace"))

    def _getaddr(self, arg: str):
        m = _PLAIN_PATH.fullmatch(arg.strip()) if arg else None
        if m is not None and ".." not in m.group(1):
            return m.group(1), m.group(2)
        return super()._getaddr(arg)


def _prepare_job(args: tuple) -> Prepared:
    raw, blobs_root, mail_from, max_attachment, prefix, sender_check = args
    # The null reverse-path of a bounce arrives as "<>".
    return prepare(raw, blobs_root, envelope_from=mail_from, max_attachment=max_attachment, prefix=prefix, sender_check=sender_check)


def _warm() -> int:
    import channels.email.process  # noqa: F401 - import the parser before the first mail arrives

    return 0


class SmtpReceiver:
    """The SMTP listener as a service: `await start()`, `await stop()`; `port` is the bound port."""

    name = "email-smtp"

    def __init__(
        self,
        settings: EmailSettings,
        *,
        deliver_many: Callable,
        reject: Callable,
        blobs_root: Path,
        prefix: str = "HD",
        on_committed: Callable[[list[Handled]], None] | None = None,
    ):
        self.settings = settings
        self.committer = Committer(deliver_many, reject, settings.smtp.max_batch, on_committed)
        workers = settings.smtp.parse_workers
        if workers > 0:
            # spawn, not fork: the gateway process has threads (the committer, database pools) by now.
            self.pool: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
            )
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="email-parse")
        self.handler = Handler(settings, blobs_root, self.committer, self.pool, prefix)
        smtp = settings.smtp
        # Loaded here, at start: a missing certificate or a malformed users file stops the gateway, named.
        self.tls = tls_context(smtp.tls_cert, smtp.tls_key) if smtp.tls_cert else None
        self.passwords = PasswordFile(smtp.auth_users_file) if smtp.auth != "off" and smtp.auth_users_file else None
        self.hostname = settings.smtp.hostname or socket.gethostname()
        self.server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    def _factory(self) -> SMTP:
        smtp = self.settings.smtp
        auth = {}
        if self.passwords is not None:
            auth = dict(
                auth_required=smtp.auth == "required",
                auth_require_tls=smtp.auth_require_tls,
                # Three AUTH commands per connection: a fourth gets 421 and the connection closes.
                command_call_limit={"AUTH": 3, "*": 2**62},
            )
        return _SMTP(
            self.handler,
            data_size_limit=smtp.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.hostname,
            ident="helpdesk-gateway",
            timeout=smtp.timeout_seconds,
            tls_context=self.tls,
            require_starttls=smtp.require_tls,
            passwords=self.passwords,
            **auth,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Start every worker now (spawn costs a fraction of a second each), not on the first mails.
        n = max(1, self.settings.smtp.parse_workers)
        await asyncio.gather(*(loop.run_in_executor(self.pool, _warm) for _ in range(n)))
        self.committer.start()
        smtp = self.settings.smtp
        self.server = await loop.create_server(self._factory, host=smtp.host, port=smtp.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info(
            "SMTP receiver listening on %s:%d for %s (STARTTLS %s, AUTH %s)",
            smtp.host, self.port, ", ".join(self.settings.addresses),
            "required" if smtp.require_tls else "offered" if self.tls else "off", smtp.auth,
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - sessions still open are cut
                pass
        await self.committer.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_in_thread(receiver_factory: Callable[[], Any]):
    """A receiver running on its own event loop in a thread, for tests and benches: returns (receiver, stop)."""
    import threading

    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        box["loop"] = loop
        try:
            receiver = receiver_factory()
            box["receiver"] = receiver
            loop.run_until_complete(receiver.start())
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(receiver.stop())
        loop.close()

    thread = threading.Thread(target=main, name="email-smtp", daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in box:
        raise box["error"]

    def stop() -> None:
        box["loop"].call_soon_threadsafe(box["loop"].stop)
        thread.join(30)

    return box["receiver"], stop


def _ignore_sigint() -> None:
    """Parse workers leave Ctrl-C to the gateway, which shuts the pool down in order (no tracebacks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
