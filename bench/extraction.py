"""Extraction: its cost per contact, and how right it is on what callers said, as transcribed.

    .venv/bin/python bench/extraction.py                          # cost (below)
    PYTHONPATH=/tmp/before .venv/bin/python bench/extraction.py   # another checkout's ticketing/, as a peer
    .venv/bin/python bench/extraction.py replay calls.json [heard.jsonl …]  # the spoken set's transcripts again
    .venv/bin/python bench/extraction.py heldout                  # the held-out spoken answers (tests/data/)

**Cost**: microseconds of CPU per contact (median of runs) through the default pipeline, on the labelled cases of
tests/data/extraction_cases.json (emails, forms, call answers in Italian, French and English) against the
sample directory and inventory in config/, plus the same contacts against an inventory of 5,000 assets and a
directory of 5,000 users. One JSON line.

**replay**: the transcripts a run of `bench/calls.py --json FILE` kept (each call's `transcript_name`,
`transcript_asset` and `transcript_anomaly`, as the transcription jobs heard them) go through the extraction
pipeline again as the call's contact (`transcription.call_contact`'s shape), against config/'s directory and
inventory; name (directory users, unknown callers) and asset right per language, scored as bench/calls.py
scores them. A `.jsonl` of answers heard at once (`{"said", "heard", "kind": "quick", "question"}` lines) is
read with `extraction.interpret_answer`, as the IVR reads it before saying it back: right, wrong (something
else would be said back) or nothing to say back.

**heldout**: tests/data/spoken_heldout.json, answers as speech-to-text writes them, against a directory and an
inventory of their own (tests/data/heldout_users.csv, heldout_assets.csv) that no rule was written for; the same
scores. tests/test_extraction_spoken.py holds the floors.

Reads the data files only; imports nothing from tests/.
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


def directory(extra_assets: int = 0, users_csv: Path = ROOT / "config" / "users.csv", assets_csv: Path = ROOT / "config" / "assets.csv",
              extra_users: int = 0) -> Directory:
    with open(users_csv, encoding="utf-8") as f:
        users = [DirUser(i, u["name"], u["email"], tuple(u["phones"]), u["department"]) for i, u in enumerate((parse_user(r) for r in csv.DictReader(f)), 1)]
    with open(assets_csv, encoding="utf-8") as f:
        assets = [asset(i, parse_asset(r)) for i, r in enumerate(csv.DictReader(f), 1)]
    first = ("Aldo", "Bruna", "Carlo", "Delia", "Ettore", "Fabia", "Gino", "Ilaria", "Lino", "Nora", "Oreste", "Pia", "Renzo", "Tina", "Ugo")
    last = ("Abate", "Bellini", "Cattaneo", "Donati", "Esposito", "Fabbri", "Guerra", "Leone", "Mazza", "Negri", "Orlando", "Pellegrini",
            "Riva", "Sala", "Testa", "Valentini", "Vitale", "Zanetti", "Caruso", "Ferri")
    for n in range(extra_users):
        users.append(DirUser(10_000 + n, f"{first[n % len(first)]} {last[(n // len(first)) % len(last)]}{'' if n < 300 else n // 300}", None, (), None))
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
        t = time.process_time()  # CPU time: the machine is shared, a wall clock measures the others too
        for c in contacts:
            extract(c, d)
        runs.append((time.process_time() - t) / len(contacts) * 1e6)
    return statistics.median(runs)


def cost() -> None:
    cases = json.loads((ROOT / "tests" / "data" / "extraction_cases.json").read_text(encoding="utf-8"))
    contacts = [contact_from_dict(c, c["channel"], default_id=c["id"]) for c in cases]
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    out = {
        "ticketing": str(Path(ticketing.models.__file__).parent),
        "contacts": len(contacts),
        "us_per_contact_sample_inventory": round(per_contact(contacts, directory(), seconds)),
        "us_per_contact_5000_assets": round(per_contact(contacts, directory(5000), seconds)),
        "us_per_contact_5000_assets_5000_users": round(per_contact(contacts, directory(5000, extra_users=5000), seconds)),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(out))


# -- how right: the spoken answers again ----------------------------------------------------------------------
def plain(text: str | None) -> str:
    import unicodedata

    t = unicodedata.normalize("NFKD", text or "").casefold()
    t = "".join(ch if ch.isalnum() else " " for ch in t if not unicodedata.combining(ch))
    return " ".join(t.split())


def name_right(value: str | None, expected: str) -> bool:  # as bench/calls.py scores it
    return bool(value) and sorted(plain(value).split()) == sorted(plain(expected).split())


def asset_right(value: str | None, tag: str) -> bool:
    return bool(value) and (value.split() or [""])[0].upper() == tag.upper()


class Tally:
    """name (directory users / unknown callers) and asset right, per language; for answers read at once, also
    how many would be said back wrong."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[int]] = {}

    def add(self, lang: str, what: str, right: bool, wrong: bool = False) -> None:
        r = self.rows.setdefault((lang, what), [0, 0, 0])
        r[0] += right
        r[1] += 1
        r[2] += wrong

    def print(self, title: str) -> dict:
        print(f"{title}\n| language | what | right | said back wrong |\n|---|---|---|---|")
        out = {}
        for (lang, what), (right, n, wrong) in sorted(self.rows.items()):
            out[f"{lang} {what}"] = [right, n, wrong]
            print(f"| {lang} | {what} | {100 * right / n:5.1f} % ({right}/{n}) | {wrong} |")
        return out


def voice_contact(answers: dict[str, str], language: str):
    from ticketing.contact import Answer, Channel, Contact, Sender

    given = {q: Answer(t, "transcript", 0.7) for q, t in answers.items() if t and t.strip()}
    return Contact(channel=Channel.VOICE, external_id="replay", sender=Sender(None, None, "+3901000000"),
                   text=given["anomaly"].value if "anomaly" in given else "", language=language, answers=given)


def replay(files: list[Path]) -> dict:
    from bench.calls import load_set
    from ticketing.extraction import interpret_answer

    d = directory()
    calls = {c.id: c for c in load_set()}
    by_said: dict[str, tuple] = {}
    for c in calls.values():
        by_said[c.name] = (c, "name")
        for text in (c.asset, c.again):
            if text:
                by_said[text] = (c, "asset")
    jobs, quick = Tally(), Tally()
    for path in files:
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if row.get("kind") != "quick" or row.get("said") not in by_said:
                    continue
                call, question = by_said[row["said"]]
                r = interpret_answer(question, row["heard"] or "", d, call.lang)
                expected = call.expect_name if question == "name" else call.expect_asset
                ok = name_right(r.value, expected) if question == "name" else asset_right(r.value, expected)
                what = question if question == "asset" else ("name directory" if call.directory else "name unknown")
                if question == "name" and not call.directory:
                    ok = r.value is None  # an unknown caller: right is nothing said back
                quick.add(call.lang, what, ok, bool(r.value) and not ok)
            continue
        saved = json.loads(path.read_text(encoding="utf-8"))
        seen = set()
        for row in saved["calls"]:
            if row["id"] in seen or row["id"] not in calls:
                continue
            seen.add(row["id"])
            call = calls[row["id"]]
            heard = {q: (row["fields"].get(f"transcript_{q}") or {}).get("value") for q in ("name", "asset", "anomaly")}
            x = extract(voice_contact(heard, call.lang), d)
            jobs.add(call.lang, "name directory" if call.directory else "name unknown", name_right(x.fields["reporter_name"].value, call.expect_name))
            jobs.add(call.lang, "asset", asset_right(x.fields["asset"].value, call.expect_asset))
    out = {"loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    if jobs.rows:
        out["transcripts"] = jobs.print("the transcription jobs' transcripts, through the pipeline (before confirmation)")
    if quick.rows:
        out["at_once"] = quick.print("answers transcribed at once, read with interpret_answer (what the IVR says back)")
    return out


HELDOUT = ROOT / "tests" / "data" / "spoken_heldout.json"


def heldout(path: Path = HELDOUT) -> dict:
    from ticketing.extraction import interpret_answer

    data = json.loads(path.read_text(encoding="utf-8"))
    d = directory(users_csv=path.parent / data["users"], assets_csv=path.parent / data["assets"])
    pipeline, at_once = Tally(), Tally()
    for a in data["answers"]:
        q, lang = a["question"], a["lang"]
        x = extract(voice_contact({q: a["heard"]}, lang), d)
        r = interpret_answer(q, a["heard"], d, lang)
        if q == "name":
            what = "name directory" if a["directory"] else "name unknown"
            pipeline.add(lang, what, name_right(x.fields["reporter_name"].value, a["expect"]))
            right = a["directory"] and name_right(r.value, a["expect"])
            at_once.add(lang, what, right if a["directory"] else r.value is None, bool(r.value) and not right)
        else:
            pipeline.add(lang, "asset", asset_right(x.fields["asset"].value, a["expect"]))
            at_once.add(lang, "asset", asset_right(r.value, a["expect"]), bool(r.value) and not asset_right(r.value, a["expect"]))
    return {"answers": len(data["answers"]), "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "pipeline": pipeline.print("held-out answers through the pipeline"),
            "at_once": at_once.print("held-out answers read at once (unknown name: right = nothing said back)")}


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "replay":
        print(json.dumps(replay([Path(a) for a in args[1:]])))
    elif args and args[0] == "heldout":
        print(json.dumps(heldout(Path(args[1]) if len(args) > 1 else HELDOUT)))
    else:
        cost()


if __name__ == "__main__":
    main()
