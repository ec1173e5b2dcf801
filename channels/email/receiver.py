"""The SMTP receiver (RFC 5321, with SIZE from RFC 1870 and enhanced status codes from RFC 3463) on aiosmtpd.

The edge rejects cheaply and answers only for what is done:
- RCPT TO a recipient that is not one of the desk's addresses: `550 5.1.1` (never an open relay); past the
  recipient limit: `452 4.5.3`.
- SIZE is advertised and enforced by aiosmtpd (`552` at MAIL FROM or at the end of DATA).
- After DATA: the raw message is stored in the blob store, parsed and its fields extracted in a worker
  process (off the event loop, across the cores), then handed to the core's one batched committer
  (`IntakePort.deliver_future`), which commits it together with whatever else arrives meanwhile. `250` is
  sent only once it is committed; any failure of ours answers `451 4.3.0`, so the sending server keeps the
  message and tries again (aiosmtpd's own answer to an exception is a permanent 500, which would bounce the
  user's mail).

Limits, each with a clear answer (`Gate`):
- connections per client address and in total: `421 4.7.0` and the connection closes (RFC 5321 §3.8);
- the idle timeout shrinks under pressure (past half the total), as Postfix's stress mode does, and the
  sessions already idle are shortened at once;
- a full disk (or database) answers `452 4.3.1`, never 250 for what was not stored;
- DATA bytes held across sessions, being received or processed: past the cap, `451 4.3.1` (insufficient
  system storage, RFC 3463), so memory stays bounded whatever number of large mails arrive together;
- lines end in CRLF or a bare LF, normalised to CRLF as Postfix does, and a long line is accepted (no
  `500 Line too long`: the limit that matters is the message size).
aiosmtpd's per-command INFO lines (with addresses) are logged at DEBUG.

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
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from channels.logs import Throttled
from ticketing.faults import is_storage_full

from .access import PasswordFile, tls_context
from .auth import SenderCheck
from .process import Handled, Prepared, prepare
from .settings import EmailSettings

log = logging.getLogger("channels.email.smtp")

TEMPFAIL = "451 4.3.0 Requested action aborted: local error in processing, please try again later"
STORAGE_FULL = "452 4.3.1 Insufficient system storage, try again later"
TOO_MUCH_IN_FLIGHT = "451 4.3.1 Insufficient system storage: too much mail in flight, try again later"
AUTH_TEMPFAIL = "454 4.7.0 Temporary authentication failure"


class Handler:
    """aiosmtpd handler: the RCPT policy, DATA to a committed intake, and 451 for our own failures."""

    def __init__(self, settings: EmailSettings, blobs_root: Path, intake: Any, pool: concurrent.futures.Executor, prefix: str,
                 on_committed: Callable[[list[Handled]], None] | None = None):
        self.addresses = frozenset(a.lower() for a in settings.addresses)
        self.max_recipients = settings.smtp.max_recipients
        self.max_attachment = settings.max_attachment_bytes
        self.blobs_root = str(blobs_root)
        self.intake = intake
        extractor = getattr(intake, "extractor", None)
        self.extractor = extractor() if extractor is not None else None  # run by the parse workers
        self.on_committed = on_committed
        self.refused = Throttled(log, every=10.0)
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
        envelope.original_content = envelope.content = None  # the worker has its own copy: hold one, not three
        started = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
            prepared: Prepared = await loop.run_in_executor(
                self.pool,
                prepare_job,
                (bytes(raw), self.blobs_root, envelope.mail_from, self.max_attachment, self.prefix,
                 self.sender_check.for_client(_peer_ip(session), session.host_name, envelope.mail_from), self.extractor),
            )
            del raw
            if prepared.verdict is None:
                result = await asyncio.wrap_future(self.intake.deliver_future(prepared.contact, prepared.extraction))
                handled = Handled(prepared, result=result)
            else:  # no ticket (a bounce, an auto-reply): recorded where an operator sees it
                v = prepared.verdict
                rid = await loop.run_in_executor(None, lambda: self.intake.reject(prepared.contact, v.reason, fault=prepared.fault, ticket_number=v.ticket_number))
                handled = Handled(prepared, rejection_id=rid)
        except Exception as e:  # noqa: BLE001 - ours: the sender keeps the mail and retries
            if is_storage_full(e):
                self.refused.warning("full", "email: storage full: mail from %r answered 452 4.3.1: %s", envelope.mail_from, e)
                return STORAGE_FULL
            log.error("email from %r not taken in, answered 451: %s: %s", envelope.mail_from, type(e).__name__, e)
            return TEMPFAIL
        if self.on_committed is not None:
            try:
                self.on_committed([handled])
            except Exception:  # noqa: BLE001 - what follows a commit never undoes it
                log.exception("email: after-commit hook failed")
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


_BARE_LF = re.compile(rb"(?<!\r)\n")
_DATA_READ_LIMIT = 64 * 1024  # DATA bytes a session buffers before the transport pauses reading (twice this), and per piece

_PLAIN_PATH = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,255})>(.*)", re.S)


class Gate:
    """The receiver's limits, shared by its sessions: connections per client address and in total, the idle
    timeout under pressure, and the DATA bytes held in memory across sessions."""

    def __init__(self, smtp) -> None:
        self.max_total, self.max_per_ip = smtp.max_connections, smtp.max_connections_per_ip
        self.timeout, self.stress_timeout = smtp.timeout_seconds, smtp.stress_timeout_seconds
        self.max_in_flight = smtp.max_data_in_flight_bytes
        self.per_ip: dict[str, int] = {}
        self.sessions: set[_SMTP] = set()
        self.in_flight = 0  # DATA bytes received and not yet answered, all sessions together
        self.refused = Throttled(log, every=10.0)

    @property
    def stressed(self) -> bool:
        return len(self.sessions) * 2 >= self.max_total

    def admit(self, proto: _SMTP, ip: str) -> str | None:
        """None: welcome (counted until `leave`); else the reason to refuse the connection."""
        if len(self.sessions) >= self.max_total:
            return f"{len(self.sessions)} connections, the most this server takes"
        if self.per_ip.get(ip, 0) >= self.max_per_ip:
            return f"{self.max_per_ip} connections from {ip}, the most one client may open"
        was_stressed = self.stressed
        self.sessions.add(proto)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        if self.stressed and not was_stressed:
            # Entering stress: the idle sessions get the short timeout now, not at their next command.
            log.warning("email: %d SMTP connections: idle timeout now %.0f s", len(self.sessions), self.stress_timeout)
            for other in self.sessions:
                other._reset_timeout()
        return None

    def leave(self, proto: _SMTP, ip: str) -> None:
        if proto in self.sessions:
            self.sessions.discard(proto)
            left = self.per_ip.get(ip, 1) - 1
            if left > 0:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)

    def idle_timeout(self) -> float:
        return self.stress_timeout if self.stressed else self.timeout



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

    gate: Gate | None = None  # set by SmtpReceiver

    def __init__(self, *args, passwords: PasswordFile | None = None, gate: Gate | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.passwords = passwords
        self.gate = gate
        self._refused = False
        self._ip = "?"

    # -- connection limits ------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        if self.gate is not None and self.transport is None:  # not the STARTTLS upgrade of a counted session
            peer = transport.get_extra_info("peername")
            self._ip = peer[0] if isinstance(peer, tuple) else str(peer)
            why = self.gate.admit(self, self._ip)
            if why is not None:
                self._refused = True
                self.gate.refused.warning(("conn", self._ip), "email: SMTP connection from %s refused with 421: %s", self._ip, why)
                transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        if self.gate is not None:
            self.gate.leave(self, self._ip)
        super().connection_lost(error)

    def eof_received(self):
        if self._refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def _reset_timeout(self, duration: float | None = None) -> None:
        if self._refused:
            return
        super()._reset_timeout(duration or (self.gate.idle_timeout() if self.gate is not None else None))

    # -- DATA: bare LF, long lines, bytes in flight ------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        """RFC 5321 §4.1.1.4, read as Postfix does: a line ends in CRLF or a bare LF (normalised to CRLF), a
        line longer than 1,000 bytes is kept, dot-stuffing is undone, SIZE is enforced (552), and the bytes
        held across sessions are capped (451 4.3.1)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        gate = self.gate
        if gate is not None and gate.in_flight >= gate.max_in_flight:
            gate.refused.warning("in-flight", "email: %d bytes of mail in flight: DATA answered 451 4.3.1", gate.in_flight)
            await self.push(TOO_MUCH_IN_FLIGHT)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit
        reader = self._reader
        buf = bytearray()  # one buffer, not a bytes object per line (+40 bytes each: half again a mail's size)
        size = held = 0
        state = None  # or the reply that ends the transaction instead of the handler's

        def take(data: bytes) -> None:
            nonlocal buf, size, held, state
            size += len(data)
            if state is None and limit and size > limit:
                state = "552 5.3.4 Error: message too big for this server"
            elif state is None and gate is not None and gate.in_flight + len(data) > gate.max_in_flight and held > 0:
                state = TOO_MUCH_IN_FLIGHT
                gate.refused.warning("in-flight", "email: %d bytes of mail in flight: DATA answered 451 4.3.1", gate.in_flight)
            if state is not None:
                if held:
                    buf = bytearray()
                    if gate is not None:
                        gate.in_flight -= held
                    held = 0
                return
            buf += data
            held += len(data)
            if gate is not None:
                gate.in_flight += len(data)

        async def after_dot() -> bytes | None:
            """A line began with a dot (consumed): None at the end of the data (".", then CRLF or LF), else what
            follows the dot, which dot-stuffing put there."""
            nxt = await reader.readexactly(1)
            if nxt == b"\n":
                return None
            if nxt == b"\r":
                nxt2 = await reader.readexactly(1)
                return None if nxt2 == b"\n" else nxt + nxt2
            return nxt

        # Read in large pieces up to the next line that starts with a dot (the end, or a stuffed dot), not line by
        # line: the command reader's limit (1,001 bytes) is raised for the data, so that the transport is not
        # paused every two kilobytes either (together a third of the event loop's time per 45 KiB mail).
        saved_limit = reader._limit
        reader._limit = _DATA_READ_LIMIT
        try:
            at_line_start = True
            while self.transport is not None:
                try:
                    if at_line_start:  # the stream's first byte, or after a piece that ended a line
                        first = await reader.readexactly(1)
                        if first == b".":
                            rest = await after_dot()
                            if rest is None:
                                break
                            take(rest)
                            at_line_start = False
                        else:
                            take(first)
                            at_line_start = first == b"\n"
                        continue
                    try:
                        piece = await reader.readuntil(b"\n.")
                    except asyncio.LimitOverrunError as e:  # no line-start dot in the buffer yet: take what is safe
                        piece = await reader.readexactly(e.consumed)
                        take(piece)
                        at_line_start = piece.endswith(b"\n")
                        continue
                    take(piece[:-1])
                    rest = await after_dot()
                    if rest is None:
                        break
                    take(rest)
                except asyncio.IncompleteReadError:
                    return  # the client went away mid-DATA
            else:
                return
            if state is not None:
                await self.push(state)
                self._set_post_data_state()
                return
            if buf.count(b"\n") != buf.count(b"\r\n"):  # bare LFs: normalised to CRLF, as Postfix does
                buf = bytearray(_BARE_LF.sub(b"\r\n", buf))
            content = bytes(buf)
            buf = bytearray()
            self.envelope.content = self.envelope.original_content = content
            del content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            reader._limit = saved_limit
            if gate is not None:
                gate.in_flight -= held

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


def _peer_ip(session: Session) -> str | None:
    peer = getattr(session, "peer", None)
    return peer[0] if isinstance(peer, (tuple, list)) and peer else None


def prepare_job(args: tuple) -> Prepared:
    raw, blobs_root, mail_from, max_attachment, prefix, sender_check, extractor = args
    # The null reverse-path of a bounce arrives as "<>".
    return prepare(raw, blobs_root, envelope_from=mail_from, max_attachment=max_attachment, prefix=prefix,
                   sender_check=sender_check, extractor=extractor)


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
        intake: Any,
        blobs_root: Path,
        prefix: str = "HD",
        on_committed: Callable[[list[Handled]], None] | None = None,
        pool: concurrent.futures.Executor | None = None,
    ):
        self.settings = settings
        # The channel's parse workers (shared with its IMAP fetchers), or a pool of its own, shut down with it.
        self._own_pool = pool is None
        self.pool: concurrent.futures.Executor = pool if pool is not None else parse_pool(settings.smtp.parse_workers)
        self.handler = Handler(settings, blobs_root, intake, self.pool, prefix, on_committed)
        self.gate = Gate(settings.smtp)
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
            gate=self.gate,
            **auth,
        )

    async def start(self) -> None:
        quiet_aiosmtpd()
        loop = asyncio.get_running_loop()
        # Start every worker now (spawn costs a fraction of a second each), not on the first mails.
        n = max(1, self.settings.smtp.parse_workers)
        await asyncio.gather(*(loop.run_in_executor(self.pool, _warm) for _ in range(n)))
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
        if self._own_pool:
            self.pool.shutdown(wait=True, cancel_futures=True)


def parse_pool(workers: int) -> concurrent.futures.Executor:
    """The parse workers: `workers` processes (0: four threads of this process) that run `prepare_job`."""
    if workers > 0:
        # spawn, not fork: the gateway process has threads (the committer, database pools) by now. The
        # workers die with the gateway, kill -9 included (and with them the resource tracker, whose pipe
        # they hold).
        return concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),)
        )
    return concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="email-parse")


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


def _worker_init(parent_pid: int) -> None:
    """A parse worker dies with the gateway (gateway/children.py), and leaves Ctrl-C to it, which shuts the
    pool down in order (no tracebacks)."""
    import signal

    from gateway.children import die_with_parent

    die_with_parent(signal.SIGKILL, parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _QuietCommands(logging.Filter):
    """aiosmtpd logs each command and peer at INFO on "mail.log" (5 lines a mail, with addresses, 9 % of the
    receiver's time): they are DEBUG lines here, written only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        if not logging.getLogger("mail.log").isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet_aiosmtpd() -> None:
    logger = logging.getLogger("mail.log")
    if not any(isinstance(f, _QuietCommands) for f in logger.filters):
        logger.addFilter(_QuietCommands())
