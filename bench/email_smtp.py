"""Bench: N concurrent SMTP clients on loopback against the email channel's receiver; committed tickets per
second and the time from the end of DATA to the 250 (p50, p99), against the floor measured in the same run.

    .venv/bin/python bench/email_smtp.py [--clients 20] [--mails 4000] [--db sqlite|URL] [--workers 2]
    .venv/bin/python bench/email_smtp.py --big 29 --mails 20 --clients 20   # peak RSS under 20 large mails

The mails are `_mail.realistic_mail` (trace headers, HTML alternative, quoted reply, signature, attachments);
`--corpus simple` gives the older one-part mails. `floor_mails_per_s` is `_mail.floor()` over the same mails
(stdlib parse, raw bytes fsynced, batched SQLite commits), and `ratio_to_floor` the gateway's share of it.
With `--big`, each client sends large mails (answered 250, or 451 4.3.1 and retried as an MTA does) and the
gateway's resident memory (its process and parse workers together) is sampled every 50 ms: `peak_rss_mib`.

The gateway runs in its own process (as `helpdesk-gateway serve` would), on a fresh SQLite database (WAL,
synchronous=FULL) in a temporary directory unless --db names a PostgreSQL URL; the clients are asyncio
connections in this process that reuse their connection for the next mail, as a sending MTA does. Each 250
is checked against the database at the end: every mail answered 250 is one committed ticket.

The protocol floor (`protocol_floor_mails_per_s`, skipped with --no-protocol-floor) is the stdlib floor's work
behind a stock aiosmtpd server, spoken to by the same clients in the same run: each mail parsed by the stdlib,
its raw bytes written and fsynced, a row committed in batches (whatever arrived meanwhile) by one thread, 250
after the commit. The gap between it and `floor_mails_per_s` is what SMTP and the clients cost on this machine
(the clients share its cores); `ratio_to_protocol_floor` is the gateway against it.

CPU per mail is counted over the measured mails only (warm-up and start-up excluded): `gateway_cpu_ms_per_mail`
for the server's process tree (its process and parse workers, from /proc), `client_cpu_ms_per_mail` for this
process while the clients ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _mail import big_mail, floor, floor_row, free_port, make_config, realistic_mail  # noqa: E402

USERS = [
    ("Mario Rossi", "mario.rossi@regione.example.it"),
    ("Giulia Bianchi", "giulia.bianchi@regione.example.it"),
    ("Luca Ferrari", "luca.ferrari@regione.example.it"),
    ("Francesca Romano", "francesca.romano@regione.example.it"),
]
PROBLEMS = [
    "la stampante del secondo piano non stampa e segnala carta inceppata",
    "il programma dell'anagrafe non si apre, sono bloccata",
    "la posta elettronica è lentissima da stamattina",
    "il PC dello sportello 3 si riavvia da solo ogni mezz'ora",
    "non riesco ad accedere al protocollo informatico: password scaduta",
]


def make_mail(n: int) -> bytes:
    name, addr = USERS[n % len(USERS)]
    problem = PROBLEMS[n % len(PROBLEMS)]
    filler = "\r\n".join(f"> riga citata {k} del messaggio precedente, che il parser deve leggere e scartare" for k in range(15))
    return (
        f"From: {name} <{addr}>\r\nTo: assistenza@example.org\r\nSubject: Segnalazione {n}: {problem[:30]}\r\n"
        f"Date: Tue, 03 Mar 2026 09:00:00 +0100\r\nMessage-ID: <bench-{n}-{random.random()}@regione.example.it>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"Buongiorno,\r\n{problem}.\r\nGrazie\r\n\r\n{name}\r\n\r\nIl giorno lun 2 mar 2026 Mario ha scritto:\r\n{filler}\r\n"
    ).encode("utf-8")


# -- the server process -------------------------------------------------------------------------------------
def serve(data_dir: str, url: str, port: int, workers: int) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    from channels.email.plugin import load
    from channels.email.settings import EmailSettings
    from gateway.app import build_core, channel_context, seed_directory
    # BENCH_OUTBOX=off: no acknowledgement queued in the intake transaction (the figure before the outbox).
    outbox = {"email__ack__enabled": "false"} if os.environ.get("BENCH_OUTBOX") == "off" else {}
    core = build_core(make_config(Path(data_dir), url, **outbox))
    seed_directory(core)
    settings = EmailSettings(enabled=True, smtp={"port": port, "parse_workers": workers}, ack={"enabled": False})

    async def main() -> None:
        channel = load(channel_context(core, settings))
        await channel.start()
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
        await channel.stop()

    if os.environ.get("BENCH_UVLOOP"):  # what `serve` would gain on uvloop (it runs asyncio's own loop today)
        import uvloop

        uvloop.install()
    if os.environ.get("BENCH_PROFILE"):  # where the event loop's time goes: cProfile of the main thread
        import cProfile

        cProfile.runctx("asyncio.run(main())", globals(), locals(), os.environ["BENCH_PROFILE"])
    else:
        asyncio.run(main())
    core.close()


def serve_floor(data_dir: str, port: int) -> None:
    """The protocol floor: stock aiosmtpd, and behind it `_mail.floor`'s work, 250 after the batch's commit."""
    import logging
    import queue
    import sqlite3
    import threading

    from aiosmtpd.smtp import SMTP

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    tmp = Path(data_dir)
    db = sqlite3.connect(tmp / "protocol-floor.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, key TEXT UNIQUE, sender TEXT, subject TEXT, text TEXT)")
    todo: queue.SimpleQueue = queue.SimpleQueue()

    def commit() -> None:
        n = 0
        while True:
            batch = [todo.get()]
            while True:
                try:
                    batch.append(todo.get_nowait())
                except queue.Empty:
                    break
            rows = []
            for raw, _, _ in batch:
                n += 1
                rows.append(floor_row(raw, tmp, n))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO m (key, sender, subject, text) VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
            for _, loop, future in batch:
                loop.call_soon_threadsafe(future.set_result, None)

    threading.Thread(target=commit, daemon=True).start()

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            todo.put((envelope.original_content, loop, future))
            await future
            return "250 2.0.0 OK"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Handler(), data_size_limit=None, decode_data=False), "127.0.0.1", port)
        print("READY", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(run())


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its living descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for f in Path(f"/proc/{p}/task").glob("*/children"):
                todo += [int(x) for x in f.read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


# -- the clients --------------------------------------------------------------------------------------------
RETRIES: list[str] = []


async def client(port: int, mails: list[bytes], latencies: list[float], failures: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> str:
        while True:
            line = (await reader.readline()).decode()
            if line[3:4] != "-":
                return line

    await reply()
    writer.write(b"EHLO bench.test\r\n")
    await reply()
    for mail in mails:
        writer.write(b"MAIL FROM:<sender@regione.example.it>\r\nRCPT TO:<assistenza@example.org>\r\nDATA\r\n")
        await writer.drain()
        for _ in range(3):
            r = await reply()
            if r[0] not in "23":
                failures.append(r)
        writer.write(mail + b".\r\n")
        await writer.drain()
        t0 = time.perf_counter()
        r = await reply()
        latencies.append(time.perf_counter() - t0)
        while r.startswith("451 4.3.1"):  # too much in flight: the MTA tries again a little later
            RETRIES.append(r)
            await asyncio.sleep(0.5)
            writer.write(b"MAIL FROM:<sender@regione.example.it>\r\nRCPT TO:<assistenza@example.org>\r\nDATA\r\n")
            await writer.drain()
            replies = [await reply() for _ in range(3)]
            if not replies[-1].startswith("354"):
                r = replies[-1]
                continue
            writer.write(mail + b".\r\n")
            await writer.drain()
            r = await reply()
        if not r.startswith("250"):
            failures.append(r)
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def run_clients(port: int, n_clients: int, mails: list[bytes]) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(client(port, mails[k::n_clients], latencies, failures) for k in range(n_clients)))
    return time.perf_counter() - t0, latencies, failures


class RssSampler:
    """The peak of the summed resident memory of a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int, every: float = 0.05):
        import threading

        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        out, todo = [self.pid], [self.pid]
        while todo:
            p = todo.pop()
            for f in Path(f"/proc/{p}/task").glob("*/children"):
                try:
                    kids = [int(x) for x in f.read_text().split()]
                except OSError:
                    continue
                out += kids
                todo += kids
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            total = 0
            for p in self._tree():
                try:
                    for line in Path(f"/proc/{p}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                except OSError:
                    pass
            self.peak = max(self.peak, total)


def measure(argv: list[str], port: int, n_clients: int, warmup: list[bytes], mails: list[bytes], big: bool = False) -> dict:
    """Start a server (`argv`), warm it up, send `mails` with `n_clients` clients; what it took."""
    import resource

    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    sampler = None
    try:
        assert server.stdout.readline().strip() == "READY", "the server did not start"
        if warmup:
            asyncio.run(run_clients(port, n_clients, warmup))
        if big:
            sampler = RssSampler(server.pid)
            sampler.start()
        cpu0, me0 = tree_cpu(server.pid), resource.getrusage(resource.RUSAGE_SELF)
        elapsed, lat, failures = asyncio.run(run_clients(port, n_clients, mails))
        cpu1, me1 = tree_cpu(server.pid), resource.getrusage(resource.RUSAGE_SELF)
        if sampler is not None:
            sampler.stop()
    finally:
        server.stdin.close()
        server.wait(60)
    lat.sort()
    client_cpu = (me1.ru_utime - me0.ru_utime) + (me1.ru_stime - me0.ru_stime)
    return {
        "mails_per_s": len(mails) / elapsed,
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 1),
        "server_cpu_ms_per_mail": round((cpu1 - cpu0) * 1000 / len(mails), 2),
        "client_cpu_ms_per_mail": round(client_cpu * 1000 / len(mails), 2),
        "failures": failures,
        "peak_rss": sampler.peak if sampler is not None else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--mails", type=int, default=4000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--db", default="sqlite", help="sqlite, or a postgresql+psycopg:// URL of an empty database")
    ap.add_argument("--workers", type=int, default=2, help="parse worker processes")
    ap.add_argument("--corpus", choices=("realistic", "simple"), default="realistic")
    ap.add_argument("--big", type=float, default=0, help="send mails of this many MiB and report the peak RSS")
    ap.add_argument("--no-protocol-floor", action="store_true", help="skip the stock-aiosmtpd protocol floor")
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--serve-floor", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]), int(args.serve[3]))
        return
    if args.serve_floor:
        serve_floor(args.serve_floor[0], int(args.serve_floor[1]))
        return

    tmp = Path(tempfile.mkdtemp(prefix="hd-bench-smtp-"))
    url = f"sqlite:///{tmp / 'helpdesk.sqlite3'}" if args.db == "sqlite" else args.db
    make = realistic_mail if args.corpus == "realistic" else make_mail
    if args.big:
        args.warmup = 0
        warmup, mails = [], [big_mail(n, args.big) for n in range(args.mails)]
    else:
        warmup, mails = [make(n + 10**6) for n in range(args.warmup)], [make(n) for n in range(args.mails)]
    load_before = os.getloadavg()[0]
    port = free_port()
    gw = measure([sys.executable, __file__, "--serve", str(tmp), url, str(port), str(args.workers)],
                 port, args.clients, warmup, mails, big=bool(args.big))
    proto = None
    if not args.big and not args.no_protocol_floor:
        port = free_port()
        floor_dir = Path(tempfile.mkdtemp(prefix="hd-bench-smtp-floor-"))
        proto = measure([sys.executable, __file__, "--serve-floor", str(floor_dir), str(port)], port, args.clients, warmup, mails)
    floor_rate = None if args.big else floor(mails, batch=args.clients)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        tickets = c.execute(text("SELECT count(*) FROM tickets")).scalar()
    engine.dispose()
    rate = gw["mails_per_s"]
    result = {
        "clients": args.clients,
        "mails": args.mails,
        "db": "sqlite" if args.db == "sqlite" else "postgresql",
        "parse_workers": args.workers,
        "corpus": f"big {args.big} MiB" if args.big else args.corpus,
        "mean_mail_kib": round(sum(map(len, mails)) / len(mails) / 1024, 1),
        "mails_per_s": round(rate, 1),
        "floor_mails_per_s": round(floor_rate, 1) if floor_rate else None,
        "ratio_to_floor": round(rate / floor_rate, 2) if floor_rate else None,
        "protocol_floor_mails_per_s": round(proto["mails_per_s"], 1) if proto else None,
        "ratio_to_protocol_floor": round(rate / proto["mails_per_s"], 2) if proto else None,
        "peak_rss_mib": round(gw["peak_rss"] / 2**20, 1) if args.big else None,
        "retried_451": len(RETRIES),
        "p50_ms": gw["p50_ms"],
        "p99_ms": gw["p99_ms"],
        "protocol_floor_p50_p99_ms": [proto["p50_ms"], proto["p99_ms"]] if proto else None,
        "gateway_cpu_ms_per_mail": gw["server_cpu_ms_per_mail"],
        "client_cpu_ms_per_mail": gw["client_cpu_ms_per_mail"],
        "protocol_floor_cpu_ms_per_mail": [proto["server_cpu_ms_per_mail"], proto["client_cpu_ms_per_mail"]] if proto else None,
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "failures": len(gw["failures"]),
        "tickets_committed": tickets,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    if gw["failures"]:
        print("first failure:", gw["failures"][0], file=sys.stderr)
    assert tickets == args.mails + args.warmup - len(gw["failures"]), "a 250 without a committed ticket"
    assert not proto or not proto["failures"], proto["failures"][:1] if proto else None


if __name__ == "__main__":
    main()
