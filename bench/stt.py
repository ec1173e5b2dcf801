"""Speech-to-text benchmark: accuracy (WER) and speed (real-time factor, throughput, latency) per engine.

    .venv/bin/python bench/stt.py [--models-dir DIR] wer --set en [--engines whisper,pocketsphinx] [--limit N] [--hints off|hotwords|prompt] [--window 10]
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
import csv
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


# Italian and French (Whisper's BasicTextNormalizer does the same for every language but English): numbers are
# written as the language's words, whole ("1234" -> "milleduecentotrentaquattro", as the Italian references
# write extensions and PINs), a dot between words is read "punto"/"point", and an apostrophe separates words
# ("dell'audio" -> "dell audio"), so an elision written or not is not an error.
DOT_WORD = {"en": "dot", "it": "punto", "fr": "point"}
SPOKEN_FORMS = {"it": ((r"\bwww\b", "vu vu vu"),), "fr": ((r"\bwww\b", "w w w"),)}


def _number_words(language: str, n: int) -> str:
    from num2words import num2words

    return num2words(n, lang=language).replace("-", " ")


def _normalise_romance(t: str, language: str) -> str:
    t = re.sub(r"\b\d{1,3}(?:\.\d{3})+\b", lambda m: m.group(0).replace(".", ""), t)  # 1.234: a thousands dot
    t = re.sub(r"(\d+)[.,](\d+)", lambda m: f" {_number_words(language, int(m.group(1)))} {'virgola' if language == 'it' else 'virgule'} "
               + " ".join(_number_words(language, int(d)) for d in m.group(2)) + " ", t)
    t = re.sub(r"\d+", lambda m: " " + _number_words(language, int(m.group(0))) + " ", t)
    t = re.sub(r"(?<=[^\W\d_]{2})\.(?=[^\W\d_]{2})", f" {DOT_WORD[language]} ", t)
    for pattern, spoken in SPOKEN_FORMS.get(language, ()):
        t = re.sub(pattern, spoken, t)
    t = t.replace("'", " ")
    t = re.sub(r"[^\w ]", " ", t)
    t = " ".join(t.split())
    return re.sub(r"\b[^\W\d_](?: [^\W\d_]\b)+", _join_letters, t)


def normalise(text: str, language: str = "en") -> str:
    t = text.casefold().replace("\u2019", "'")
    t = re.sub(r"[-/_]", " ", t)
    t = t.replace("#", " pound ").replace("*", " star ") if language == "en" else t.replace("#", " ").replace("*", " ")
    if language != "en":
        return _normalise_romance(t, language)
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


def transcriber(engine: str, language: str, window: float | None = None):
    from channels.voice.stt.transcriber import Transcriber

    t = Transcriber(models_dir=MODELS_DIR, engine=engine, window=window)
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
            t = transcriber(engine, language, args.window)
        except Exception as e:  # no model for this language: say so in the report
            results[engine] = {"error": str(e)}
            print(f"{engine}: {e}", file=sys.stderr)
            continue
        refs, hyps, raw, audio_s, busy_s = [], [], [], 0.0, 0.0
        grammar = None
        if args.hints != "off" and engine == "whisper":  # the hints a problem answer gets: the inventory's asset names
            with open(ROOT / "config" / "assets.csv", encoding="utf-8") as f:
                names = [r["name"] for r in csv.DictReader(f)]
            t.engine(language).hints = args.hints
            grammar = t.grammar(language, names)
        failed = 0
        for i, (path, ref) in enumerate(clips):
            start = time.perf_counter()
            try:
                text = t.transcribe(path, language, grammar).text
            except Exception as e:  # noqa: BLE001 - a decoding that fails is a transcript the ticket never gets
                failed += 1
                text = ""
                print(f"{path.name}: {type(e).__name__}: {e}", file=sys.stderr)
            busy_s += time.perf_counter() - start
            audio_s += duration(path)
            refs.append(normalise(ref, language))
            hyps.append(normalise(text, language))
            raw.append({"path": str(path), "ref": ref, "hyp": text})
            if args.verbose:
                print(f"{path.name}\t{refs[-1]}\t{hyps[-1]}", file=sys.stderr)
            if (i + 1) % 50 == 0:
                print(f"  {engine}: {i + 1}/{len(clips)}", file=sys.stderr)
        pairs = [(r, h) for r, h in zip(refs, hyps) if r]
        wer = jiwer.wer([r for r, _ in pairs], [h if h else "" for _, h in pairs])
        results[engine] = {
            "model": t.engine(language).model,
            "hints": args.hints if engine == "whisper" else "off",
            "utterances": len(clips),
            "failed": failed,  # decodings that raised: scored as empty transcripts
            "audio_minutes": round(audio_s / 60, 2),
            "wer_percent": round(100 * wer, 1),
            "rtf": round(busy_s / audio_s, 3),
        }
        print(json.dumps({engine: results[engine]}), file=sys.stderr)
        if args.save:
            Path(f"{args.save}.{engine}.json").write_text(json.dumps({"set": args.set, "model": results[engine]["model"], "rows": raw}, ensure_ascii=False, indent=0))
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


# -- score: WER of saved hypotheses (wer --save), e.g. after a change of the normaliser --------------------------
def cmd_score(args) -> dict:
    import jiwer

    data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    language = data["set"]
    pairs = [(normalise(r["ref"], language), normalise(r["hyp"], language)) for r in data["rows"]]
    pairs = [(r, h) for r, h in pairs if r]
    if args.verbose:
        for r, h in pairs:
            if r != h:
                print(f"{r}\t{h}", file=sys.stderr)
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return {"set": language, "model": data.get("model"), "utterances": len(pairs), "wer_percent": round(100 * out.wer, 1),
            "substitutions": out.substitutions, "deletions": out.deletions, "insertions": out.insertions}


# -- concurrent: calls ending at once, time from a call's end to each transcript on its ticket ---------------------
def _answer_audio(clips: list[tuple[Path, str]], start: int, seconds: float) -> tuple[bytes, int]:
    """`seconds` of real speech (corpus clips one after the other, half a second apart) as an 8 kHz WAV."""
    out = io.BytesIO()
    i = start
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
        have = 0.0
        while have < seconds:
            with wave.open(str(clips[i % len(clips)][0])) as src:
                frames = src.readframes(src.getnframes())
            i += 1
            wav.writeframes(frames + b"\x00\x00" * 4000)
            have += len(frames) / 16000 + 0.5
    return out.getvalue(), i


def cmd_concurrent(args) -> dict:
    """`--calls` calls end at the same moment, each with a name, an asset and a problem recording (real speech of
    the corpus, about 3, 5 and 20 seconds), and go through the real intake, job queue and `--workers` worker
    threads (serve's default: 1). Repeated `--rounds` times on an idle queue."""
    import tempfile
    import threading

    from sqlalchemy import select

    from channels.voice.stt.worker import worker_from_core
    from gateway.app import build_core, seed_directory
    from gateway.config import load_config
    from ticketing.contact import Attachment, Channel, Contact
    from ticketing.transcription import TranscriptionJob

    tmp = Path(tempfile.mkdtemp(prefix="stt-concurrent-"))
    env = {"HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp)}
    if MODELS_DIR is not None:
        env["HELPDESK_GATEWAY__VOICE__STT__MODELS_DIR"] = str(MODELS_DIR)
    core = build_core(load_config(None, environ={**os.environ, **env}))
    seed_directory(core)
    workers = [worker_from_core(core, i) for i in range(args.workers)]
    for w in workers:
        w.transcriber.engine(args.language)  # loaded before the clock starts, as a running gateway has it
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    clips = corpus(args.language)
    fields = {f.name for f in Attachment.__dataclass_fields__.values()} if hasattr(Attachment, "__dataclass_fields__") else set()
    per_recording, per_call, at = [], [], 0
    for round_no in range(args.rounds):
        contacts = []
        for c in range(args.calls):
            attachments = []
            for question, seconds in (("name", 3), ("asset", 5), ("anomaly", 20)):
                data, at = _answer_audio(clips, at, seconds)
                extra = {"question": question} if "question" in fields else {}
                attachments.append(Attachment(f"answer-{question}.wav", "audio/wav", core.blobs.put(data), kind="recording", **extra))
            contacts.append(Contact(Channel.VOICE, f"concurrent-{round_no}-{c}-{time.time_ns()}", language=args.language,
                                    attachments=tuple(attachments)))
        start = time.perf_counter()  # every call has just ended: the transport hands the reports over now
        message_ids = [r.message_id for r in [core.intake.submit(x) for x in contacts]]
        done: dict[int, float] = {}
        while True:
            with core.sessions() as s:
                jobs = s.execute(select(TranscriptionJob.id, TranscriptionJob.message_id, TranscriptionJob.status)
                                 .where(TranscriptionJob.message_id.in_(message_ids))).all()
            now = time.perf_counter() - start
            for job_id, _, status in jobs:
                if status in ("done", "failed") and job_id not in done:
                    done[job_id] = now
            if jobs and len(done) == len(jobs):
                break
            time.sleep(0.05)
        by_call = {}
        for job_id, message_id, _ in jobs:
            by_call[message_id] = max(by_call.get(message_id, 0.0), done[job_id])
        per_recording += list(done.values())
        per_call += list(by_call.values())
        print(f"  round {round_no + 1}: last transcript after {max(done.values()):.1f} s", file=sys.stderr)
    stop.set()
    for t in threads:
        t.join(60)
    core.close()

    def p95(xs):
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)], 2)

    result = {"language": args.language, "calls_at_once": args.calls, "rounds": args.rounds, "workers": args.workers,
              "engine": workers[0].transcriber.engine(args.language).name,
              "model": workers[0].transcriber.engine(args.language).model,
              "per_recording": {"n": len(per_recording), "median_s": round(statistics.median(per_recording), 2), "p95_s": p95(per_recording)},
              "per_call_last_transcript": {"n": len(per_call), "median_s": round(statistics.median(per_call), 2), "p95_s": p95(per_call)},
              "load": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
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
    p.add_argument("--save", help="write each engine's raw hypotheses to SAVE.<engine>.json (for `score`)")
    p.add_argument("--hints", choices=["off", "hotwords", "prompt"], default="off",
                   help="Whisper given the inventory's asset names as hints, as a problem answer would be (default off)")
    p.add_argument("--window", type=float, default=None,
                   help="seconds: short clips decoded in one window that long, as the transcription jobs can "
                        "(channels/voice/stt/worker.SHORT_WINDOW); default: faster-whisper's padded 30 s")
    p = sub.add_parser("score")
    p.add_argument("file")
    p.add_argument("--verbose", action="store_true")
    p = sub.add_parser("concurrent")
    p.add_argument("--language", choices=["en", "it"], default="it")
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=1)
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
    result = {"wer": cmd_wer, "score": cmd_score, "concurrent": cmd_concurrent, "digits": cmd_digits, "throughput": cmd_throughput, "latency": cmd_latency}[args.cmd](args)
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
