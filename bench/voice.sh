#!/usr/bin/env bash
# Bench: the SIP transport of the voice channel in ONE process (one pjsua2 endpoint, its 4 call slots),
# loaded by sipp on loopback. Prints a table (or JSON with --json).
#
#   bench/voice.sh [--calls 24] [--setups 400] [--rate 40] [--hold-ms 0] [--json]
#
# 1. Recorded calls: --calls callers, 4 at a time (-l 4), each keys English and "report a problem" as
#    RFC 4733 telephone-events, says its name (an Asterisk sound file, G.711 µ-law), ends it with #, and
#    hangs up during the next question: every call must leave one ticket whose recording correlates with
#    the audio sent (tests/voice_support.correlation: aligned, 100 ms pieces may slip by 40 ms).
# 2. Call setups: --setups short calls (INVITE, 180, 200, ACK, --hold-ms, BYE) offered at --rate per second
#    with at most 4 open: calls answered per second, the INVITE→200 time, failed calls. Each one opens an
#    IVR session (caller-id lookup in the directory, spool directory, state) and starts the greeting.
#
# The gateway runs in its own process on a fresh SQLite database (as `serve` would run the channel), with
# the prompts of config/prompts (built first if missing). Its CPU time is read from /proc around each phase.
# Needs: sipp (sip-tester), espeak-ng and ffmpeg (prompts), asterisk-core-sounds-en (the speech).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
CALLS=24 SETUPS=400 RATE=40 HOLD_MS=0 JSON=0
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) CALLS=$2; shift 2 ;;
        --setups) SETUPS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --hold-ms) HOLD_MS=$2; shift 2 ;;
        --json) JSON=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v sipp >/dev/null || { echo "sipp is not installed (Debian package sip-tester)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hd-voice-bench.XXXXXX)
GW_PID=""
cleanup() {
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then kill -TERM "$GW_PID"; wait "$GW_PID" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$ROOT"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat"; }
load() { cut -d' ' -f1 /proc/loadavg; }

# -- the gateway: the voice channel's SIP service alone, in its own process -----------------------------------
"$PY" - "$WORK" <<'EOF' &
import asyncio, logging, signal, sys, threading
from pathlib import Path
sys.path.insert(0, ".")
logging.basicConfig(level=logging.WARNING, format="gateway %(levelname)s %(name)s: %(message)s")
from channels.voice import prompts
from channels.voice.settings import VoiceSettings
from channels.voice.sip.service import SipService
from gateway.app import build_core, channel_context, seed_directory
from tests.conftest import make_config

work = Path(sys.argv[1])
prompts.build(Path("config/prompts"))
core = build_core(make_config(work, f"sqlite:///{work / 'helpdesk.sqlite3'}"))
seed_directory(core)
settings = VoiceSettings(enabled=True, prompts_dir=Path("config/prompts"), sip={"port": 0, "rtp_port": 0}, ivr={"gather_timeout": 3})
service = SipService(channel_context(core, settings), settings, work / "calls" / "sip")
asyncio.run(service.start())
(work / "port").write_text(str(service.port))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
asyncio.run(service.stop())
core.close()
EOF
GW_PID=$!
for _ in $(seq 600); do [ -s "$WORK/port" ] && break; kill -0 "$GW_PID" 2>/dev/null || exit 1; sleep 0.1; done
PORT=$(cat "$WORK/port")

# -- 1. recorded calls ------------------------------------------------------------------------------------------
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.voice_support import Caller
c = Caller(14, caller_id="+4989555000", hang_up_at=13.0)
c.key(1.0, "2")
c.key(1.5, "1")
end = c.say(7.0, "tt-weasels", "name")
c.key(end + 0.6, "#")
c.write(Path(sys.argv[1]) / "recorded", "caller")
EOF
load1=$(load); t1=$(cpu_ticks); s1=$(date +%s.%N)
( cd "$WORK/recorded" && sipp "127.0.0.1:$PORT" -sf caller.xml -m "$CALLS" -l 4 -r 10 -i 127.0.0.1 -mi 127.0.0.1 \
    -nostdin -trace_stat -stf stats.csv -fd 1 -timeout 600s -timeout_error >sipp.out 2>&1 ) || true
s2=$(date +%s.%N); t2=$(cpu_ticks); load2=$(load)
sleep 2  # the last hang-ups are delivered off the SIP thread

# -- 2. call setups -----------------------------------------------------------------------------------------------
mkdir -p "$WORK/setups" && cp tests/data/sipp/hold.xml "$WORK/setups/"
t3=$(cpu_ticks); s3=$(date +%s.%N)
( cd "$WORK/setups" && sipp "127.0.0.1:$PORT" -sf hold.xml -d "$HOLD_MS" -m "$SETUPS" -l 4 -r "$RATE" -i 127.0.0.1 \
    -mi 127.0.0.1 -nostdin -trace_stat -stf stats.csv -fd 1 -timeout 300s -timeout_error >sipp.out 2>&1 ) || true
s4=$(date +%s.%N); t4=$(cpu_ticks); load3=$(load)

kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=""

# -- results ---------------------------------------------------------------------------------------------------------
"$PY" - "$WORK" "$CALLS" "$SETUPS" "$RATE" "$JSON" "$(getconf CLK_TCK)" "$s1 $s2 $s3 $s4" "$t1 $t2 $t3 $t4" "$load1 $load2 $load3" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path
sys.path.insert(0, ".")
import numpy as np
from sqlalchemy import select
from gateway.app import build_core
from tests.conftest import make_config
from tests.voice_support import correlation, line_audio, read_wav, sound_file

work, calls, setups, rate, as_json, hz = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
s1, s2, s3, s4 = map(float, sys.argv[7].split())
t1, t2, t3, t4 = map(int, sys.argv[8].split())
loads = sys.argv[9].split()

def sipp_stats(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    last = dict(zip(rows[0], rows[-1]))
    ms = lambda v: sum(float(x) * f for x, f in zip(v.split(":"), (3600e3, 60e3, 1e3, 1e-3)))
    return {"ok": int(last["SuccessfulCall(C)"]), "failed": int(last["FailedCall(C)"]),
            "elapsed_s": ms(last["ElapsedTime(C)"]) / 1000, "invite_to_200_ms": ms(last.get("ResponseTime1(C)", "0:0:0:0"))}

rec, setup = sipp_stats(work / "recorded" / "stats.csv"), sipp_stats(work / "setups" / "stats.csv")
core = build_core(make_config(work, f"sqlite:///{work / 'helpdesk.sqlite3'}"))
from ticketing.models import StoredAttachment
with core.sessions() as s:
    shas = [a.sha256 for a in s.scalars(select(StoredAttachment).where(StoredAttachment.kind == "recording"))]
sent = line_audio(read_wav(sound_file("tt-weasels")))
corr = sorted(correlation(sent, read_wav(core.blobs.path(sha))) for sha in shas)
out = {
    "recorded_calls": {"offered": calls, "concurrent": 4, **rec, "tickets_with_recording": len(corr),
                       "correlation_min": round(corr[0], 4) if corr else None,
                       "correlation_median": round(statistics.median(corr), 4) if corr else None,
                       "gateway_cpu_s": round((t2 - t1) / hz, 2), "wall_s": round(s2 - s1, 1),
                       "gateway_cpu_per_call_s": round((t2 - t1) / hz / max(1, rec["ok"]), 3)},
    "call_setups": {"offered": setups, "offered_rate": rate, **setup,
                    "calls_per_s": round(setup["ok"] / max(setup["elapsed_s"], 1e-9), 1),
                    "gateway_cpu_s": round((t4 - t3) / hz, 2), "wall_s": round(s4 - s3, 1)},
    "load_average": loads,
}
if as_json:
    print(json.dumps(out, indent=2))
else:
    r, c = out["recorded_calls"], out["call_setups"]
    print(f"load average {loads[0]} → {loads[1]} → {loads[2]} (2 cores; one gateway process, 4 call slots)")
    print(f"recorded calls: {r['ok']}/{calls} ok, {r['failed']} failed, {r['tickets_with_recording']} tickets with a recording, "
          f"correlation min {r['correlation_min']} median {r['correlation_median']}, "
          f"gateway CPU {r['gateway_cpu_s']} s over {r['wall_s']} s ({r['gateway_cpu_per_call_s']} s per call)")
    print(f"call setups:    {c['ok']}/{setups} ok, {c['failed']} failed, {c['calls_per_s']} calls/s answered "
          f"(offered {rate}/s, 4 open at most), INVITE→200 {c['invite_to_200_ms']:.1f} ms avg, gateway CPU {c['gateway_cpu_s']} s")
ok = rec["failed"] == 0 and setup["failed"] == 0 and len(corr) == rec["ok"]
sys.exit(0 if ok else 1)
EOF
