"""Bench: time for the IMAP fetcher to drain a mailbox of N messages from a real Dovecot into the core
(fetch BODY.PEEK[] by UID, store, parse, commit, MOVE; the next batch fetched while the last commits), on a
fresh SQLite database unless --db says otherwise, against the floor of bench/_mail.py over the same
realistic mails, measured in the same run.

    .venv/bin/python bench/email_imap.py [--mails 2000] [--batch 100] [--workers 2] [--db sqlite|URL]

The mailbox is filled with IMAP APPEND before the clock starts; the clock stops when the folder is empty and
every message is a committed ticket.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _children_cpu(pool) -> float:
    """CPU seconds the pool's worker processes used (they are started before the clock and do only this)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in getattr(pool, "_processes", {}).values():
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mails", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--db", default="sqlite")
    ap.add_argument("--workers", type=int, default=2, help="parse worker processes (email.smtp.parse_workers)")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from imapclient import IMAPClient
    from sqlalchemy import func, select

    from channels.email.auth import SenderCheck
    from channels.email.dovecot import Dovecot
    from channels.email.settings import EmailSettings
    from channels.email.imap import ImapFetcher
    from channels.email.receiver import parse_pool
    from channels.email.settings import ImapMailbox
    from _mail import realistic_mail as make_mail
    from gateway.app import build_core, seed_directory
    from _mail import make_config
    from ticketing.models import Ticket

    tmp = Path(tempfile.mkdtemp(prefix="hd-bench-imap-"))
    url = f"sqlite:///{tmp / 'helpdesk.sqlite3'}" if args.db == "sqlite" else args.db
    core = build_core(make_config(tmp, url))
    seed_directory(core)
    with Dovecot({"desk": "secret"}) as server:
        box = ImapMailbox(host="127.0.0.1", port=server.port, tls=False, user="desk", password="secret", folder="INBOX", batch=args.batch)
        with IMAPClient("127.0.0.1", port=server.port, ssl=False) as c:
            c.login("desk", "secret")
            t = time.perf_counter()
            for n in range(args.mails):
                c.append("INBOX", make_mail(n))
            fill = time.perf_counter() - t
        # As the email channel builds it (channels/email/plugin.py): the sender check of acknowledgements, and the
        # channel's parse workers (`--workers` processes; 0: threads of this process).
        pool = parse_pool(args.workers) if args.workers > 0 else None
        fetcher = ImapFetcher(box, intake=core.intake, blobs=core.blobs, sender_check=SenderCheck.from_settings(EmailSettings().ack),
                              parse_pool=pool)
        if pool is not None:  # started (imports, directory) before the clock, as a gateway's are by its first mails
            from channels.email.receiver import prepare_job

            warm = (make_mail(10**6), str(tmp / "warm-blobs"), None, 25 * 2**20, "HD", fetcher.sender_check, fetcher.extractor)
            [f.result() for f in [pool.submit(prepare_job, warm) for _ in range(4 * args.workers)]]
        workers_cpu0 = _children_cpu(pool) if pool is not None else 0.0
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        client = fetcher.connect()
        while fetcher.drain(client) or client.search("ALL"):
            pass
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        client.logout()
        fetcher.stop_thread()
        if pool is not None:
            workers_cpu = _children_cpu(pool) - workers_cpu0
            pool.shutdown(wait=True)
        else:
            workers_cpu = 0.0
    with core.sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    core.close()
    from _mail import floor

    floor_rate = floor([make_mail(n) for n in range(args.mails)], batch=20)  # the same mails, the same run
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime) + workers_cpu
    print(
        json.dumps(
            {
                "mails": args.mails,
                "batch": args.batch,
                "parse_workers": args.workers,
                "db": "sqlite" if args.db == "sqlite" else "postgresql",
                "drain_seconds": round(elapsed, 2),
                "mails_per_s": round(args.mails / elapsed, 1),
                "floor_mails_per_s": round(floor_rate, 1),
                "ratio_to_floor": round(args.mails / elapsed / floor_rate, 2),
                "gateway_cpu_ms_per_mail": round(cpu * 1000 / args.mails, 2),
                "append_seconds": round(fill, 2),
                "tickets_committed": tickets,
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )
    assert tickets == args.mails


if __name__ == "__main__":
    main()
