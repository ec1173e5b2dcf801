"""Search latency with 100,000 tickets (issue 13 §3): `ticketing.search.Search.search`, criterion by criterion.

The tickets are `bench/desk_queue.py`'s (`fill`: 4 organisations, 10 groups, a year of creation times, every
status, reporter/asset/anomaly fields), their search postings written in bulk as the suggestion pass would
write them one by one (`kbindex.analyse` of the anomaly in the ticket's language, the reporter's words `r:`).
Each query runs `--runs` times after 3 warm-ups; figures are p50 / p99 in ms of the core call (the same call
`GET /api/v1/search` makes), beside a floor measured in the same run: the primary-key read of the newest 50
tickets with their fields (what any page of 50 costs).

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --postgres
    .venv/bin/python bench/search.py --db URL   # a database this bench (or bench/reports.py) already filled: reused

Also printed: the CPU time of this process per call (on SQLite the whole query; on PostgreSQL the client's
share), the figure other sessions' load disturbs least, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.desk_queue import config, fill, percentiles  # noqa: E402


def index_all(core, batch: int = 5000) -> None:
    from sqlalchemy import insert, select

    from ticketing import kbindex
    from ticketing.kbindex import KbDoc, KbTerm
    from ticketing.models import Ticket, TicketField
    from ticketing.search import SEARCH, _raw

    last = 0
    while True:
        with core.sessions() as s:
            ids = list(s.scalars(select(Ticket.id).where(Ticket.id > last).order_by(Ticket.id).limit(batch)))
            if not ids:
                return
            fields: dict[int, dict[str, str]] = {}
            for tid, name, value in s.execute(select(TicketField.ticket_id, TicketField.name, TicketField.value).where(TicketField.ticket_id.in_(ids))):
                fields.setdefault(tid, {})[name] = value or ""
            langs = dict(s.execute(select(Ticket.id, Ticket.language).where(Ticket.id.in_(ids))).all())
        docs, terms = [], []
        for tid in ids:
            f = fields.get(tid, {})
            stems = kbindex.analyse(f.get("anomaly", ""), langs.get(tid))
            counts: dict[str, int] = {}
            for st in stems:
                counts[st] = counts.get(st, 0) + 1
            for r in set(_raw(f"{f.get('reporter_name', '')} {f.get('reporter_email', '')}")):
                counts[r] = 1
            docs.append({"kind": SEARCH, "ref": tid, "language": langs.get(tid), "length": len(stems), "assets": [], "kinds": [], "title": f.get("anomaly", "")[:300]})
            terms += [{"kind": SEARCH, "term": t, "ref": tid, "tf": n} for t, n in counts.items()]
        with core.sessions() as s, s.begin():
            s.execute(insert(KbDoc), docs)
            s.execute(insert(KbTerm), terms)
        last = ids[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--db", help="an existing database URL: filled (and indexed) only if it has fewer tickets")
    args = ap.parse_args()
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from gateway.app import build_core, seed_directory
    from ticketing.groups import SupportGroup
    from ticketing.models import Ticket
    from ticketing.organisations import Organisation
    from ticketing.search import Search, SearchQuery

    from bench._pg import bench_database

    from sqlalchemy import func

    if args.db:
        import tempfile

        workdir, url, pg = Path(tempfile.mkdtemp(prefix="hd-bench-search-")), args.db, None
    else:
        workdir, url, pg = bench_database("hd-bench-search-", args.postgres)
    try:
        core = build_core(config(workdir, url))
        with core.sessions() as s:
            have = s.scalar(select(func.count()).select_from(Ticket))
        if have < args.tickets:
            seed_directory(core)
            t0 = time.perf_counter()
            fill(core, args.tickets)
            index_all(core)
            with core.engine.begin() as c:
                c.exec_driver_sql("ANALYZE")
            print(f"# {args.tickets} tickets written and indexed in {time.perf_counter() - t0:.1f} s ({core.engine.dialect.name})", file=sys.stderr)
        with core.sessions() as s:
            org = s.scalar(select(Organisation.name).order_by(Organisation.id))
            group = s.scalar(select(SupportGroup.name).order_by(SupportGroup.id))
        search = Search(core.sessions, "HD")
        today = date.today()
        cases = {
            "words: 1 common word (1/6 of tickets)": (SearchQuery(words="stampante"), 1),
            "words: 2 words": (SearchQuery(words="vpn casa"), 1),
            "words, page 20": (SearchQuery(words="posta"), 20),
            "reporter": (SearchQuery(reporter="rossi"), 1),
            "asset tag": (SearchQuery(asset="PRN-0210"), 1),
            "organisation": (SearchQuery(organisation=org), 1),
            "group": (SearchQuery(group=group), 1),
            "date range (a month)": (SearchQuery(since=today - timedelta(days=60), until=today - timedelta(days=30)), 1),
            "words + organisation + month": (SearchQuery(words="errore", organisation=org, since=today - timedelta(days=60), until=today - timedelta(days=30)), 1),
            "word + group + one day": (SearchQuery(words="stampante", group=group, since=today - timedelta(days=60), until=today - timedelta(days=60)), 1),
            "reporter + asset": (SearchQuery(reporter="rossi", asset="PRN-0210"), 1),
            "a word no ticket has": (SearchQuery(words="zzzz"), 1),
        }

        def floor():
            with core.sessions() as s:
                s.scalars(select(Ticket).order_by(Ticket.id.desc()).limit(50).options(selectinload(Ticket.fields))).all()

        results = {}
        print(f"# load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        for name, fn in [("floor: newest 50 tickets with fields", floor)] + [
            (n, (lambda q=q, p=p: search.search(q, p, 50))) for n, (q, p) in cases.items()
        ]:
            for _ in range(3):
                fn()
            samples, cpu = [], time.process_time()
            for _ in range(args.runs):
                t1 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t1) * 1000)
            cpu = (time.process_time() - cpu) * 1000 / args.runs
            p50, p99 = percentiles(samples)
            results[name] = (round(p50, 1), round(p99, 1))
            print(f"{name:<45} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  CPU {cpu:6.1f} ms/call", flush=True)
        totals = {n: search.search(q, 1, 1).total for n, (q, _) in cases.items()}
        print(json.dumps({"database": core.engine.dialect.name, "tickets": args.tickets, "totals": totals,
                          "loadavg": Path("/proc/loadavg").read_text().split()[:3]}))
        core.close()
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
