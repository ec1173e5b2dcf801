"""What the ticket page pays for the linked-incident section (issue 13 §4): `Incidents.incident(number)` (parent,
children, merges and the proposal of an open parent incident on the same asset), against the floor of the same
page's main read, `Desk.ticket(number)`, on the same database in the same run.

    .venv/bin/python bench/incident_proposals.py [--tickets 100000] [--postgres]

Tickets are inserted in bulk across 500 assets; one in 40 is a parent incident with 5 linked children, so every
asset has open parents to weigh. Prints p50/p99 in ms of both reads over 300 new tickets, and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select  # noqa: E402

from bench._pg import bench_database  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    workdir, url, pg = bench_database("incidents-", args.postgres)
    try:
        run(workdir, url, args.tickets)
    finally:
        if pg is not None:
            pg.stop()


def run(workdir: Path, url: str, n: int) -> None:
    from gateway.app import build_core
    from gateway.config import load_config
    from ticketing.incidents import Incidents
    from ticketing.links import TicketLink
    from ticketing.models import Asset, Ticket, TicketField

    config = load_config(None, environ={"HELPDESK_GATEWAY__STORAGE__URL": url, "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(workdir / "data")})
    core = build_core(config)
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    with core.sessions() as s, s.begin():
        s.execute(insert(Asset), [{"tag": f"A-{i:04d}", "name": f"Asset {i}", "kind": "hardware", "aliases": [], "support_groups": {}} for i in range(500)])
        assets = list(s.scalars(select(Asset.id)))
        for start in range(0, n, 5000):
            rows = []
            for i in range(start, min(n, start + 5000)):
                at = now - timedelta(minutes=(n - i) * 2)
                rows.append({"created_at": at, "updated_at": at, "channel": "email", "status": rng.choice(["new", "in_progress", "resolved", "closed"]),
                             "level": 1, "urgency": "normal", "priority": 3, "asset_id": rng.choice(assets), "paused_minutes": 0.0, "sla_alerts": []})
            s.execute(insert(Ticket), rows)
        ids = list(s.scalars(select(Ticket.id).order_by(Ticket.id)))
        s.execute(insert(TicketField), [{"ticket_id": i, "name": "anomaly", "value": f"problem {i}", "confidence": 1.0, "source": "form"} for i in ids])
        links = []
        for p in ids[::40]:
            links += [{"ticket_id": p + k, "target_id": p, "kind": "child", "at": now, "actor": "bench"} for k in range(1, 6) if p + k in set(ids[-1:]) or p + k <= ids[-1]]
        s.execute(insert(TicketLink), links)
    incidents = Incidents(core.desk, config.ticketing.incident_window_minutes)
    sample = [core.desk.number(t) for t in _tickets(core, ids[-300:])]
    for number in sample[:20]:  # warm the caches of both reads
        incidents.incident(number), core.desk.ticket(number)
    page, inc = [], []
    for number in sample:
        t0 = time.perf_counter()
        core.desk.ticket(number)
        t1 = time.perf_counter()
        incidents.incident(number)
        t2 = time.perf_counter()
        page.append((t1 - t0) * 1000)
        inc.append((t2 - t1) * 1000)
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1]  # noqa: E731
    print(f"{'postgresql' if url.startswith('postgresql') else 'sqlite'} {n} tickets, {len(links)} links; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"  Desk.ticket (floor)     p50 {q(page, 50):6.2f} ms  p99 {q(page, 99):6.2f} ms")
    print(f"  Incidents.incident      p50 {q(inc, 50):6.2f} ms  p99 {q(inc, 99):6.2f} ms")
    core.close()


def _tickets(core, ids):
    from ticketing.models import Ticket

    with core.sessions() as s:
        return list(s.scalars(select(Ticket).where(Ticket.id.in_(ids))))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
