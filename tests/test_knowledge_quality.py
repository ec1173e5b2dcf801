"""Suggestions on the labelled set (issue 13 §2): 80 new problems in Italian, French and English against 40
articles and 200 resolved tickets (tests/data/kb/, the set bench/kb.py measures). The floors sit a little
under the measured figures (BENCHMARKS.md: precision@3 0.95, MRR 0.93, tickets 0.89 on both databases), so
a change that makes the ranking worse fails here, on SQLite and on PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.kb import build, evaluate, load_set  # noqa: E402


def test_labelled_set_precision_and_mrr(core, tmp_path):
    articles, problems = load_set()
    assert len(articles) == 40 and len(problems) >= 80
    assert {p["lang"] for p in problems} == {"it", "fr", "en"}
    topics = build(core, tmp_path, articles)
    assert len(topics) == 200
    figures = evaluate(core, problems, topics, worker_seconds=None)
    print(figures)
    assert figures["articles_precision_at_3"] >= 0.85, figures["misses"]
    assert figures["articles_mrr"] >= 0.8
    assert figures["tickets_precision_at_3"] >= 0.75
