"""Desk queue and API list latency with 100,000 tickets, and the SLA check's time (issue 12).

A fresh database (SQLite by default, `--postgres` for a throwaway PostgreSQL cluster as the suite makes one) gets
the sample organisations, groups, inventory and directory, then `--tickets` tickets (100,000) spread over the 4
organisations and 10 groups, a year of creation times, every status (about a third open), with their reporter,
asset and anomaly fields, written with bulk INSERTs. The web channel is served by uvicorn on loopback (the
`ServerThread` the channel ships); one keep-alive client logged in as an operator (cookie) and with an API token
asks, one request at a time, for: the open queue (page 1), a deep page, the queue filtered by organisation and
by group, and the same through `GET /api/v1/tickets`. Figures: p50 / p99 of each, as the client measured them,
beside two floors measured in the same run: the login page (a template, no database) and the API's asset list
(25 rows of a small table), which show what the machine's load costs any request.

SLA check: `--sla` open tickets (10,000) are made due (their `sla_next_check` in the past, their due times
passed), and one `ticketing.slawatch.check` pass raises their alerts: its wall time, then the time of a pass
with nothing due (what every minute costs).

    .venv/bin/python bench/desk_queue.py
    .venv/bin/python bench/desk_queue.py --postgres
    .venv/bin/python bench/desk_queue.py --tickets 20000 --requests 50
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ANOMALIES = [
    "La stampante non stampa da stamattina, luce arancione fissa.",
    "Errore 500 quando registro un documento in entrata.",
    "Il computer si riavvia da solo ogni mezz'ora.",
    "The payslip export stops with a timeout error.",
    "Non riesco ad accedere alla VPN da casa.",
    "La posta elettronica non riceve messaggi dalle 9.",
]


def config(workdir: Path, url: str):
    from gateway.config import load_config

    return load_config(None, environ={
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(workdir / "data"),
        "HELPDESK_GATEWAY__STORAGE__URL": url,
        "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{ROOT / "config" / "assets.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{ROOT / "config" / "users.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__ORGANISATIONS_CSV": f'"{ROOT / "config" / "organisations.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__GROUPS_CSV": f'"{ROOT / "config" / "groups.csv"}"',
    })


def fill(core, n: int, seed: int = 7) -> None:
    """`n` tickets with their fields, in bulk."""
    from sqlalchemy import insert, select

    from ticketing.groups import SupportGroup
    from ticketing.models import Asset, Ticket, TicketField, User
    from ticketing.organisations import Organisation

    rnd = random.Random(seed)
    with core.sessions() as s:
        orgs = list(s.scalars(select(Organisation.id)))
        groups = list(s.scalars(select(SupportGroup.id)))
        assets = s.execute(select(Asset.id, Asset.tag, Asset.name)).all()
        users = s.execute(select(User.id, User.name, User.email)).all()
    now = datetime.now(timezone.utc)
    statuses = ["new"] * 12 + ["in_progress"] * 14 + ["waiting"] * 6 + ["resolved"] * 38 + ["closed"] * 30
    batch = 5000
    for start in range(0, n, batch):
        rows, fields = [], []
        for i in range(start, min(n, start + batch)):
            created = now - timedelta(minutes=rnd.randrange(0, 365 * 24 * 60))
            level = rnd.choice((1, 1, 1, 2, 2, 3))
            user, asset = rnd.choice(users), rnd.choice(assets)
            rows.append(dict(
                id=i + 1, created_at=created, updated_at=created, channel=rnd.choice(("email", "web", "voice")),
                status=rnd.choice(statuses), level=level, urgency=rnd.choice(("low", "normal", "normal", "high", "critical")),
                priority=rnd.choice((1, 2, 2, 3, 3, 3, 4)), assignee=None if level == 1 and rnd.random() < 0.5 else f"op{rnd.randrange(20)}",
                reporter_user_id=user.id, asset_id=asset.id, organisation_id=rnd.choice(orgs),
                group_id=rnd.choice(groups) if level > 1 else None, respond_by=created + timedelta(hours=4),
                resolve_by=created + timedelta(days=3), pin="1234", paused_minutes=0.0, sla_alerts=[],
                level_since=created, sla_next_check=created + timedelta(days=3),
            ))
            for name, value in (("reporter_name", user.name), ("reporter_email", user.email), ("asset", f"{asset.tag} {asset.name}"),
                                ("anomaly", rnd.choice(ANOMALIES)), ("urgency", "normal")):
                fields.append(dict(ticket_id=i + 1, name=name, value=value, confidence=0.9, source="bench"))
        with core.sessions() as s, s.begin():
            s.execute(insert(Ticket.__table__), rows)
            s.execute(insert(TicketField.__table__), fields)
    if core.engine.dialect.name == "postgresql":
        with core.engine.begin() as c:
            c.exec_driver_sql("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))")
        # What autovacuum does after a bulk insert (PostgreSQL >= 13 vacuums on inserts too): statistics, and the
        # visibility map without which a count read off an index visits the table anyway.
        with core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    else:
        with core.engine.begin() as c:
            c.exec_driver_sql("ANALYZE")


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(client, path: str, n: int, headers: dict | None = None) -> tuple[float, float, float]:
    """p50 and p99 wall time of one request, and the CPU time of this process (server and client) per request:
    the figure the other sessions' load disturbs least."""
    for _ in range(3):  # warm
        r = client.get(path, headers=headers)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    samples = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    cpu = (time.process_time() - cpu0) * 1000 / n
    return (*percentiles(samples), cpu)


def sla_check(core, n: int) -> tuple[float, float, int]:
    from sqlalchemy import select, update

    from ticketing.models import Ticket
    from ticketing.slawatch import check

    past = datetime.now(timezone.utc) - timedelta(days=400)
    with core.sessions() as s, s.begin():
        ids = list(s.scalars(select(Ticket.id).where(Ticket.status.in_(("new", "in_progress"))).order_by(Ticket.id).limit(n)))
        s.execute(update(Ticket).where(Ticket.id.in_(ids)).values(sla_next_check=past, created_at=past, level_since=past,
                                                                 waiting_since=None, responded_at=None, sla_alerts=[]))
        s.execute(update(Ticket).where(Ticket.id.not_in(ids)).values(sla_next_check=datetime.now(timezone.utc) + timedelta(days=30)))
    t0 = time.perf_counter()
    raised = check(core.sessions, core.lifecycle, core.config.ticketing.number_prefix)
    busy = time.perf_counter() - t0
    t0 = time.perf_counter()
    check(core.sessions, core.lifecycle, core.config.ticketing.number_prefix)
    idle = time.perf_counter() - t0
    return busy, idle, raised


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--sla", type=int, default=10_000)
    ap.add_argument("--postgres", action="store_true")
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

    workdir, url, pg = bench_database("hd-bench-desk-", args.postgres)
    core = build_core(config(workdir, url))
    seed_directory(core)
    t0 = time.perf_counter()
    fill(core, args.tickets)
    print(f"# {args.tickets} tickets written in {time.perf_counter() - t0:.1f} s ({core.engine.dialect.name})")
    core.desk.accounts.add("bench.op", "Bench", "password lunga 1", role="supervisor")
    token = core.desk.accounts.create_token("bench")
    settings = WebSettings(enabled=True, port=0, cookie_secure=False, submit_per_minute=0, status_per_minute=0,
                           login_per_minute=0, api_per_minute=0)
    app = create_app(channel_context(core, settings), core.desk)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        login = c.get("/desk/login")
        import re

        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', login.text))
        assert c.post("/desk/login", data={"username": "bench.op", "password": "password lunga 1", **hidden}).status_code == 303
        api = {"authorization": f"Bearer {token}"}
        cases = [
            ("floor: login page (no database)", "/desk/login", None),
            ("floor: API asset list (25 rows)", "/api/v1/assets", api),
            ("desk queue, open, page 1", "/desk/", None),
            ("desk queue, open, page 100", "/desk/?page=100", None),
            ("desk queue, organisation USL", "/desk/?organisation=USL", None),
            ("desk queue, group Reti", "/desk/?group=Reti", None),
            ("desk queue, all statuses, page 1", "/desk/?status=all", None),
            ("API list, open, page 1", "/api/v1/tickets", api),
            ("API list, open, page 100", "/api/v1/tickets?page=100", api),
            ("API list, organisation + group", "/api/v1/tickets?organisation=Regione&group=Sistemi", api),
        ]
        print(f"# loadavg {open('/proc/loadavg').read().split()[:3]}")
        print(f"{'request':<36} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8}")
        for name, path, headers in cases:
            p50, p99, cpu = measure(c, path, args.requests, headers)
            print(f"{name:<36} {p50:8.1f} {p99:8.1f} {cpu:8.1f}", flush=True)
    busy, idle, raised = sla_check(core, args.sla)
    print(f"SLA check: {raised} alerts on {args.sla} due open tickets in {busy:.2f} s "
          f"({busy / max(1, args.sla) * 1e3:.2f} ms per ticket); a pass with nothing due: {idle * 1000:.1f} ms")
    print(f"# loadavg {open('/proc/loadavg').read().split()[:3]}")
    core.close()
    if pg is not None:
        pg.stop()


if __name__ == "__main__":
    main()
