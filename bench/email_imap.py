"""Bench: time for the IMAP fetcher to drain a mailbox of N messages from a real Dovecot into the core
(fetch BODY.PEEK[] by UID, store, parse, commit, MOVE; the next batch fetched while the last commits), on a
fresh SQLite database unless --db says otherwise, against the floor of bench/_mail.py over the same
realistic mails, measured in the same run.

    .venv/bin/python bench/email_imap.py [--mails 2000] [--batch 100] [--db sqlite|URL]

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mails", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--db", default="sqlite")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from imapclient import IMAPClient
    from sqlalchemy import func, select

    from channels.email.dovecot import Dovecot
    from channels.email.imap import ImapFetcher
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
        fetcher = ImapFetcher(box, intake=core.intake, blobs=core.blobs)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        client = fetcher.connect()
        while fetcher.drain(client) or client.search("ALL"):
            pass
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        client.logout()
        fetcher.stop_thread()
    with core.sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    core.close()
    from _mail import floor

    floor_rate = floor([make_mail(n) for n in range(args.mails)], batch=20)  # the same mails, the same run
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        json.dumps(
            {
                "mails": args.mails,
                "batch": args.batch,
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
