"""Speech-to-text benchmark: accuracy (WER) and speed (real-time factor, throughput, latency) per engine.

    .venv/bin/python bench/stt.py [--models-dir DIR] wer --set en [--engines whisper,pocketsphinx] [--limit N]
    .venv/bin/python bench/stt.py wer --set it            # only with an engine that has an Italian model
    .venv/bin/python bench/stt.py digits [--engines …]     # spoken ticket numbers from the corpus digit prompts
    .venv/bin/python bench/stt.py throughput --engine whisper --processes 2 [--limit N]
    .venv/bin/python bench/stt.py latency --engine whisper [--runs 5]

Corpus: $HELPDESK_CORPORA/speech/dev_en.tsv and dev_it.tsv (default ../shared/corpora), audio under
/usr/share/asterisk/sounds (Debian's asterisk-core-sounds-en-wav / -it-wav): 8 kHz telephone prompts.
Caveat for dev_it.tsv: its references are a translator's script, not a verified transcript; the speaker often
departs from it, so its WER is an upper bound.

WER normalisation (applied to reference and hypothesis alike, then jiwer's word-level WER over the whole set,
i.e. total edits / total reference words):
  1. lowercase (Unicode casefold);
  2. hyphens, slashes and underscores become spaces ("log-in" -> "log in");
  3. numbers written in digits become words, since the references spell them out: up to three digits, or
     with a thousands comma, as a number ("30" -> "thirty", "1,000" -> "one thousand"); four digits or more
     digit by digit, as extensions and PINs are read ("1234" -> "one two three four"); "#" -> "pound",
     "*" -> "star";
     ordinals written in digits become ordinal words ("60th" -> "sixtieth", "1st" -> "first"); decimals are
     read with "point" and their decimals digit by digit ("28.8" -> "twenty eight point eight");
  4. a full stop between two words (no space) is read "dot", as in an address ("www.asterisk.org" -> "www dot asterisk
     dot org");
  5. contractions are expanded, as Whisper's English normaliser does ("I'm" -> "i am", "that's" -> "that is",
     "you're" -> "you are", "can't"/"cannot" -> "can not", "don't" -> "do not"; see CONTRACTIONS); a
     possessive 's is left alone;
  6. every other character that is not a letter, a digit or an apostrophe inside a word is removed;
  7. a run of two or more single letters is written as one word, since an acronym is spelled in one
     transcript and written in the other ("p b x" -> "pbx", "PBX" -> "pbx");
  8. a few compounds written in one word or two are written in one ("voice mail" -> "voicemail", "mail box",
     "file name", "upper case", "lower case", "re record"; see COMPOUNDS);
  9. whitespace collapsed.
Real-time factor = processing seconds / audio seconds (normalisation included, model loading excluded).

The machine has 2 cores shared with other work: say so next to any figure.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import random
import re
import statistics
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOUNDS = Path("/usr/share/asterisk/sounds")
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ITALIAN_DIGITS = "zero uno due tre quattro cinque sei sette otto nove".split()


def number_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            return number_words(n // size) + " " + name + ("" if n % size == 0 else " " + number_words(n % size))
    return str(n)


_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def ordinal_words(n: int) -> str:
    """1 -> "first", 60 -> "sixtieth", 121 -> "one hundred twenty first"."""
    *head, last = number_words(n).split()
    last = _ORDINAL.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join([*head, last])


COMPOUNDS = ("voice mail", "mail box", "file name", "upper case", "lower case", "re record")
# Applied in order, after lowercasing; the apostrophe may be typographic in a transcript.
CONTRACTIONS = (
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\bcannot\b", "can not"), (r"\bshan't\b", "shall not"),
    (r"\blet's\b", "let us"), (r"n't\b", " not"), (r"'re\b", " are"), (r"'m\b", " am"), (r"'ll\b", " will"),
    (r"'ve\b", " have"), (r"'d\b", " would"),
    # 's after a pronoun or a question word is "is"; after a noun it is a possessive and stays.
    (r"\b(it|that|there|here|what|where|who|he|she|how)'s\b", r"\1 is"),
)


def _spell(m: re.Match) -> str:
    raw = m.group(0).rstrip(",")
    digits = raw.replace(",", "")
    if not digits.isdigit():
        return raw
    if "," not in raw and len(digits) >= 4:
        return " " + " ".join(ONES[int(d)] for d in digits) + " "
    return " " + number_words(int(digits)) + " "


def _join_letters(m: re.Match) -> str:
    return m.group(0).replace(" ", "")


def normalise(text: str) -> str:
    t = text.casefold().replace("\u2019", "'")
    t = re.sub(r"[-/_]", " ", t)
    t = t.replace("#", " pound ").replace("*", " star ")
    t = re.sub(r"\b(\d[\d,]*)(?:st|nd|rd|th)\b", lambda m: " " + ordinal_words(int(m.group(1).replace(",", ""))) + " ", t)
    t = re.sub(r"(\d+)\.(\d+)", lambda m: f" {number_words(int(m.group(1)))} point {' '.join(ONES[int(d)] for d in m.group(2))} ", t)
    t = re.sub(r"\d[\d,]*", _spell, t)
    t = re.sub(r"(?<=[^\W\d_]{2})\.(?=[^\W\d_]{2})", " dot ", t)
    for pattern, expansion in CONTRACTIONS:
        t = re.sub(pattern, expansion, t)
    t = re.sub(r"(?<!\w)'|'(?!\w)", " ", t)
    t = re.sub(r"[^\w' ]", " ", t)
    t = " ".join(t.split())
    t = re.sub(r"\b[^\W\d_](?: [^\W\d_]\b)+", _join_letters, t)
    for c in COMPOUNDS:
        t = re.sub(rf"\b{c}\b", c.replace(" ", ""), t)
    return t


def corpus(which: str, limit: int | None = None) -> list[tuple[Path, str]]:
    base = Path(os.environ.get("HELPDESK_CORPORA", ROOT.parent / "shared" / "corpora")) / "speech" / f"dev_{which}.tsv"
    rows = []
    for line in base.read_text(encoding="utf-8").splitlines():
        if line.strip():
            path, ref = line.split("\t", 1)
            rows.append((SOUNDS / path, ref.strip()))
    return rows[:limit] if limit else rows


def duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


MODELS_DIR: Path | None = None  # --models-dir: where `models install` put models (e.g. whisper-base)


def transcriber(engine: str, language: str):
    from channels.voice.stt.transcriber import Transcriber

    t = Transcriber(models_dir=MODELS_DIR, engine=engine)
    t.engine(language)
    return t


# -- WER and RTF ------------------------------------------------------------------------------------------------
def cmd_wer(args) -> dict:
    import jiwer

    language = args.set
    clips = corpus(args.set, args.limit)
    results = {}
    for engine in args.engines.split(","):
        try:
            t = transcriber(engine, language)
        except Exception as e:  # no model for this language: say so in the report
            results[engine] = {"error": str(e)}
            print(f"{engine}: {e}", file=sys.stderr)
            continue
        refs, hyps, audio_s, busy_s = [], [], 0.0, 0.0
        for i, (path, ref) in enumerate(clips):
            start = time.perf_counter()
            r = t.transcribe(path, language)
            busy_s += time.perf_counter() - start
            audio_s += duration(path)
            refs.append(normalise(ref))
            hyps.append(normalise(r.text))
            if args.verbose:
                print(f"{path.name}\t{refs[-1]}\t{hyps[-1]}", file=sys.stderr)
            if (i + 1) % 50 == 0:
                print(f"  {engine}: {i + 1}/{len(clips)}", file=sys.stderr)
        pairs = [(r, h) for r, h in zip(refs, hyps) if r]
        wer = jiwer.wer([r for r, _ in pairs], [h if h else "" for _, h in pairs])
        results[engine] = {
            "model": t.engine(language).model,
            "utterances": len(clips),
            "audio_minutes": round(audio_s / 60, 2),
            "wer_percent": round(100 * wer, 1),
            "rtf": round(busy_s / audio_s, 3),
        }
        print(json.dumps({engine: results[engine]}), file=sys.stderr)
    return {"set": args.set, "caveat": "unverified references: WER is an upper bound" if args.set == "it" else None, "results": results}


# -- digits: spoken ticket numbers -----------------------------------------------------------------------------
def spoken_number(digits: str, voice: str = "en_US_f_Allison", gap: float = 0.25) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        for d in digits:
            with wave.open(str(SOUNDS / voice / "digits" / f"{d}.wav")) as src:
                w.writeframes(src.readframes(src.getnframes()))
            w.writeframes(b"\x00\x00" * int(8000 * gap))
    return out.getvalue()


def to_digits(text: str) -> str:
    words = normalise(text).split()
    index = {w: str(i) for i, w in enumerate(ONES[:10])} | {"oh": "0"}
    return "".join(index.get(w, "") if not w.isdigit() else w for w in words)


def cmd_digits(args) -> dict:
    rnd = random.Random(7)
    numbers = ["".join(rnd.choice("0123456789") for _ in range(6)) for _ in range(args.count)]
    results = {}
    for engine in args.engines.split(","):
        t = transcriber(engine, "en")
        g = t.grammar("en", ONES[:10]) if engine == "vosk" else None
        right = 0
        for n in numbers:
            r = t.transcribe(spoken_number(n), "en", g)
            right += to_digits(r.text) == n
        results[engine] = {"numbers": len(numbers), "exact_percent": round(100 * right / len(numbers), 1)}
        print(json.dumps({engine: results[engine]}), file=sys.stderr)
    return {"digits": results}


# -- throughput with several worker processes -------------------------------------------------------------------
def _throughput_worker(engine: str, models_dir, paths: list[str], ready, go, out) -> None:
    global MODELS_DIR
    MODELS_DIR = models_dir
    t = transcriber(engine, "en")  # one model, loaded once per process
    ready.release()
    go.wait()
    for p in paths:
        t.transcribe(p, "en")
    out.put(sum(duration(Path(p)) for p in paths))


def cmd_throughput(args) -> dict:
    clips = [str(p) for p, _ in corpus("en", args.limit)]
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    shares = [clips[i :: args.processes] for i in range(args.processes)]
    procs = [ctx.Process(target=_throughput_worker, args=(args.engine, MODELS_DIR, s, ready, go, out)) for s in shares]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    audio_s = sum(out.get() for _ in procs)
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    result = {"engine": args.engine, "processes": args.processes, "audio_seconds": round(audio_s, 1), "wall_seconds": round(wall, 1),
              "audio_seconds_per_second": round(audio_s / wall, 2)}
    print(json.dumps(result), file=sys.stderr)
    return result


# -- latency: end of a 60-second recording to its transcript on the ticket, idle queue ----------------------------
def cmd_latency(args) -> dict:
    import tempfile
    import threading

    from channels.voice.stt.worker import worker_from_core
    from gateway.app import build_core, seed_directory
    from gateway.config import load_config
    from ticketing.contact import Attachment, Channel, Contact
    from ticketing.transcription import DONE, TranscriptionJob, enqueue_recordings
    from sqlalchemy import select

    tmp = Path(tempfile.mkdtemp(prefix="stt-bench-"))
    config = load_config(None, environ={"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp)})
    core = build_core(config)
    seed_directory(core)
    w = worker_from_core(core, 0, args.engine)
    if MODELS_DIR is not None:
        w.transcriber.models_dir = MODELS_DIR
    w.transcriber.engine("en")
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    clips = corpus("en")
    latencies = []
    for run in range(args.runs):
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
            need, i = 60 * 8000 * 2, run * 7  # bytes of a 60-second 8 kHz recording
            while need > 0:
                path = clips[i % len(clips)][0]
                i += 1
                with wave.open(str(path)) as src:
                    frames = src.readframes(src.getnframes())[:need]
                wav.writeframes(frames)
                need -= len(frames)
        blob = core.blobs.put(out.getvalue())
        contact = Contact(Channel.VOICE, f"bench-{run}-{time.time()}", language="en",
                          attachments=(Attachment("answer-anomaly.wav", "audio/wav", blob, kind="recording", question="anomaly"),))
        start = time.perf_counter()  # the recording has ended: the call hands it over now
        result = core.intake.submit(contact)
        with core.sessions() as s, s.begin():  # the intake enqueues the recording's job; older cores did not
            job_ids = list(s.scalars(select(TranscriptionJob.id).where(TranscriptionJob.message_id == result.message_id)))
            job_id = job_ids[0] if job_ids else enqueue_recordings(s, result.message_id)[0].id
        while True:
            with core.sessions() as s:
                if s.get(TranscriptionJob, job_id).status == DONE:
                    break
            time.sleep(0.05)
        latencies.append(time.perf_counter() - start)
        print(f"  run {run + 1}: {latencies[-1]:.2f} s", file=sys.stderr)
    stop.set()
    thread.join()
    core.close()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    result = {"engine": args.engine, "runs": args.runs, "median_s": round(statistics.median(latencies), 2), "p95_s": round(p95, 2), "max_s": round(max(latencies), 2)}
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, help="a models directory to look in (helpdesk-gateway models install …)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("wer")
    p.add_argument("--set", choices=["en", "it"], default="en")
    p.add_argument("--engines", default="whisper,pocketsphinx,vosk")
    p.add_argument("--limit", type=int)
    p.add_argument("--verbose", action="store_true")
    p = sub.add_parser("digits")
    p.add_argument("--engines", default="whisper,pocketsphinx")
    p.add_argument("--count", type=int, default=20)
    p = sub.add_parser("throughput")
    p.add_argument("--engine", default="whisper")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--limit", type=int)
    p = sub.add_parser("latency")
    p.add_argument("--engine", default="whisper")
    p.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    global MODELS_DIR
    MODELS_DIR = args.models_dir
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = {"wer": cmd_wer, "digits": cmd_digits, "throughput": cmd_throughput, "latency": cmd_latency}[args.cmd](args)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
