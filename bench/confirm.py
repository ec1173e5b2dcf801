"""Bench: the IVR's confirmation step, from the end of a caller's 5-second asset answer to the prompt that says
the asset back ("I understood: Protocollo informatico. Press 1 to confirm, 2 to say it again").

What is timed is exactly what a call waits for: `CallSession.recorded("asset")` — the recording stored in the
blob store, the flow's `Understand` answered by the voice channel's understander (the quick transcriber, then
the core's interpret port on the directory snapshot), and the flow's next actions. The transports add only the
hand-over of those actions (SIP: a post to the pjsua2 thread; Twilio: the TwiML answer).

Answers: asset descriptions per language (below), synthesised with voices the prompts never use (festival's
`kal_diphone` for English, `lp_diphone` for Italian, espeak-ng `fr+m3` for French), 8 kHz, through G.711 µ-law
with line noise at -50 dBFS, padded to exactly 5 s. Three ways, in the same run:
- the floor: one call at a time;
- `--calls` calls active, each answering the asset question after a pause of 0-`--gap` seconds (the rest of
  its IVR: prompts, the name, …), so answers end at independent times, as on a line with that many calls;
- the worst case: `--calls` answers ending at the same instant (a barrier), `--rounds` times.
The core is a fresh SQLite database with the sample inventory and directory.

    .venv/bin/python bench/confirm.py --language it --calls 4 --models-dir <data_dir>/models
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE = 8000
ANSWER_SECONDS = 5.0
# (what the caller says, the asset tag the desk should understand)
ANSWERS = {
    "en": [("the protocol register", "PROT-01"), ("the payroll", "PERS-01-STIP"), ("my mailbox", "MAIL-01"),
           ("the remote access vpn", "VPN-01"), ("the land registry", "CAT-DB"), ("the projector", "PROJ-0115"),
           ("the digital signature", "SIGN-01"), ("the website", "WEB-01")],
    "it": [("il protocollo informatico", "PROT-01"), ("la busta paga", "PERS-01-STIP"), ("la posta elettronica", "MAIL-01"),
           ("la vpn", "VPN-01"), ("il catasto", "CAT-DB"), ("il proiettore", "PROJ-0115"),
           ("la firma digitale", "SIGN-01"), ("il sito istituzionale", "WEB-01")],
    "fr": [("le protocole informatique", "PROT-01"), ("la fiche de paie", "PERS-01-STIP"), ("le courriel", "MAIL-01"),
           ("le vpn", "VPN-01"), ("le cadastre", "CAT-DB"), ("le projecteur", "PROJ-0115"),
           ("la signature numérique", "SIGN-01"), ("le site web", "WEB-01")],
}
MENU_KEY = {"it": "1", "fr": "2", "en": "3"}
KNOWN_CALLER = "+39 055 438 2101"  # Mario Rossi (config/users.csv): the flow goes straight to the asset


# -- audio -------------------------------------------------------------------------------------------------------
def synthesise(text: str, language: str, out: Path) -> np.ndarray:
    raw = out.with_suffix(".raw.wav")
    if language in ("en", "it") and shutil.which("text2wave"):
        voice = {"en": "(voice_kal_diphone)", "it": "(voice_lp_diphone)"}[language]
        subprocess.run(["text2wave", "-eval", voice, "-o", str(raw)], input=text.encode("latin-1"), check=True, capture_output=True)
    else:
        subprocess.run(["espeak-ng", "-v", {"fr": "fr+m3", "it": "it+f2", "en": "en-us+m3"}[language], "-s", "140", "-w", str(raw), text],
                       check=True, capture_output=True)
    pcm = subprocess.run(["sox", "-D", str(raw), "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-"],
                         check=True, capture_output=True).stdout
    raw.unlink()
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


def ulaw_roundtrip(pcm: np.ndarray) -> np.ndarray:
    """What a G.711 µ-law line delivers of `pcm` (ITU-T G.711 encode, then decode)."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    u = ~(sign | (exponent << 4) | mantissa) & 0xFF
    u = ~u & 0xFF
    s, e, m = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    out = (((m << 3) + 0x84) << e) - 0x84
    return np.where(s != 0, -out, out).astype(np.int16)


def answer_wav(text: str, language: str, out: Path, rng: np.random.Generator) -> Path:
    speech = synthesise(text, language, out)
    audio = np.zeros(int(ANSWER_SECONDS * RATE), dtype=np.float64)
    start = int(0.3 * RATE)
    n = min(len(speech), len(audio) - start)
    audio[start : start + n] = speech[:n]
    audio += rng.normal(0, 32768 * 10 ** (-50 / 20), len(audio))  # line noise
    pcm = ulaw_roundtrip(np.clip(audio, -32768, 32767).astype(np.int16))
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return out


# -- the gateway --------------------------------------------------------------------------------------------------
class _Desk:
    """The caller-id lookup the calls need: the bench's caller is known, so each call goes straight to the asset."""

    def caller_name(self, caller_id):
        return "Mario Rossi"


def build(tmp: Path, models_dir: Path | None, way=None):
    from channels.voice import understand
    from channels.voice.calls import Calls
    from channels.voice.flow import FlowSettings
    from channels.voice.settings import VoiceSettings
    from gateway.app import build_core, channel_context, seed_directory
    from gateway.config import load_config

    env = {
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(tmp / "data"),
        "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{ROOT / "config" / "assets.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{ROOT / "config" / "users.csv"}"',
    }
    core = build_core(load_config(None, environ=env))
    seed_directory(core)
    settings = VoiceSettings(enabled=True, sip={"enabled": False}, stt={"models_dir": models_dir})
    ctx = channel_context(core, settings)
    understander = understand.from_context(ctx, settings, way)
    if understander is None:
        sys.exit("the gateway gives the voice channel no interpret port (ChannelContext.interpret): nothing to bench")
    calls = Calls(deliver=lambda contact: None, desk=_Desk(), blobs=core.blobs, spool=tmp / "spool",
                  flow_settings=FlowSettings(), understand=understander)
    return core, calls


def at_asset_question(calls, call_id: str, language: str):
    from channels.voice.flow import Digits, Record

    session, _ = calls.open(call_id, KNOWN_CALLER)
    session.handle(Digits(MENU_KEY[language]))
    session.handle(Digits("1"))  # report a problem
    actions = session.handle(Digits("1"))  # "are you Mario Rossi?" yes
    assert isinstance(actions[0], Record) and actions[0].question == "asset", actions
    return session


def one_answer(session, wav: Path) -> tuple[float, str | None, str | None]:
    """Hand the session its asset answer; (seconds to the confirmation prompt, tag understood, name said)."""
    from channels.voice.flow import Gather, Text

    shutil.copy(wav, session.recording_path("asset"))
    t0 = time.perf_counter()
    actions = session.recorded("asset")
    dt = time.perf_counter() - t0
    said = next((p.text for a in actions if isinstance(a, Gather) for p in a.prompts if isinstance(p, Text)), None)
    tag = session.flow.candidate.value if said and session.flow.candidate else None
    return dt, tag, said


def cpu_seconds() -> float:
    """CPU time of this process, all its threads (the engine's own included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(calls, answers: list[tuple[Path, str]], language: str, concurrent: int, rounds: int, label: str) -> dict:
    cpu0 = cpu_seconds()
    times: list[float] = []
    right = total = 0
    lock = threading.Lock()
    for r in range(rounds):
        sessions = [at_asset_question(calls, f"{label}-{r}-{i}", language) for i in range(concurrent)]
        barrier = threading.Barrier(concurrent)

        def caller(i: int) -> None:
            nonlocal right, total
            wav, tag = answers[(r * concurrent + i) % len(answers)]
            barrier.wait()
            dt, got, _ = one_answer(sessions[i], wav)
            with lock:
                times.append(dt)
                total += 1
                right += got == tag

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return summary(label, times, right, total) | {"cpu": (cpu_seconds() - cpu0) / max(1, total)}


def run_active(calls, answers: list[tuple[Path, str]], language: str, concurrent: int, per_call: int, gap: float,
               label: str, seed: int = 7) -> dict:
    """`concurrent` calls live at once, each answering `per_call` asset questions after random pauses."""
    times: list[float] = []
    right = total = 0
    lock = threading.Lock()

    def caller(i: int) -> None:
        nonlocal right, total
        rng = np.random.default_rng(seed + i)
        for k in range(per_call):
            session = at_asset_question(calls, f"{label}-{i}-{k}", language)
            time.sleep(rng.uniform(0, gap))
            wav, tag = answers[(i * per_call + k) % len(answers)]
            dt, got, _ = one_answer(session, wav)
            with lock:
                times.append(dt)
                total += 1
                right += got == tag

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(label, times, right, total) | {"cpu": None}


def summary(label: str, times: list[float], right: int, total: int) -> dict:
    times = sorted(times)
    p95 = times[min(len(times) - 1, max(0, int(np.ceil(0.95 * len(times))) - 1))]
    return {"label": label, "n": len(times), "p50": statistics.median(times), "p95": p95, "max": times[-1],
            "asset_right": f"{right}/{total}"}


# -- ways of decoding, compared on the same answers -------------------------------------------------------------
VARIANTS = {  # name -> QuickWay fields
    "30s": dict(window=30),  # Whisper's padded window: what the IVR did before
    "answer+hints": dict(window=0, hints=True),  # a window as long as the answer, with hints (registry.quick_transcriber)
    "answer": dict(window=0),
    "10s": dict(window=10),
    "10s+hints": dict(window=10, hints=True),
    "10s+vad": dict(window=10, vad=True),
    "answer+vad": dict(window=0, vad=True),
    "10s/2x1": dict(window=10, threads=1, parallel=2),  # two decodings at once, one core each
    "answer/2x1": dict(window=0, threads=1, parallel=2),
    "30s/1t": dict(window=30, threads=1),  # one thread per decoding: CPU seconds not inflated by idle spinning
    "answer/1t": dict(window=0, threads=1),
    "10s/1t": dict(window=10, threads=1),
    "answer+hints/1t": dict(window=0, hints=True, threads=1),
}


def spoken_assets(languages, limit: int | None) -> list[tuple[Path, str, str]]:
    """The spoken set's asset answers (bench/spoken/calls.toml, both voices of each language): (wav, language, tag)."""
    from bench.calls import load_set
    from bench.spoken.voices import VOICES, Line, recording

    out = []
    for lang in languages:
        rows = [c for c in load_set() if c.lang == lang][: limit or None]
        out += [(recording(c.asset, v, Line()), lang, c.expect_asset) for c in rows for v in VOICES[lang]]
    return out


def variants(args) -> None:
    """Each way of decoding: asset right on the spoken set, and the wait for one answer alone and for 4 at once."""
    from channels.voice.understand import QuickWay

    rng = np.random.default_rng(10)
    names = args.variants.split(",") if args.variants != "all" else list(VARIANTS)
    languages = args.variant_languages.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-confirm-") as d:
        tmp = Path(d)
        clips = spoken_assets(languages, args.limit)
        answers = [(answer_wav(text, args.language, tmp / f"answer-{i}.wav", rng), tag) for i, (text, tag) in enumerate(ANSWERS[args.language])]
        print(f"{len(clips)} spoken asset answers ({','.join(languages)}), timing on {len(answers)} {args.language} 5-s answers, "
              f"{os.cpu_count()} cores", flush=True)
        print(f"| way | asset right (spoken set) | 1 call p50 / p95 s | {args.calls} at once p50 / p95 s | CPU s per answer (spoken set, one at a time) | load before → after |")
        print("|---|---|---|---|---|---|", flush=True)
        for name in names:
            load0 = " ".join(open("/proc/loadavg").read().split()[:3])
            core, calls = build(tmp / name, args.models_dir, QuickWay(**VARIANTS[name]))
            try:
                quick, interpret = calls.understander.transcribe, calls.understander.interpret
                quick(answers[0][0], args.language, "asset", [])  # loaded once per process, not per call
                right = {}
                cpu0 = cpu_seconds()
                for wav, lang, tag in clips:
                    text = quick(wav, lang, "asset", interpret.phrases("asset"))
                    got = interpret("asset", text, lang)
                    ok = getattr(got, "value", None) == tag
                    r = right.setdefault(lang, [0, 0])
                    r[0] += ok
                    r[1] += 1
                    if args.verbose:
                        print(f"  {name} {lang} {tag:14} {'ok ' if ok else 'MISS'} {text!r}", file=sys.stderr)
                cpu = (cpu_seconds() - cpu0) / len(clips)
                none = {"p50": float("nan"), "p95": float("nan")}
                floor = run(calls, answers, args.language, 1, len(answers), "1 call") if not args.no_timing else none
                worst = run(calls, answers, args.language, args.calls, args.rounds, "at once") if not args.no_timing else none
            finally:
                core.close()
            acc = " · ".join(f"{lang} {r[0]}/{r[1]}" for lang, r in right.items())
            total = sum(r[0] for r in right.values()), sum(r[1] for r in right.values())
            load1 = " ".join(open("/proc/loadavg").read().split()[:3])
            print(f"| {name} | {acc} · all {total[0]}/{total[1]} | {floor['p50']:.2f} / {floor['p95']:.2f} | "
                  f"{worst['p50']:.2f} / {worst['p95']:.2f} | {cpu:.2f} | {load0} → {load1} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--language", choices=sorted(ANSWERS), default="en")
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of the worst case")
    ap.add_argument("--per-call", type=int, default=6, help="asset answers per active call")
    ap.add_argument("--gap", type=float, default=8.0, help="longest pause before a call's asset answer, seconds")
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="where `models install --defaults` put the models (default: the bench's empty data directory)")
    ap.add_argument("--variants", help="compare ways of decoding (comma-separated names of VARIANTS, or 'all') "
                    "on the spoken set's asset answers and on the timed answers, instead of the usual run")
    ap.add_argument("--variant-languages", default="it,fr,en", help="languages of the spoken set for --variants")
    ap.add_argument("--limit", type=int, help="--variants: at most N calls of the spoken set per language")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--no-timing", action="store_true", help="--variants: accuracy and CPU per answer only (on a busy machine)")
    args = ap.parse_args()
    if args.variants:
        return variants(args)
    rng = np.random.default_rng(10)
    load_before = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="bench-confirm-") as d:
        tmp = Path(d)
        answers = [(answer_wav(text, args.language, tmp / f"answer-{i}.wav", rng), tag) for i, (text, tag) in enumerate(ANSWERS[args.language])]
        core, calls = build(tmp, args.models_dir)
        try:
            warm = at_asset_question(calls, "warm-up", args.language)
            one_answer(warm, answers[0][0])  # the engine is loaded once per process, not per call
            floor = run(calls, answers, args.language, 1, len(answers), "1 call")
            active = run_active(calls, answers, args.language, args.calls, args.per_call, args.gap, f"{args.calls} calls active")
            worst = run(calls, answers, args.language, args.calls, args.rounds, f"{args.calls} answers at once")
        finally:
            core.close()
    engine = calls.understander.transcribe.engine(args.language)
    print(f"confirmation prompt after a {ANSWER_SECONDS:.0f}-second asset answer, language {args.language}, "
          f"{engine.name} {Path(engine.model).name}, {os.cpu_count()} cores, load average {load_before} before, {open('/proc/loadavg').read().split()[:3]} after")
    print(f"{'':24} {'answers':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'asset right':>12} {'CPU s/answer':>13}")
    for row in (floor, active, worst):
        cpu = f"{row['cpu']:.2f}" if row.get("cpu") is not None else "-"
        print(f"{row['label']:24} {row['n']:>8} {row['p50']:>7.2f} {row['p95']:>7.2f} {row['max']:>7.2f} {row['asset_right']:>12} {cpu:>13}")
    print(f"CPU floor for {args.calls} answers ending together on {os.cpu_count()} cores: "
          f"{args.calls * floor['cpu'] / (os.cpu_count() or 1):.2f} s for the last one (the same CPU, shared, on an idle machine)")


if __name__ == "__main__":
    main()
