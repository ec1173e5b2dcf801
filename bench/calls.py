"""Calls understood: name, asset and anomaly right per language, before and after the caller's confirmation.

    .venv/bin/python bench/calls.py                                  # the whole spoken set (bench/spoken/calls.toml)
    .venv/bin/python bench/calls.py --lang it --limit 5 --verbose    # a few Italian calls, with what was heard
    .venv/bin/python bench/calls.py --models-dir DIR --json out.json # models from DIR (default: the configured one)

The callers are synthetic (bench/spoken/voices.py: festival and espeak-ng voices the IVR prompts never use,
through G.711 µ-law at 8 kHz with line noise at `--snr` dB), speaking the texts of bench/spoken/calls.toml.
Calls come from numbers the directory does not know, so the name always comes from speech.

Each call is run twice through the real IVR (`channels.voice.calls.Calls` built by `channels/voice/build.py`,
with the real `Flow`), driven by a scripted caller in place of a transport, on a real core
(`gateway.app.build_core` on a temporary SQLite) whose transcription worker (`worker_from_core`: the engine the
registry chooses per language, with its biasing) transcribes the recordings; the ticket's fields are read as the
desk shows them (`tickets show`):
- **before**: the IVR does not ask back (`voice.ivr.confirm = false`): the ticket's fields are what the
  transcription and the extraction pipeline made of the recordings alone;
- **after**: the IVR transcribes the name and asset answers at once, says back what it took them for, and
  the caller confirms (1) when it is right, or refuses (2) and says it again, with the other voice (and the
  `again` words when the set gives some); after 2 refusals the IVR keeps its best guess.
  A right asset after confirmation is one whose field is right on the ticket.

Scoring:
- name: the reporter's name on the ticket, case, accents and word order aside, equals the expected one
  (directory users and unknown callers are reported apart: the ≥ 90 % target is on directory users);
- asset: the asset field names the expected tag;
- anomaly: every expected word (a word of the field starting with it; "a|b": either) is in the anomaly field.

The machine has 2 cores shared with other work: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.spoken.voices import VOICES, Line, missing_tools, recording  # noqa: E402

SET = ROOT / "bench" / "spoken" / "calls.toml"
LANGUAGES = ("it", "fr", "en")


# -- the test set ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpokenCall:
    id: str
    lang: str
    name: str
    expect_name: str
    directory: bool
    asset: str
    expect_asset: str
    problem: str
    expect_anomaly: tuple[str, ...]
    urgent: bool = False
    again: str | None = None


def load_set(path: Path = SET) -> list[SpokenCall]:
    with open(path, "rb") as f:
        rows = tomllib.load(f)["call"]
    out = []
    for r in rows:
        r = dict(r)
        r["expect_anomaly"] = tuple(r["expect_anomaly"])
        out.append(SpokenCall(**r))
    return out


def plain(text: str | None) -> str:
    """Lowercase, no accents, no punctuation: how two names or words are compared."""
    t = unicodedata.normalize("NFKD", text or "").casefold()
    t = "".join(ch if ch.isalnum() else " " for ch in t if not unicodedata.combining(ch))
    return " ".join(t.split())


def name_right(value: str | None, expected: str) -> bool:
    return bool(value) and sorted(plain(value).split()) == sorted(plain(expected).split())


def asset_right(value: str | None, tag: str) -> bool:
    return bool(value) and (value.split() or [""])[0].upper() == tag.upper()


def anomaly_right(value: str | None, words: tuple[str, ...]) -> bool:
    have = plain(value).split()
    text = " " + " ".join(have) + " "

    def found(choice: str) -> bool:
        w = plain(choice)
        return (" " + w) in text if " " in w else any(h.startswith(w) for h in have)

    return bool(have) and all(any(found(c) for c in alt.split("|")) for alt in words)


# -- a scripted caller in place of a transport -------------------------------------------------------------------
@dataclass
class Outcome:
    call: SpokenCall
    mode: str  # before | after
    voice: str
    ticket: str | None = None
    fields: dict = field(default_factory=dict)  # name -> {value, confidence, source}
    said_back: list = field(default_factory=list)  # (question, what the IVR took it for, key pressed)
    seconds: float = 0.0
    error: str | None = None

    def value(self, name: str) -> str | None:
        return (self.fields.get(name) or {}).get("value")

    @property
    def name_ok(self) -> bool:
        return name_right(self.value("reporter_name"), self.call.expect_name)

    @property
    def asset_ok(self) -> bool:
        return asset_right(self.value("asset"), self.call.expect_asset)

    @property
    def anomaly_ok(self) -> bool:
        return anomaly_right(self.value("anomaly"), self.call.expect_anomaly)


def expected_value(call: SpokenCall, question: str) -> str:
    return call.expect_name if question == "name" else call.expect_asset


def is_right(question: str, value: str | None, call: SpokenCall) -> bool:
    return name_right(value, call.expect_name) if question == "name" else asset_right(value, call.expect_asset)


def drive(calls, call: SpokenCall, first: int, line: Line, caller_id: str, call_id: str, out: Outcome) -> str | None:
    """Run one call through `calls` (a `Calls`) as the caller would: language, menu 1, the answers, the
    confirmations, "whole office blocked?". Returns the ticket number."""
    from channels.voice.flow import Digits, Gather, Hangup, Record, Timeout

    voices = VOICES[call.lang]
    said = {"name": 0, "asset": 0, "anomaly": 0}
    texts = {"name": call.name, "asset": call.asset, "anomaly": call.problem}
    languages = calls.flow_settings.languages
    session, actions = calls.open(call_id, caller_id)
    for _ in range(60):  # a call is a few dozen steps; a loop here is a bug, not a long call
        if session.finished or not actions:
            break
        step = None
        for a in actions:
            if isinstance(a, Hangup):
                step = "hangup"
                break
            if isinstance(a, Record):
                try_no = said.get(a.question, 0)
                text = texts.get(a.question, call.problem)
                if try_no > 0 and a.question == "asset" and call.again:
                    text = call.again
                voice = voices[(first + try_no) % 2]  # a repeat is said with the other voice
                said[a.question] = try_no + 1
                wav = recording(text, voice, line)
                target = session.recording_path(a.question)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wav.read_bytes())
                step = ("record", a.question)
                break
            if isinstance(a, Gather):
                step = ("gather", a)
                break
        if step is None or step == "hangup":
            break
        if step[0] == "record":
            actions = session.recorded(step[1])
            continue
        state = session.flow.state
        if state == "language":
            event = Digits(str(languages.index(call.lang) + 1))
        elif state == "menu":
            event = Digits("1")
        elif state == "confirming":
            question, candidate = session.flow.question, session.flow.candidate
            key = "1" if is_right(question, candidate.value, call) else "2"
            out.said_back.append((question, candidate.value, key))
            event = Digits(key)
        elif state == "urgent":
            event = Digits("1" if call.urgent else "2")
        else:  # a question this caller has no answer for: let it time out
            event = Timeout()
        actions = session.handle(event)
    if not session.finished:
        session.hang_up()
    return session.ticket_number


# -- the bench ---------------------------------------------------------------------------------------------------
def remembered(transcribe, memo: dict):
    """The worker's `transcribe`, decoding a recording once for the same arguments: the "before" and "after"
    runs of a call share their name and problem recordings, and Whisper decodes at temperature 0 (the same
    audio and hints give the same text), so the second decoding would only cost time on a shared machine."""
    import hashlib

    def run(source, *args, **kwargs):
        data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        key = (hashlib.sha256(data).hexdigest(), repr(args), repr(sorted(kwargs.items())))
        if key not in memo:
            memo[key] = transcribe(source, *args, **kwargs)
        return memo[key]

    return run


class Bench:
    def __init__(self, models_dir: Path | None, workers: int, tmp: Path):
        from channels.voice.build import make_calls
        from channels.voice.stt.worker import worker_from_core
        from gateway.app import build_core, channel_context, seed_directory
        from gateway.config import load_config

        env = {"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp)}
        if models_dir is not None:
            env["HELPDESK_GATEWAY__VOICE__STT__MODELS_DIR"] = str(models_dir)
        self.config = load_config(None, environ={**os.environ, **env})
        self.core = build_core(self.config)
        seed_directory(self.core)
        voice = self.config.voice
        self.calls = {}
        for mode, confirm in (("before", False), ("after", True)):
            settings = voice.model_copy(update={"ivr": voice.ivr.model_copy(update={"confirm": confirm})})
            ctx = channel_context(self.core, settings)
            self.calls[mode] = make_calls(ctx, settings, tmp / "calls" / mode)
        if self.calls["after"].understander is None:
            print("warning: the IVR has no confirmation here (no interpret port or voice.ivr.confirm off): "
                  "'after' is the same as 'before'", file=sys.stderr)
        self.stop = threading.Event()
        self.workers = [worker_from_core(self.core, i) for i in range(workers)]
        self.engines = {}
        for lang in LANGUAGES:
            try:
                e = self.workers[0].transcriber.engine(lang)
                self.engines[lang] = f"{e.name} {Path(e.model).name}"
            except Exception as ex:  # noqa: BLE001 - reported, the bench goes on for the other languages
                self.engines[lang] = f"none ({ex})"
        memo: dict = {}
        for w in self.workers:
            w.transcriber.transcribe = remembered(w.transcriber.transcribe, memo)
        self.threads = [threading.Thread(target=w.run, args=(self.stop,), daemon=True) for w in self.workers]
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        self.core.close()

    def wait_transcribed(self, number: str, timeout: float = 600) -> None:
        from sqlalchemy import select

        from ticketing.models import Ticket
        from ticketing.transcription import TranscriptionJob

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.core.sessions() as s:
                ids = [t.id for t in s.scalars(select(Ticket)) if self.core.desk.number(t) == number]
                statuses = list(s.scalars(select(TranscriptionJob.status).where(TranscriptionJob.ticket_id.in_(ids))))
            if statuses and all(st in ("done", "failed") for st in statuses):
                return
            time.sleep(0.1)
        raise TimeoutError(f"ticket {number}: transcription not finished in {timeout} s")

    def fields(self, number: str) -> dict:
        t = self.core.desk.ticket(number)
        return {f.name: {"value": f.value, "confidence": f.confidence, "source": f.source} for f in t.fields}

    def run(self, call: SpokenCall, mode: str, first: int, line: Line, index: int) -> Outcome:
        out = Outcome(call, mode, VOICES[call.lang][first].name)
        start = time.perf_counter()
        try:
            number = drive(self.calls[mode], call, first, line, f"+3901{index:06d}", f"bench-{mode}-{call.id}-{time.time_ns()}", out)
            if number is None:
                raise RuntimeError("the call made no ticket")
            self.wait_transcribed(number)
            out.ticket, out.fields = number, self.fields(number)
        except Exception as e:  # noqa: BLE001 - one failed call is a figure, not the end of the bench
            logging.getLogger("bench").exception("call %s (%s)", call.id, mode)
            out.error = f"{type(e).__name__}: {e}"
        out.seconds = round(time.perf_counter() - start, 2)
        return out


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f} % ({n}/{d})" if d else "    –"


def summary(outcomes: list[Outcome]) -> dict:
    table = {}
    for lang in LANGUAGES:
        for mode in ("before", "after"):
            rows = [o for o in outcomes if o.call.lang == lang and o.mode == mode]
            if not rows:
                continue
            known = [o for o in rows if o.call.directory]
            unknown = [o for o in rows if not o.call.directory]
            table[f"{lang} {mode}"] = {
                "calls": len(rows),
                "name_directory": (sum(o.name_ok for o in known), len(known)),
                "name_unknown": (sum(o.name_ok for o in unknown), len(unknown)),
                "asset": (sum(o.asset_ok for o in rows), len(rows)),
                "anomaly": (sum(o.anomaly_ok for o in rows), len(rows)),
                "errors": sum(o.error is not None for o in rows),
            }
    return table


def print_table(table: dict, engines: dict, load: tuple) -> None:
    print(f"engines: {json.dumps(engines, ensure_ascii=False)}")
    print(f"load average before/after: {load[0]} / {load[1]}")
    print(f"| language | when | calls | name (directory) | name (unknown) | asset | anomaly |")
    print(f"|---|---|---|---|---|---|---|")
    for key, r in table.items():
        lang, mode = key.split()
        print(f"| {lang} | {mode} | {r['calls']} | {pct(*r['name_directory'])} | {pct(*r['name_unknown'])} | "
              f"{pct(*r['asset'])} | {pct(*r['anomaly'])} |" + (f" {r['errors']} error(s)" if r["errors"] else ""))


def rescore(path: Path) -> int:
    """The figures of a saved run against the set as it is now (its expectations and the scoring)."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    by_id = {c.id: c for c in load_set()}
    outcomes = []
    for row in saved["calls"]:
        o = Outcome(by_id[row["id"]], row["mode"], row["voice"], row["ticket"], row["fields"], row["said_back"], row["seconds"], row["error"])
        outcomes.append(o)
    print_table(summary(outcomes), saved["engines"], tuple(saved["load"]))
    return 0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, help="where `models install` put the models (default: the configured directory)")
    ap.add_argument("--lang", action="append", choices=LANGUAGES, help="only these languages (repeatable)")
    ap.add_argument("--only", help="only these call ids (comma-separated)")
    ap.add_argument("--limit", type=int, help="at most N calls per language")
    ap.add_argument("--modes", default="before,after")
    ap.add_argument("--snr", type=float, default=22.0, help="speech-to-noise ratio of the line, dB (default 22)")
    ap.add_argument("--noise", default="pinknoise", choices=["pinknoise", "brownnoise", "whitenoise"])
    ap.add_argument("--workers", type=int, default=1, help="transcription worker threads (default 1)")
    ap.add_argument("--verbose", action="store_true", help="print every call's fields")
    ap.add_argument("--json", type=Path, help="write every call's outcome here")
    ap.add_argument("--rescore", type=Path, help="score a --json file again against the set (no call is made)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.rescore:
        return rescore(args.rescore)
    missing = missing_tools()
    if missing:
        print(f"missing: {', '.join(missing)} (Debian packages: festival festvox-itapc16k festvox-italp16k "
              "festvox-kallpc16k festvox-us-slt-hts espeak-ng sox)", file=sys.stderr)
        return 2
    calls = [c for c in load_set() if (not args.lang or c.lang in args.lang) and (not args.only or c.id in args.only.split(","))]
    per_lang = [[x for x in calls if x.lang == lang][: args.limit or None] for lang in LANGUAGES]
    calls = [c for i in range(max(map(len, per_lang))) for group in per_lang for c in group[i : i + 1]]  # languages in turn
    line = Line(snr_db=args.snr, noise=args.noise)
    print(f"synthesising {len(calls)} calls' answers …", file=sys.stderr)
    for c in calls:
        for v in VOICES[c.lang]:
            for text in (c.name, c.asset, c.problem, c.again):
                if text:
                    recording(text, v, line)
    load_before = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="calls-bench-"))
    bench = Bench(args.models_dir, args.workers, tmp)
    outcomes: list[Outcome] = []

    def save() -> None:  # after every call: a bench stopped half-way still leaves its figures
        table = summary(outcomes)
        if args.json:
            args.json.write_text(json.dumps({
                "engines": bench.engines, "snr_db": args.snr, "noise": args.noise, "load": [load_before, loadavg()], "done": len(outcomes), "summary": table,
                "calls": [{"id": o.call.id, "mode": o.mode, "voice": o.voice, "ticket": o.ticket, "fields": o.fields,
                           "said_back": o.said_back, "name_ok": o.name_ok, "asset_ok": o.asset_ok, "anomaly_ok": o.anomaly_ok,
                           "seconds": o.seconds, "error": o.error} for o in outcomes],
            }, ensure_ascii=False, indent=1))

    try:
        for i, c in enumerate(calls):
            first = i % 2  # half the calls start with each voice
            for mode in args.modes.split(","):
                o = bench.run(c, mode, first, line, i)
                outcomes.append(o)
                flags = "".join(ch if ok else "-" for ch, ok in (("N", o.name_ok), ("A", o.asset_ok), ("P", o.anomaly_ok)))
                print(f"{c.id:6} {mode:6} {flags} {o.seconds:5.1f}s {o.voice:22} name={o.value('reporter_name')!r} "
                      f"asset={o.value('asset')!r}" + (f" said back {o.said_back}" if o.said_back else "")
                      + (f" ERROR {o.error}" if o.error else ""), file=sys.stderr)
                if args.verbose:
                    print(f"        anomaly={o.value('anomaly')!r}", file=sys.stderr)
                save()
    finally:
        bench.close()
    table = summary(outcomes)
    print_table(table, bench.engines, (load_before, loadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
