#!/usr/bin/env bash
# Bench: the SIP transport of the voice channel, loaded by sipp on loopback. Prints a table (or JSON with --json).
#
#   bench/voice.sh [--calls 24] [--setups 400] [--rate 40] [--hold-ms 0] [--json]           one process
#   bench/voice.sh --workers 15 [--calls 60] [--concurrent 60] [--setups 600] [--rate 40] [--pike 5000] [--json]
#
# Without --workers the gateway answers SIP itself: ONE pjsua2 endpoint and its 4 call slots. With --workers N
# it runs the voice channel as `serve` does with voice.sip.workers = N: Kamailio on the public port (dispatcher
# round robin, record-routing, pike at --pike requests per 2 s from one address: every caller here is
# 127.0.0.1) in front of N call-handling processes, and the callers follow the dialog's route set through
# Kamailio (channels/voice/testing.through_proxy).
#
# 1. Recorded calls: --calls callers, at most --concurrent at a time (4 for one process, 4 * N behind
#    Kamailio), offered at 10/s (20/s behind Kamailio); each keys English and "report a problem" as RFC 4733
#    telephone-events, says its name (an Asterisk sound file, G.711 µ-law), ends it with #, and hangs up
#    during the next question (a 13-s call): every call must leave one ticket whose recording correlates
#    with the audio sent (channels/voice/testing.correlation: aligned, 100 ms pieces may slip by 40 ms).
#    "peak" is the most calls sipp had open at once.
# 2. Call setups: --setups short calls (INVITE, 180, 200, ACK, --hold-ms, BYE) offered at --rate per second
#    with at most --concurrent open: calls answered per second, the INVITE→200 time, failed calls. Each one
#    opens an IVR session (caller-id lookup in the directory, spool directory, state) and starts the greeting.
#
# The gateway runs in its own process on a fresh SQLite database (as `serve` would run the channel), with
# the prompts of config/prompts (built first if missing). Its CPU time, with its workers' and Kamailio's, is
# read from /proc around each phase.
# Needs: sipp (sip-tester), espeak-ng and ffmpeg (prompts), asterisk-core-sounds-en (the speech), and
# kamailio for --workers.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
WORKERS=1 CALLS="" CONCURRENT="" SETUPS="" RATE=40 HOLD_MS=0 PIKE=5000 JSON=0
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=$2; shift 2 ;;
        --calls) CALLS=$2; shift 2 ;;
        --concurrent) CONCURRENT=$2; shift 2 ;;
        --setups) SETUPS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --hold-ms) HOLD_MS=$2; shift 2 ;;
        --pike) PIKE=$2; shift 2 ;;
        --json) JSON=1; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$WORKERS" -gt 1 ]; then
    CALLS=${CALLS:-60} CONCURRENT=${CONCURRENT:-$((4 * WORKERS))} SETUPS=${SETUPS:-600} CALL_RATE=20 PROXIED=1
else
    CALLS=${CALLS:-24} CONCURRENT=${CONCURRENT:-4} SETUPS=${SETUPS:-400} CALL_RATE=10 PROXIED=0
fi
command -v sipp >/dev/null || { echo "sipp is not installed (Debian package sip-tester)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hd-voice-bench.XXXXXX)
GW_PID=""
cleanup() {
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then kill -TERM "$GW_PID"; wait "$GW_PID" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$ROOT"

tree() {  # the gateway and its descendants: the workers, Kamailio and its children
    local all=$1 frontier=$1
    while [ -n "$frontier" ]; do
        frontier=$(for p in $frontier; do pgrep -P "$p" || true; done)
        all="$all $frontier"
    done
    echo $all
}
cpu_ticks() {
    local t=0 p
    for p in $(tree "$GW_PID"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo $t
}
load() { cut -d' ' -f1 /proc/loadavg; }

# -- the gateway: the voice channel's SIP alone, in its own process ---------------------------------------------
"$PY" - "$WORK" "$WORKERS" "$PIKE" <<'EOF' &
import asyncio, logging, signal, sys
from pathlib import Path
sys.path[:0] = [".", "bench"]
logging.basicConfig(level=logging.WARNING, format="gateway %(levelname)s %(name)s: %(message)s")
from channels.voice import plugin, prompts
from channels.voice.settings import VoiceSettings
from gateway.app import build_core, channel_context, seed_directory
from _mail import make_config
from channels.voice.testing import free_port_block

work, workers, pike = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
prompts.build(Path("config/prompts"))
core = build_core(make_config(work, f"sqlite:///{work / 'helpdesk.sqlite3'}", logging__level="WARNING"))
seed_directory(core)
sip = {"port": 0, "rtp_port": 0, "limits": {"exempt": ["127.0.0.1"]}}  # every bench caller is 127.0.0.1
if workers > 1:  # Kamailio on the first port of the block, the workers on the ones after it
    sip.update(port=free_port_block(workers + 1), workers=workers, kamailio={"pike_requests": pike})
settings = VoiceSettings(enabled=True, prompts_dir=Path("config/prompts").resolve(), sip=sip, ivr={"gather_timeout": 3})
channel = plugin.load(channel_context(core, settings))
(service,) = channel.services

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await channel.start()
    (work / "port").write_text(str(settings.sip.port if workers > 1 else service.port))
    await stop.wait()
    await channel.stop()

asyncio.run(main())
core.close()
EOF
GW_PID=$!
for _ in $(seq 1200); do [ -s "$WORK/port" ] && break; kill -0 "$GW_PID" 2>/dev/null || exit 1; sleep 0.1; done
PORT=$(cat "$WORK/port")

# -- the callers' scenarios ---------------------------------------------------------------------------------------
"$PY" - "$WORK" "$PROXIED" <<'EOF'
import sys
from pathlib import Path
sys.path[:0] = [".", "bench"]
from channels.voice.testing import SIPP_DIR, Caller, through_proxy
work, proxied = Path(sys.argv[1]), sys.argv[2] == "1"
c = Caller(14, caller_id="+4989555000", hang_up_at=13.0)
c.key(1.0, "3")
c.key(1.5, "1")
end = c.say(7.0, "tt-weasels", "name")
c.key(end + 0.6, "#")
c.write(work / "recorded", "caller", via_proxy=proxied)
hold = (SIPP_DIR / "hold.xml").read_text()
(work / "setups").mkdir()
(work / "setups" / "hold.xml").write_text(through_proxy(hold) if proxied else hold)
EOF

# -- 1. recorded calls ------------------------------------------------------------------------------------------
load1=$(load); t1=$(cpu_ticks); s1=$(date +%s.%N)
( cd "$WORK/recorded" && sipp "127.0.0.1:$PORT" -sf caller.xml -m "$CALLS" -l "$CONCURRENT" -r "$CALL_RATE" \
    -i 127.0.0.1 -mi 127.0.0.1 -nostdin -trace_stat -stf stats.csv -fd 1 -timeout 600s -timeout_error >sipp.out 2>&1 ) || true
s2=$(date +%s.%N); t2=$(cpu_ticks); load2=$(load)
sleep 2  # the last hang-ups are delivered off the SIP thread

# -- 2. call setups -----------------------------------------------------------------------------------------------
t3=$(cpu_ticks); s3=$(date +%s.%N)
( cd "$WORK/setups" && sipp "127.0.0.1:$PORT" -sf hold.xml -d "$HOLD_MS" -m "$SETUPS" -l "$CONCURRENT" -r "$RATE" \
    -i 127.0.0.1 -mi 127.0.0.1 -nostdin -trace_stat -stf stats.csv -fd 1 -timeout 300s -timeout_error >sipp.out 2>&1 ) || true
s4=$(date +%s.%N); t4=$(cpu_ticks); load3=$(load)

kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=""

# -- results ---------------------------------------------------------------------------------------------------------
"$PY" - "$WORK" "$CALLS" "$SETUPS" "$RATE" "$JSON" "$(getconf CLK_TCK)" "$s1 $s2 $s3 $s4" "$t1 $t2 $t3 $t4" \
    "$load1 $load2 $load3" "$WORKERS" "$CONCURRENT" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path
sys.path[:0] = [".", "bench"]
from sqlalchemy import select
from gateway.app import build_core
from _mail import make_config
from channels.voice.testing import correlation, line_audio, read_wav, sound_file

work, calls, setups, rate, as_json, hz = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
s1, s2, s3, s4 = map(float, sys.argv[7].split())
t1, t2, t3, t4 = map(int, sys.argv[8].split())
loads = sys.argv[9].split()
workers, concurrent = int(sys.argv[10]), int(sys.argv[11])

def sipp_stats(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    last = dict(zip(rows[0], rows[-1]))
    ms = lambda v: sum(float(x) * f for x, f in zip(v.split(":"), (3600e3, 60e3, 1e3, 1e-3)))
    peak = max(int(dict(zip(rows[0], r)).get("CurrentCall", 0) or 0) for r in rows[1:])
    return {"ok": int(last["SuccessfulCall(C)"]), "failed": int(last["FailedCall(C)"]), "peak_open": peak,
            "elapsed_s": ms(last["ElapsedTime(C)"]) / 1000, "invite_to_200_ms": ms(last.get("ResponseTime1(C)", "0:0:0:0"))}

rec, setup = sipp_stats(work / "recorded" / "stats.csv"), sipp_stats(work / "setups" / "stats.csv")
core = build_core(make_config(work, f"sqlite:///{work / 'helpdesk.sqlite3'}"))
from ticketing.models import StoredAttachment
with core.sessions() as s:
    shas = [a.sha256 for a in s.scalars(select(StoredAttachment).where(StoredAttachment.kind == "recording"))]
sent = line_audio(read_wav(sound_file("tt-weasels")))
corr = sorted(correlation(sent, read_wav(core.blobs.path(sha))) for sha in shas)
setup_kind = f"Kamailio + {workers} workers" if workers > 1 else "one gateway process"
out = {
    "setup": {"workers": workers, "kamailio": workers > 1, "call_slots": 4 * workers, "concurrent_limit": concurrent},
    "recorded_calls": {"offered": calls, **rec, "tickets_with_recording": len(corr),
                       "correlation_min": round(corr[0], 4) if corr else None,
                       "correlation_median": round(statistics.median(corr), 4) if corr else None,
                       "correlation_below_0_99": sum(c < 0.99 for c in corr),
                       "gateway_cpu_s": round((t2 - t1) / hz, 2), "wall_s": round(s2 - s1, 1),
                       "gateway_cpu_per_call_s": round((t2 - t1) / hz / max(1, rec["ok"]), 3)},
    "call_setups": {"offered": setups, "offered_rate": rate, **setup,
                    "calls_per_s": round(setup["ok"] / (setup["elapsed_s"] if setup["elapsed_s"] > 0.05 else s4 - s3), 1),  # a short run's last sipp row may predate its end
                    "gateway_cpu_s": round((t4 - t3) / hz, 2), "wall_s": round(s4 - s3, 1)},
    "load_average": loads,
}
if as_json:
    print(json.dumps(out, indent=2))
else:
    r, c = out["recorded_calls"], out["call_setups"]
    print(f"load average {loads[0]} → {loads[1]} → {loads[2]} (2 cores; {setup_kind}, {4 * workers} call slots)")
    print(f"recorded calls: {r['ok']}/{calls} ok, {r['failed']} failed, peak {r['peak_open']} open at once, "
          f"{r['tickets_with_recording']} tickets with a recording, "
          f"correlation min {r['correlation_min']} median {r['correlation_median']} ({r['correlation_below_0_99']} below 0.99), "
          f"gateway CPU {r['gateway_cpu_s']} s over {r['wall_s']} s ({r['gateway_cpu_per_call_s']} s per call)")
    print(f"call setups:    {c['ok']}/{setups} ok, {c['failed']} failed, {c['calls_per_s']} calls/s answered "
          f"(offered {rate}/s, {concurrent} open at most), INVITE→200 {c['invite_to_200_ms']:.1f} ms avg, "
          f"gateway CPU {c['gateway_cpu_s']} s")
ok = rec["failed"] == 0 and setup["failed"] == 0 and len(corr) == rec["ok"]
sys.exit(0 if ok else 1)
EOF
