"""Extraction cost: microseconds per contact through the default pipeline, on the labelled cases of
tests/data/extraction_cases.json (emails, forms, call answers in Italian, French and English) against the
sample directory and inventory in config/, plus the same contacts against an inventory of 5,000 assets.

    .venv/bin/python bench/extraction.py            # this tree
    PYTHONPATH=/tmp/before .venv/bin/python bench/extraction.py   # another checkout's ticketing/, as a peer

Prints one JSON line. Reads the data files only; imports nothing from tests/.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after PYTHONPATH, so a peer checkout's ticketing/ wins

import ticketing.models  # noqa: E402,F401  (models first: it imports the modules that import inventory)
from gateway.contact_files import contact_from_dict  # noqa: E402
from ticketing.directory import DirAsset, Directory, DirUser  # noqa: E402
from ticketing.extraction import extract  # noqa: E402
from ticketing.inventory import parse_asset, parse_user  # noqa: E402

HAS_LOCATION = "location" in {f.name for f in dataclasses.fields(DirAsset)}


def asset(i: int, a: dict) -> DirAsset:
    extra = {"location": a.get("location")} if HAS_LOCATION else {}
    return DirAsset(i, a["tag"], a["name"], a["kind"], tuple(a["aliases"]), a["hostname"], a["serial"], a["criticality"], **extra)


def directory(extra_assets: int = 0) -> Directory:
    with open(ROOT / "config" / "users.csv", encoding="utf-8") as f:
        users = [DirUser(i, u["name"], u["email"], tuple(u["phones"]), u["department"]) for i, u in enumerate((parse_user(r) for r in csv.DictReader(f)), 1)]
    with open(ROOT / "config" / "assets.csv", encoding="utf-8") as f:
        assets = [asset(i, parse_asset(r)) for i, r in enumerate(csv.DictReader(f), 1)]
    kinds = ("PC", "Stampante", "Monitor", "Telefono", "Scanner")
    for n in range(extra_assets):
        k = kinds[n % len(kinds)]
        assets.append(asset(10_000 + n, {
            "tag": f"X{k[:2].upper()}-{n:05d}", "name": f"{k} sede {n % 40} ufficio {n % 97}", "kind": "hardware", "aliases": [],
            "hostname": f"x{k[:2].lower()}{n:05d}", "serial": None, "criticality": "medium",
            "location": f"Sede {n % 40} piano {n % 5} stanza {n % 300}",
        }))
    return Directory(users, assets)


def per_contact(contacts, d: Directory, seconds: float) -> float:
    for c in contacts:
        extract(c, d)
    runs = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for c in contacts:
            extract(c, d)
        runs.append((time.perf_counter() - t) / len(contacts) * 1e6)
    return statistics.median(runs)


def main() -> None:
    cases = json.loads((ROOT / "tests" / "data" / "extraction_cases.json").read_text(encoding="utf-8"))
    contacts = [contact_from_dict(c, c["channel"], default_id=c["id"]) for c in cases]
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    out = {
        "ticketing": str(Path(ticketing.models.__file__).parent),
        "contacts": len(contacts),
        "us_per_contact_sample_inventory": round(per_contact(contacts, directory(), seconds)),
        "us_per_contact_5000_assets": round(per_contact(contacts, directory(5000), seconds)),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
