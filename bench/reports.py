"""Report page time with 100,000 tickets (issue 13 §5).

The database is filled as `bench/desk_queue.py` fills it (100,000 tickets over a year, every status, their
reporter/asset/anomaly fields), plus what the reports read and that bench does not write: one inbound message per
ticket, a first response 5–600 minutes after creation for every ticket not new, and a `resolved` event for the
resolved and closed ones. The web channel is served on loopback; one logged-in keep-alive client asks, one at a
time, for `/desk/reports` over the default 30 days and over the whole year, and `GET /api/v1/reports` over the
year; the floor in the same run is the login page (a template, no database). Figures: p50 / p99 wall time.

    .venv/bin/python bench/reports.py
    .venv/bin/python bench/reports.py --postgres
    .venv/bin/python bench/reports.py --tickets 20000 --requests 5
    .venv/bin/python bench/reports.py --db URL   # a database this bench already filled: reused
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.desk_queue import config, fill, measure  # noqa: E402


def fill_activity(core, seed: int = 11) -> None:
    """Messages, first responses and resolutions for the tickets `fill` wrote."""
    from sqlalchemy import bindparam, insert, select, update

    from ticketing.models import Event, Message, Ticket

    rnd = random.Random(seed)
    with core.sessions() as s:
        tickets = s.execute(select(Ticket.id, Ticket.created_at, Ticket.status, Ticket.channel)).all()
    batch = 5000
    for start in range(0, len(tickets), batch):
        msgs, events, answered = [], [], []
        for t in tickets[start:start + batch]:
            msgs.append(dict(ticket_id=t.id, channel=t.channel, external_id=f"bench-{t.id}", direction="in", received_at=t.created_at,
                             text="", references=[]))
            if t.status != "new":
                first = t.created_at + timedelta(minutes=rnd.randrange(5, 600))
                answered.append({"tid": t.id, "at": first})
                if t.status in ("resolved", "closed"):
                    events.append(dict(ticket_id=t.id, at=first + timedelta(minutes=rnd.randrange(10, 5000)), kind="resolved",
                                       actor="bench", data={"report": "done"}))
        with core.sessions() as s, s.begin():
            s.execute(insert(Message.__table__), msgs)
            if events:
                s.execute(insert(Event.__table__), events)
            if answered:
                s.connection().execute(update(Ticket.__table__).where(Ticket.__table__.c.id == bindparam("tid"))
                                       .values(first_response_at=bindparam("at"), responded_at=bindparam("at")), answered)
    with core.engine.begin() as c:
        c.exec_driver_sql("ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--db", help="an existing database URL, filled by this bench before: reused as it is")
    args = ap.parse_args()
    os.chdir(ROOT)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import httpx

    from channels.web.app import create_app
    from channels.web.settings import WebSettings
    from channels.web.testing import ServerThread
    from gateway.app import build_core, channel_context, seed_directory

    from bench._pg import bench_database

    if args.db:
        import tempfile

        workdir, url, pg = Path(tempfile.mkdtemp(prefix="hd-bench-reports-")), args.db, None
    else:
        workdir, url, pg = bench_database("hd-bench-reports-", args.postgres)
    try:
        core = build_core(config(workdir, url))
        if not args.db:
            seed_directory(core)
            t0 = time.perf_counter()
            fill(core, args.tickets)
            fill_activity(core)
            print(f"# {args.tickets} tickets with messages and resolutions written in {time.perf_counter() - t0:.1f} s ({core.engine.dialect.name})")
        if core.desk.accounts.get("bench.op") is None:
            core.desk.accounts.add("bench.op", "Bench", "password lunga 1", role="supervisor")
        token = core.desk.accounts.create_token(f"bench-{time.time_ns()}")  # unique: a --db database is reused
        settings = WebSettings(enabled=True, port=0, cookie_secure=False, submit_per_minute=0, status_per_minute=0,
                               login_per_minute=0, api_per_minute=0)
        app = create_app(channel_context(core, settings), core.desk)
        year = f"from={date.today() - timedelta(days=365)}&to={date.today()}"
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as c:
            hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', c.get("/desk/login").text))
            assert c.post("/desk/login", data={"username": "bench.op", "password": "password lunga 1", **hidden}).status_code == 303
            api = {"authorization": f"Bearer {token}"}
            cases = [
                ("floor: login page (no database)", "/desk/login", None),
                ("desk reports, last 30 days", "/desk/reports", None),
                ("desk reports, whole year (100% of tickets)", f"/desk/reports?{year}", None),
                ("API reports JSON, whole year", f"/api/v1/reports?{year}", api),
            ]
            print(f"# load average before: {open('/proc/loadavg').read().strip()}")
            print("| request | p50 ms | p99 ms | CPU ms/request |")
            print("|---|---|---|---|")
            for name, path, headers in cases:
                p50, p99, cpu = measure(c, path, args.requests, headers)
                print(f"| {name} | {p50:.1f} | {p99:.1f} | {cpu:.1f} |")
            print(f"# load average after: {open('/proc/loadavg').read().strip()}")
        core.close()
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
