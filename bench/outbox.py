"""Bench: the outbox draining to a local relay, in mails per second, against plain smtplib sending the same
messages over one connection to the same relay (the floor a sender cannot beat).

    .venv/bin/python bench/outbox.py [--mails 2000] [--batch 50] [--db sqlite|URL]

A fresh SQLite database (WAL, synchronous=FULL) gets N queued mails (notifications, no ticket); one
`OutboxSender` claims them in batches, sends each over SMTP to the shipped `MailSink` (aiosmtpd on loopback)
and marks each as sent in its own commit as soon as the relay answered. Checked at the end: the sink got every
mail exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mails", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--db", default="sqlite")
    args = ap.parse_args()

    from channels.email.ack import OutboxSender, to_message
    from channels.email.settings import AckSettings
    from channels.email.sink import MailSink
    from ticketing import storage
    from ticketing.outbox import Outbox, OutgoingMail, enqueue

    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    url = storage.default_url(tmp) if args.db == "sqlite" else args.db
    storage.upgrade(url)
    engine = storage.make_engine(url)
    sessions = storage.make_sessionmaker(engine)
    outbox = Outbox(sessions)
    with sessions() as s, s.begin():
        for n in range(args.mails):
            enqueue(s, kind="notification", to=f"group{n % 20}@example.org", subject=f"[HD-2026-{n:06d}] notifica",
                    text="Un nuovo ticket è stato assegnato al vostro gruppo.\n" * 5)
    with MailSink() as sink:
        settings = AckSettings(relay_host="127.0.0.1", relay_port=sink.port, batch=args.batch, poll_seconds=0.01)
        sender = OutboxSender(settings, outbox)
        cpu0, t0 = time.process_time(), time.perf_counter()
        sender.start_thread()
        sink.wait(args.mails, timeout=600)
        while outbox.stats().waiting:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        sender.stop_thread()
        got = sink.received
        assert len(got) == args.mails and len({r.message["Message-ID"] for r in got}) == args.mails

    with MailSink() as sink:  # the floor: the same messages, one connection, nothing recorded
        mails = [to_message(settings, OutgoingMail(n, 1, "x", "notification", f"group{n % 20}@example.org",
                                                   f"[HD-2026-{n:06d}] notifica", "Un nuovo ticket.\n" * 5, f"<f{n}@x>"))
                 for n in range(args.mails)]
        t1 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for m in mails:
                smtp.send_message(m, from_addr=settings.sender, to_addrs=[m["To"]])
        sink.wait(args.mails, timeout=600)
        floor = time.perf_counter() - t1
    engine.dispose()
    print(json.dumps({
        "mails": args.mails, "batch": args.batch, "db": "sqlite" if args.db == "sqlite" else "postgresql",
        "outbox_mails_per_s": round(args.mails / elapsed, 1), "smtplib_floor_mails_per_s": round(args.mails / floor, 1),
        "ratio_to_floor": round(floor / elapsed, 2), "sender_cpu_ms_per_mail": round(1000 * cpu / args.mails, 2),
        "load_avg_1min": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
