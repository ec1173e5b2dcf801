"""Suggestions at intake, measured on a labelled set (issue 13 §2): precision@3, MRR, latency after commit.

The set (`tests/data/kb/`, data only): 40 articles for the sample inventory (`config/assets.csv`) in Italian,
French and English, 200 resolved tickets made from them (5 per article: the article's title or symptom as a
user would open a mail, with a greeting, and its solution as the resolution report), and 80 new problems
written as people write them, each labelled with the articles that answer it (an article and its twin in
another language both count).

A fresh database gets the inventory and directory, `kb import` of the articles (as Markdown files), the 200
tickets through the intake and resolved through the lifecycle, then one suggestion pass indexes them. Each
problem is then delivered as a mail through the real intake (extraction finds its asset and language); the
suggestion worker (`ticketing.suggestions.SuggestionWorker`, as `serve` runs it) computes the suggestions after
the commit, and the time from the intake's return to the stored suggestions is the latency.

Figures:
- articles precision@3: share of problems with a right article among the 3 suggested (what the operator sees);
- articles MRR (over the first 10 articles ranked);
- tickets precision@3: share of the 3 suggested resolved tickets that were about a right article;
- latency after commit p50 / p99 (the worker woken by the intake's commit, with its 0.5 s poll kept as `serve`
  runs it), and the ranking time alone.

    .venv/bin/python bench/kb.py               # SQLite
    .venv/bin/python bench/kb.py --postgres    # a throwaway PostgreSQL cluster (bench/_pg.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data" / "kb"

GREETINGS = {
    "it": ["Buongiorno,", "Salve,", "Ciao,", "Buongiorno, vi scrivo perché", ""],
    "fr": ["Bonjour,", "Bonjour, je vous écris car", "Bonjour à tous,", "", "Salut,"],
    "en": ["Hello,", "Hi,", "Good morning,", "", "Hi team,"],
}
CLOSINGS = {
    "it": ["Grazie", "Cordiali saluti", "Potete aiutarmi?", "", "Grazie mille"],
    "fr": ["Merci", "Cordialement", "Pouvez-vous m'aider ?", "", "Merci d'avance"],
    "en": ["Thanks", "Regards", "Can you help?", "", "Thank you"],
}
DONE = {"it": "Risolto:", "fr": "Résolu :", "en": "Fixed:"}


def load_set(data: Path = DATA) -> tuple[list[dict], list[dict]]:
    articles = yaml.safe_load((data / "articles.yaml").read_text(encoding="utf-8"))
    problems = yaml.safe_load((data / "problems.yaml").read_text(encoding="utf-8"))
    return articles, problems


def write_articles(articles: list[dict], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for a in articles:
        meta = {"title": a["title"], "assets": a.get("assets", []), "kinds": a.get("kinds", []), "language": a["language"], "status": "published"}
        front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False).strip()
        (directory / f"{a['slug']}.md").write_text(f"---\n{front}\n---\n## Symptom\n\n{a['symptom']}\n\n## Solution\n\n{a['solution']}\n", encoding="utf-8")
    return directory


def resolved_tickets(articles: list[dict], per_article: int = 5, seed: int = 13) -> list[tuple[str, str, str, str, str | None]]:
    """(topic slug, language, text, report, asset tag) for 5 tickets per article, from templates."""
    rnd = random.Random(seed)
    out = []
    for a in articles:
        lang = a["language"]
        for i in range(per_article):
            problem = a["title"] if i % 2 == 0 else a["symptom"]
            if i == 4:  # a shorter one: the symptom's first clause
                problem = a["symptom"].split(",")[0].split(";")[0]
            text = " ".join(p for p in (rnd.choice(GREETINGS[lang]), problem[0].lower() + problem[1:], rnd.choice(CLOSINGS[lang])) if p)
            sentences = [s for s in a["solution"].replace(";", ".").split(".") if s.strip()]
            report = f"{DONE[lang]} {'. '.join(sentences[: 1 + i % 2]).strip()}."
            tags = a.get("assets") or [None]
            out.append((a["slug"], lang, text, report, tags[i % len(tags)]))
    return out


def build(core, workdir: Path, articles: list[dict]) -> dict[str, str]:
    """Import the articles, make and resolve the 200 tickets; returns {ticket number: topic slug}."""
    from ticketing.contact import Channel, Contact, Sender
    from ticketing.knowledge import import_dir
    from ticketing.models import Asset, Ticket
    from ticketing.suggestions import run_once
    from sqlalchemy import select

    report = import_dir(core.sessions, write_articles(articles, workdir / "kb"))
    assert not report.errors and report.created == len(articles), report
    topics: dict[str, str] = {}
    tickets = resolved_tickets(articles)
    with core.sessions() as s:
        asset_ids = dict(s.execute(select(Asset.tag, Asset.id)).all())
    for n, (topic, lang, text, rep, tag) in enumerate(tickets):
        r = core.intake.submit(Contact(Channel.EMAIL, f"<kb-resolved-{n}@bench.example>", sender=Sender("Utente", f"utente{n % 17}@example.org"),
                                       subject=None, text=text, language=lang))
        topics[r.ticket_number] = topic
        with core.sessions() as s, s.begin():
            t = s.get(Ticket, r.ticket_id)
            if tag and t.asset_id is None:  # the asset the operator set while working on it
                core.lifecycle.set_field(t, "asset", tag, "bench")
                t.asset_id = asset_ids.get(tag)
            core.lifecycle.resolve(t, "bench", rep)
    run_once(core.sessions, core.config.ticketing.number_prefix)
    return topics


def evaluate(core, problems: list[dict], topics: dict[str, str], *, worker_seconds: float | None = 0.5, timeout: float = 5.0) -> dict:
    """Deliver each problem through the intake with the suggestion worker running; the figures.
    `worker_seconds=None`: no worker thread, one suggestion pass after each delivery (the test's way)."""
    from sqlalchemy import select

    from ticketing import kbindex
    from ticketing.contact import Channel, Contact, Sender
    from ticketing.knowledge import Article
    from ticketing.models import Asset, Ticket
    from ticketing.suggestions import SuggestionWorker, TicketSuggestion, query_text, run_once

    prefix = core.config.ticketing.number_prefix
    worker = SuggestionWorker(core.sessions, prefix, seconds=worker_seconds) if worker_seconds else None
    if worker is not None:
        asyncio.run(worker.start())
    latencies, rank_times, hits, rr, tprec, misses = [], [], 0, 0.0, [], []
    try:
        with core.sessions() as s:
            slugs = dict(s.execute(select(Article.id, Article.slug)).all())
        for n, p in enumerate(problems):
            r = core.intake.submit(Contact(Channel.EMAIL, f"<kb-problem-{n}@bench.example>", sender=Sender("Utente", f"nuovo{n}@example.org"),
                                           text=p["text"], language=p["lang"]))
            t0 = time.perf_counter()
            if worker is None:
                run_once(core.sessions, prefix)
            while True:
                with core.sessions() as s:
                    rows = list(s.scalars(select(TicketSuggestion).where(TicketSuggestion.ticket_id == r.ticket_id)))
                if rows or time.perf_counter() - t0 > timeout:
                    break
                time.sleep(0.005)
            latencies.append(time.perf_counter() - t0)
            expect = set(p["expect"])
            articles = [slugs.get(int(x.ref)) for x in sorted(rows, key=lambda x: x.rank) if x.kind == "article"]
            tickets = [topics.get(x.ref) for x in sorted(rows, key=lambda x: x.rank) if x.kind == "ticket"]
            if expect & set(articles[:3]):
                hits += 1
            else:
                misses.append({"text": p["text"], "expect": sorted(expect), "got": articles[:3]})
            tprec.append(sum(1 for x in tickets[:3] if x in expect) / 3)
            with core.sessions() as s:  # the rank of the first right article among 10, for MRR
                t = s.get(Ticket, r.ticket_id)
                kind = s.scalar(select(Asset.kind).where(Asset.id == t.asset_id)) if t.asset_id else None
                q = query_text(t)
                t1 = time.perf_counter()
                ten = kbindex.rank(s, q, t.language, kbindex.ARTICLE, asset_id=t.asset_id, asset_kind=kind, limit=10)
                kbindex.rank(s, q, t.language, kbindex.TICKET, asset_id=t.asset_id, asset_kind=kind, limit=3, exclude=t.id)
                rank_times.append(time.perf_counter() - t1)
            first = next((i for i, h in enumerate(ten, 1) if slugs.get(h.ref) in expect), None)
            rr += 1 / first if first else 0.0
    finally:
        if worker is not None:
            asyncio.run(worker.stop())
    latencies.sort()
    rank_times.sort()
    return {
        "problems": len(problems),
        "articles_precision_at_3": round(hits / len(problems), 3),
        "articles_mrr": round(rr / len(problems), 3),
        "tickets_precision_at_3": round(statistics.fmean(tprec), 3),
        "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "latency_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "rank_p50_ms": round(1000 * rank_times[len(rank_times) // 2], 1),
        "rank_p99_ms": round(1000 * rank_times[min(len(rank_times) - 1, int(len(rank_times) * 0.99))], 1),
        "misses": misses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster instead of SQLite")
    ap.add_argument("--misses", action="store_true", help="print the problems without a right article in the 3")
    args = ap.parse_args()
    from gateway.app import build_core, seed_directory
    from gateway.config import load_config

    articles, problems = load_set()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pg = None
        if args.postgres:
            from bench._pg import PostgresCluster

            pg = PostgresCluster()
            url = f"{pg.base}/postgres"
        else:
            url = f"sqlite:///{workdir / 'kb.sqlite3'}"
        try:
            cfg = load_config(None, environ={
                "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(workdir / "data"),
                "HELPDESK_GATEWAY__STORAGE__URL": url,
                "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{ROOT / "config" / "assets.csv"}"',
                "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{ROOT / "config" / "users.csv"}"',
            })
            core = build_core(cfg)
            seed_directory(core)
            topics = build(core, workdir, articles)
            figures = evaluate(core, problems, topics)
            core.close()
        finally:
            if pg is not None:
                pg.stop()
    misses = figures.pop("misses")
    figures["database"] = "postgresql" if args.postgres else "sqlite"
    figures["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(figures))
    if args.misses:
        for m in misses:
            print(json.dumps(m, ensure_ascii=False))


if __name__ == "__main__":
    main()
