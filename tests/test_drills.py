"""Failure drills of the core and the email/web intake (issue 14, "Must show"), each asserting counts:

- an SMTP burst while the gateway is killed (kill -9) five times, the clients retrying as an MTA does: every
  mail is one ticket, none lost, none twice;
- web form posts while the gateway is killed, re-sent with their submission id: one ticket per form;
- kill -9 of the gateway leaves none of its children (the parse workers, the resource tracker) alive;
- a desk read transaction held open while 500 mails arrive: none refused (SQLite reads take no write lock);
- 5,000 idle SMTP connections: a real client is still served;
- PostgreSQL stopped in the middle of a burst: only 451 answered meanwhile, and nothing lost once it is back;
- a full disk: SMTP answers 452 4.3.1 (never 250 for what it did not store), then takes mail in again;
- two gateways on one PostgreSQL receive the same 1,000 mails: one ticket and one acknowledgement each.

The gateways run as `helpdesk-gateway serve` subprocesses (voice off), their logs in files.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.conftest import ROOT, free_port, missing, wait_for

pytestmark = pytest.mark.drill

EXE = Path(sys.executable).with_name("helpdesk-gateway")
SUPPORT = "assistenza@example.org"
SENDER = "mario.rossi@regione.example.it"  # in config/users.csv: a known sender, acknowledged


class Gateway:
    """`helpdesk-gateway serve` with mail and web (voice off) in a subprocess, its log in a file."""

    def __init__(self, tmp: Path, name: str = "gw", data: Path | None = None, **env: str):
        self.tmp, self.data = tmp, data or tmp / f"{name}-data"
        self.smtp_port, self.web_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(self.data),
            "HELPDESK_GATEWAY__EMAIL__SMTP__PORT": str(self.smtp_port),
            "HELPDESK_GATEWAY__WEB__PORT": str(self.web_port),
            "HELPDESK_GATEWAY__WEB__COOKIE_SECURE": "false",
            "HELPDESK_GATEWAY__VOICE__ENABLED": "false",
            **env,
        }
        self.env.pop("HELPDESK_GATEWAY_CONFIG", None)
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(EXE), "serve"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        want = self.starts
        wait_for(lambda: self.text().count("helpdesk-gateway ready") >= want or self.proc.poll() is not None, timeout=90, interval=0.1)
        assert self.proc.poll() is None, self.text()[-3000:]

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data / "helpdesk.sqlite3", timeout=30)


def mail(i: int, tag: str = "drill") -> bytes:
    return (
        f"From: Mario Rossi <{SENDER}>\r\nTo: {SUPPORT}\r\nSubject: {tag} {i}: la stampante non stampa\r\n"
        f"Message-ID: <{tag}-{i}@drill.test>\r\n\r\nBuongiorno, la stampante PRN-0210 del secondo piano non stampa ({i}).\r\n"
        "Grazie\r\nMario Rossi\r\n"
    ).encode()


def send_once(port: int, data: bytes, timeout: float = 30) -> tuple[int, str]:
    """One SMTP transaction: the answer to the end of DATA, or (0, why) when the connection failed."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
            s.ehlo("drill.test")
            code, msg = s.mail(SENDER)
            if code != 250:
                return code, msg.decode(errors="replace")
            code, msg = s.rcpt(SUPPORT)
            if code != 250:
                return code, msg.decode(errors="replace")
            code, msg = s.data(data)
            return code, msg.decode(errors="replace")
    except (OSError, smtplib.SMTPException) as e:
        code = getattr(e, "smtp_code", 0)
        return (code if isinstance(code, int) and code >= 400 else 0), f"{type(e).__name__}: {e}"


def send_until_accepted(port, data: bytes, deadline: float, answers: list | None = None) -> str:
    """As an MTA does: a 4xx or a lost connection is tried again (after a short pause here); 5xx is final."""
    port_of = port if callable(port) else (lambda: port)
    while True:
        code, msg = send_once(port_of(), data)
        if answers is not None:
            answers.append(code)
        if code == 250:
            return msg
        assert code == 0 or 400 <= code < 500, (code, msg)  # never a permanent refusal
        assert time.monotonic() < deadline, f"not accepted in time: {code} {msg}"
        time.sleep(0.2)


def count_email(db: sqlite3.Connection) -> tuple[int, int, int]:
    """(tickets, messages, distinct external ids) of the email channel."""
    tickets = db.execute("SELECT count(*) FROM tickets WHERE channel = 'email'").fetchone()[0]
    messages, distinct = db.execute("SELECT count(*), count(DISTINCT external_id) FROM messages WHERE channel = 'email' AND direction = 'in'").fetchone()
    return tickets, messages, distinct


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(x) for x in children.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


# -- kill -9 ---------------------------------------------------------------------------------------------------
def test_smtp_burst_with_five_kill_9_loses_and_duplicates_nothing(tmp_path):
    gw = Gateway(tmp_path)
    gw.start()
    n, clients = 300, 8
    deadline = time.monotonic() + 240
    stop_killing = threading.Event()

    def killer() -> None:
        for _ in range(5):
            if stop_killing.wait(1.5):
                return
            gw.kill()
            time.sleep(0.3)
            gw.start()

    k = threading.Thread(target=killer)
    try:
        k.start()
        with ThreadPoolExecutor(clients) as pool:
            replies = list(pool.map(lambda i: send_until_accepted(lambda: gw.smtp_port, mail(i), deadline), range(n)))
        k.join()
        assert gw.starts == 6, "the burst outlasted five kills"
    finally:
        stop_killing.set()
        k.join()
        gw.stop()
    assert all(r.startswith("2.0.0 OK") for r in replies)
    with gw.sqlite() as db:
        assert count_email(db) == (n, n, n)  # every mail one ticket: none lost, none twice


def test_web_form_posts_with_kill_9_and_resends_make_one_ticket_each(tmp_path):
    gw = Gateway(tmp_path, **{"HELPDESK_GATEWAY__EMAIL__ENABLED": "false", "HELPDESK_GATEWAY__WEB__SUBMIT_PER_MINUTE": "0"})
    gw.start()
    n = 60

    def form() -> tuple[urllib.request.OpenerDirector, dict]:
        while True:
            jar = CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            try:
                page = opener.open(f"http://127.0.0.1:{gw.web_port}/", timeout=10).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        import re

        fields = dict(re.findall(r'name="(sid|csrf)" value="([^"]+)"', page))
        assert set(fields) == {"sid", "csrf"}, page[:500]
        return opener, fields

    forms = [form() for _ in range(n)]

    def post(i: int) -> int:
        opener, fields = forms[i]
        body = urllib.parse.urlencode({**fields, "name": f"Utente {i}", "email": f"utente{i}@regione.example.it",
                                       "phone": "", "asset": "PRN-0210", "anomaly": f"La stampante non stampa ({i})", "website": ""}).encode()
        deadline = time.monotonic() + 120
        while True:  # re-sent as a user does after an error page or a lost answer: the same form, the same id
            try:
                with opener.open(urllib.request.Request(f"http://127.0.0.1:{gw.web_port}/", data=body), timeout=15) as r:
                    if r.status == 200:
                        return r.status
            except urllib.error.HTTPError as e:
                assert e.code in (403, 503, 429) or e.code >= 500, e.code
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)

    stop = threading.Event()

    def killer() -> None:
        for _ in range(3):
            if stop.wait(0.8):
                return
            gw.kill()
            gw.start()

    k = threading.Thread(target=killer)
    try:
        k.start()
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(post, range(n)))
    finally:
        stop.set()
        k.join()
        gw.stop()
    with gw.sqlite() as db:
        tickets = db.execute("SELECT count(*) FROM tickets WHERE channel = 'web'").fetchone()[0]
        distinct = db.execute("SELECT count(DISTINCT external_id) FROM messages WHERE channel = 'web'").fetchone()[0]
    assert (tickets, distinct) == (n, n)


def test_kill_9_leaves_no_child_behind(tmp_path):
    gw = Gateway(tmp_path, **{"HELPDESK_GATEWAY__EMAIL__SMTP__PARSE_WORKERS": "2"})
    gw.start()
    assert send_once(gw.smtp_port, mail(1))[0] == 250  # the workers have worked
    children = descendants(gw.proc.pid)
    names = [cmdline(p) for p in children]
    assert sum(b"multiprocessing" in c for c in names) >= 3, names  # 2 parse workers and the resource tracker
    gw.kill()
    wait_for(lambda: not any(alive(p) for p in children), timeout=10)
    assert [p for p in children if alive(p)] == []


# -- reads beside intake ---------------------------------------------------------------------------------------
def test_a_desk_read_transaction_held_open_refuses_no_mail(sqlite_core):
    from channels.email.plugin import load
    from channels.email.receiver import run_in_thread
    from channels.email.settings import EmailSettings
    from gateway.app import channel_context
    from ticketing.models import Ticket

    settings = EmailSettings(enabled=True, smtp={"port": free_port(), "parse_workers": 1}, ack={"enabled": False})
    _, stop = run_in_thread(lambda: load(channel_context(sqlite_core, settings)))
    reader = sqlite_core.sessions()
    try:
        before = reader.scalar(select(func.count()).select_from(Ticket))  # the read transaction begins here
        answers: list[int] = []
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda i: send_once(settings.smtp.port, mail(i, "read"))[0], range(500)))
        assert answers.count(250) == 500, sorted(set(answers))
        assert reader.scalar(select(func.count()).select_from(Ticket)) == before  # still its own snapshot
    finally:
        reader.close()
        stop()
    with sqlite_core.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == before + 500


# -- descriptors -----------------------------------------------------------------------------------------------
def test_five_thousand_idle_connections_and_a_real_client_is_served(sqlite_core):
    from channels.email.plugin import load
    from channels.email.receiver import run_in_thread
    from channels.email.settings import EmailSettings
    from gateway.app import channel_context
    from gateway.service import raise_open_files_limit

    if raise_open_files_limit() < 8000:
        missing("an open files limit of 8,000 (ulimit -Hn) for 5,000 connections and their server ends")
    settings = EmailSettings(enabled=True, ack={"enabled": False},
                             smtp={"port": free_port(), "parse_workers": 0, "stress_timeout_seconds": 3})
    _, stop = run_in_thread(lambda: load(channel_context(sqlite_core, settings)))
    idle: list[socket.socket] = []
    try:
        for i in range(5000):  # 100 addresses, 50 connections each: the per-address cap admits all, the total not
            s = socket.socket()
            s.bind((f"127.0.{1 + i // 5000}.{1 + i % 100}", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", settings.smtp.port))
            idle.append(s)
        started = time.monotonic()
        reply = send_until_accepted(settings.smtp.port, mail(1, "idle"), time.monotonic() + 30)
        assert reply.startswith("2.0.0 OK")
        assert time.monotonic() - started < 20
    finally:
        for s in idle:
            s.close()
        stop()


# -- PostgreSQL ------------------------------------------------------------------------------------------------
@pytest.fixture
def private_postgres():
    """A PostgreSQL server of this test's own (the suite's shared one must not be stopped): (url, stop, start)."""
    from tests.conftest import PostgresServer, _new_pg_database

    try:
        server = PostgresServer()
    except (RuntimeError, subprocess.CalledProcessError, KeyError) as e:
        missing(f"no PostgreSQL to drill with: {e}")
    data = server.dir / "data"
    opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.dir} -c fsync=off -c max_connections=200"

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*server.as_user, str(server.bindir / "pg_ctl"), "-D", str(data), "-w", *args], capture_output=True)

    url = _new_pg_database(server.base)
    yield url, lambda: ctl("-m", "immediate", "stop"), lambda: ctl("-o", opts, "-l", str(server.dir / "log"), "start")
    server.stop()


def test_postgresql_stopped_mid_burst_answers_451_only_and_loses_nothing(tmp_path, private_postgres):
    url, pg_stop, pg_start = private_postgres
    gw = Gateway(tmp_path, HELPDESK_GATEWAY__STORAGE__URL=url)
    gw.start()
    n = 200
    answers: list[int] = []
    deadline = time.monotonic() + 180

    def outage() -> None:
        time.sleep(1.0)
        assert pg_stop().returncode == 0
        time.sleep(3.0)
        assert pg_start().returncode == 0

    o = threading.Thread(target=outage)
    try:
        o.start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: send_until_accepted(gw.smtp_port, mail(i, "pg"), deadline, answers), range(n)))
        o.join()
    finally:
        o.join()
        gw.stop()
    assert set(answers) <= {250, 451}, sorted(set(answers))
    assert 451 in answers, "the outage happened during the burst"
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as c:
        tickets = c.execute(text("SELECT count(*) FROM tickets WHERE channel = 'email'")).scalar()
        messages, distinct = c.execute(text("SELECT count(*), count(DISTINCT external_id) FROM messages WHERE channel = 'email' AND direction = 'in'")).one()
    engine.dispose()
    assert (tickets, messages, distinct) == (n, n, n)


@pytest.mark.timeout(900)  # 2,000 SMTP transactions and 1,000 acknowledgements: ~1 min quiet, 6 at load 20
def test_two_gateways_on_one_postgresql_take_the_same_mails_once(tmp_path, private_postgres):
    url, _, _ = private_postgres
    from channels.email.sink import MailSink

    with MailSink() as relay:
        common = {"HELPDESK_GATEWAY__STORAGE__URL": url, "HELPDESK_GATEWAY__EMAIL__SMTP__PARSE_WORKERS": "1", "HELPDESK_GATEWAY__EMAIL__ACK__RELAY_HOST": "127.0.0.1",
                  "HELPDESK_GATEWAY__EMAIL__ACK__RELAY_PORT": str(relay.port),
                  # Every mail is from one sender: the per-address limit is exactly the burst, so one gateway
                  # counting alone would let the other send more (the limit lives in the database, both read it).
                  "HELPDESK_GATEWAY__EMAIL__ACK__PER_ADDRESS_PER_HOUR": "1000", "HELPDESK_GATEWAY__EMAIL__ACK__GLOBAL_PER_HOUR": "100000"}
        a, b = Gateway(tmp_path, "a", **common), Gateway(tmp_path, "b", **common)
        a.start()
        b.start()
        n = 1000
        try:
            deadline = time.monotonic() + 240
            with ThreadPoolExecutor(16) as pool:  # every mail to both gateways at once
                jobs = [pool.submit(send_until_accepted, gw.smtp_port, mail(i, "twin"), deadline) for i in range(n) for gw in (a, b)]
                replies = [j.result() for j in jobs]
            numbers = [r.rsplit(" ", 1)[1] for r in replies]
            assert numbers[0::2] == numbers[1::2]  # both gateways answered with the same ticket
            wait_for(lambda: len(relay.received) >= n, timeout=120)
            for i in range(n, n + 10):  # past the sender's limit, on both gateways: tickets, no acknowledgement
                assert send_until_accepted((a, b)[i % 2].smtp_port, mail(i, "twin"), time.monotonic() + 60).startswith("2.0.0 OK")
            time.sleep(3)  # anything sent twice, or past the limit, would arrive now
        finally:
            a.stop()
            b.stop()
        acks = [m.message["In-Reply-To"] for m in relay.received]
    assert len(acks) == n and len(set(acks)) == n, (len(acks), len(set(acks)))
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as c:
        tickets = c.execute(text("SELECT count(*) FROM tickets WHERE channel = 'email'")).scalar()
        outbox = c.execute(text("SELECT count(*), count(DISTINCT ticket_id) FROM outbox")).one()
    engine.dispose()
    assert tickets == n + 10
    assert tuple(outbox) == (n, n)


# -- full disk -------------------------------------------------------------------------------------------------
def test_a_full_disk_answers_452_never_250_then_mail_flows_again(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        missing("mount -t tmpfs (root, or CAP_SYS_ADMIN) for the full-disk drill")
    try:
        gw = Gateway(tmp_path, data=mnt / "data", **{"HELPDESK_GATEWAY__WEB__ENABLED": "false"})
        gw.start()
        try:
            assert send_once(gw.smtp_port, mail(0, "disk"))[0] == 250
            filler = mnt / "filler"
            with open(filler, "wb") as f:  # fill what is left
                try:
                    while True:
                        f.write(b"\0" * (1 << 20))
                        f.flush()
                except OSError:
                    pass
            answers = [send_once(gw.smtp_port, mail(i, "disk")) for i in range(1, 21)]
            assert all(code in (451, 452) for code, _ in answers), answers
            assert any(code == 452 and "4.3.1" in msg for code, msg in answers), answers
            filler.unlink()
            for i in range(1, 21):  # as the sending servers retry
                assert send_until_accepted(gw.smtp_port, mail(i, "disk"), time.monotonic() + 60).startswith("2.0.0 OK")
        finally:
            gw.stop()
        with gw.sqlite() as db:
            assert count_email(db) == (21, 21, 21)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
