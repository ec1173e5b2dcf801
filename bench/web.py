"""Web form benchmark (issue 6): report-form submissions per second through the whole web channel, and p99.

A server process runs the gateway's web channel as `serve` runs it (uvicorn in one event loop, the app of
`channels.web`, the core on a fresh SQLite database in WAL mode with `synchronous=FULL`, seeded with the
sample inventory and directory). The load comes from `wrk` (Debian's, a C client: it leaves the CPU to the
server) with `--concurrency` keep-alive connections for `--seconds`; without wrk, from the same number of
keep-alive connections on plain asyncio sockets (`--client raw`, requests built before the clock starts: about
50 µs of client CPU a request); or from an asyncio httpx client (`--client python`, which costs as much CPU as
the server). Each request POSTs the multipart form as a browser does: the CSRF cookie, the form's submission
id and its token (computed with the server's key, given to both through `secret_key_file`, so each sample is
one POST and not a GET of the form plus a POST), the honeypot left empty, an empty file input. Every request
is a distinct report (distinct submission ids). Rate limits are off for the run. After the run the database
is counted: every 200 must be exactly one ticket (nothing lost, nothing duplicated).

Figures: submissions/s over the run, p50/p99 latency of one POST as the client measured it, and `cpu ms`, the
server processes' CPU time (user + system, all their threads) per submission: the figure that other work on a
shared machine disturbs least. The server and the client share the machine's cores. Traffic is loopback
only. `--processes N` runs N server processes on the same port (SO_REUSEPORT) and the same database, to see
what more web processes would give.

    .venv/bin/python bench/web.py                              # wrk (else raw), 32 connections, 10 s
    .venv/bin/python bench/web.py --client raw
    .venv/bin/python bench/web.py --processes 2
    .venv/bin/python bench/web.py --concurrency 64 --seconds 20
    .venv/bin/python bench/web.py --client python --n 2000
    .venv/bin/python bench/web.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REPORTS = [
    ("Mario Rossi", "mario.rossi@regione.example.it", "stampante tributi", "La stampante non stampa da stamattina, luce arancione fissa."),
    ("Giulia Bianchi", "giulia.bianchi@regione.example.it", "protocollo informatico", "Errore 500 quando registro un documento in entrata."),
    ("Luca Ferrari", "luca.ferrari@regione.example.it", "PC-0142", "Il computer si riavvia da solo ogni mezz'ora."),
    ("John Smith", "john.smith@example.org", "payroll module", "The payslip export stops with a timeout error."),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(workdir: str, port: int, key_file: str, ready, reuse_port: bool = False) -> None:
    """The server process: build the core and run the web channel until terminated."""
    os.chdir(ROOT)
    import logging

    logging.basicConfig(level=logging.WARNING)
    from channels.web.plugin import WebService
    from channels.web.app import create_app
    from channels.web.settings import WebSettings
    from gateway.app import build_core, channel_context, seed_directory
    sys.path.insert(0, str(ROOT / "bench"))
    from _mail import make_config  # benches do not import tests/
    from ticketing.desk import Desk

    core = build_core(make_config(Path(workdir), f"sqlite:///{workdir}/helpdesk.sqlite3"))
    seed_directory(core)
    settings = WebSettings(enabled=True, port=port, secret_key_file=key_file, cookie_secure=False,
                           submit_per_minute=0, status_per_minute=0, login_per_minute=0, api_per_minute=0)
    desk = Desk(core.sessions, core.lifecycle, core.config.ticketing.number_prefix)
    service = WebService(create_app(channel_context(core, settings), desk), "127.0.0.1", port,
                         **({"reuse_port": True} if reuse_port else {}))

    profile = os.environ.get("HD_BENCH_PROFILE")  # a file to write the server's cProfile stats to
    if profile:
        import cProfile
        import signal

        profiler = cProfile.Profile()
        profiler.enable()

        def dump(*_):
            profiler.disable()
            profiler.dump_stats(profile)
            os._exit(0)

        signal.signal(signal.SIGTERM, dump)

    async def main():
        await service.start()
        ready.set()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def summary(latencies: list[float], wall: float, statuses, *, truncated: bool) -> dict:
    """Submissions per second and latency percentiles of one client run (latencies in seconds)."""
    latencies = sorted(latencies)
    done = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(done - 1, int(p * done))] * 1000 if done else float("nan")

    return {"submissions": done, "seconds": round(wall, 2), "per_second": round(done / wall, 1) if wall else 0,
            "p50_ms": round(pct(0.50), 1), "p99_ms": round(pct(0.99), 1), "statuses": statuses, "truncated": truncated}


async def client(url: str, key: bytes, n: int, concurrency: int, max_seconds: float) -> dict:
    import httpx

    from channels.web.security import Signer

    signer = Signer(key)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(n))
    deadline = time.monotonic() + max_seconds

    async def worker(w: int) -> None:
        cookie = secrets.token_urlsafe(24)
        async with httpx.AsyncClient(base_url=url, headers={"cookie": f"hd_csrf={cookie}"}, timeout=30) as c:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                name, email, asset, anomaly = REPORTS[i % len(REPORTS)]
                sid = secrets.token_urlsafe(18)
                data = {"csrf": signer.csrf_token(cookie, sid), "sid": sid, "lang": "it", "name": name, "email": email,
                        "phone": "", "asset": asset, "anomaly": f"{anomaly} (#{i})", "website": ""}
                files = {"attachments": ("", b"", "application/octet-stream")}  # an empty file input, as browsers send it
                t0 = time.perf_counter()
                r = await c.post("/", data=data, files=files)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    # Warm up (connections, caches, the directory snapshot), untimed.
    async with httpx.AsyncClient(base_url=url) as c:
        for _ in range(3):
            await c.get("/")
    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - start
    return summary(latencies, wall, statuses, truncated=len(latencies) < n)


def multipart(i: int, signer, cookie: str) -> tuple[str, str]:
    boundary = "----hdbench" + secrets.token_hex(8)
    name, email, asset, anomaly = REPORTS[i % len(REPORTS)]
    sid = secrets.token_urlsafe(18)
    fields = {"csrf": signer.csrf_token(cookie, sid), "sid": sid, "lang": "it", "name": name, "email": email, "phone": "",
              "asset": asset, "anomaly": f"{anomaly} (#{i})", "website": ""}
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; filename=""\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n")
    return boundary, "".join(parts)


WRK_SCRIPT = r"""
-- Each thread takes every n-th prepared body, so no submission id is sent twice.
local bodies = dofile(BODIES)
local nthreads, counter, tid = NTHREADS, 0, 0
local threads = {}
function setup(thread) thread:set("tid", #threads) table.insert(threads, thread) end
function init(args) tid = tonumber(wrk.thread:get("tid")) or 0 end
function request()
  local i = tid + counter * nthreads + 1
  counter = counter + 1
  if i > #bodies then i = ((i - 1) % #bodies) + 1 end
  local b = bodies[i]
  return wrk.format("POST", "/", {["Content-Type"] = "multipart/form-data; boundary=" .. b[1], ["Cookie"] = COOKIE}, b[2])
end
function done(summary, latency, requests)
  local codes = {}
  io.write(string.format('{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(url: str, key: bytes, workdir: str, concurrency: int, seconds: float, max_bodies: int) -> dict:
    import subprocess

    from channels.web.security import Signer

    signer, cookie = Signer(key), secrets.token_urlsafe(24)
    bodies_file = Path(workdir) / "bodies.lua"
    with open(bodies_file, "w", encoding="utf-8") as f:
        f.write("return {\n")
        for i in range(max_bodies):
            boundary, body = multipart(i, signer, cookie)
            f.write(f"{{{json.dumps(boundary)}, {json.dumps(body)}}},\n")
        f.write("}\n")
    threads = 2
    script = Path(workdir) / "form.lua"
    script.write_text(WRK_SCRIPT.replace("BODIES", json.dumps(str(bodies_file))).replace("NTHREADS", str(threads))
                      .replace("COOKIE", json.dumps(f"hd_csrf={cookie}")))
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", str(script), url + "/"], capture_output=True, text=True, check=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    ok = stats["requests"] - stats["non2xx"]
    wall = stats["duration_us"] / 1e6
    return {"submissions": stats["requests"], "seconds": round(wall, 2), "per_second": round(stats["requests"] / wall, 1),
            "p50_ms": round(stats["p50_us"] / 1000, 1), "p99_ms": round(stats["p99_us"] / 1000, 1),
            "statuses": {200: ok, "other": stats["non2xx"], "socket_errors": stats["socket_errors"]},
            "truncated": stats["requests"] > max_bodies}


async def raw_client(url: str, key: bytes, concurrency: int, seconds: float, max_bodies: int) -> dict:
    """A wrk stand-in when Debian's wrk is not installed: keep-alive connections over plain asyncio sockets, the
    requests built before the clock starts, so the client spends ~50 µs of CPU a request (httpx: ~2 ms)."""
    from channels.web.security import Signer

    signer, cookie = Signer(key), secrets.token_urlsafe(24)
    host, port = url.removeprefix("http://").split(":")
    requests = []
    for i in range(max_bodies):
        boundary, body = multipart(i, signer, cookie)
        data = body.encode()
        requests.append((f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: hd_csrf={cookie}\r\n"
                         f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
    latencies: list[float] = []
    statuses: dict = {}
    counter = iter(range(max_bodies))
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                kind = 200 if head[9:12] == b"200" else "other"
                statuses[kind] = statuses.get(kind, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return summary(latencies, wall, statuses, truncated=len(latencies) >= max_bodies)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_rows(workdir: str) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(f"{workdir}/helpdesk.sqlite3") as db:
        return db.execute("SELECT count(*) FROM tickets").fetchone()[0], db.execute("SELECT count(*) FROM messages").fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--client", choices=["wrk", "raw", "python"], default=None,
                    help="default: wrk when installed, else raw (plain asyncio sockets)")
    ap.add_argument("--seconds", type=float, default=10, help="wrk and raw: length of the run")
    ap.add_argument("--n", type=int, default=3000, help="python client: submissions to time")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=60, help="python client: time limit")
    ap.add_argument("--processes", type=int, default=1,
                    help="server processes on the same port (SO_REUSEPORT) and the same database")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.client is None:
        import shutil

        args.client = "wrk" if shutil.which("wrk") else "raw"

    workdir = tempfile.mkdtemp(prefix="hd-bench-web-")
    key_file = Path(workdir) / "web.key"
    key = secrets.token_hex(32).encode()
    key_file.write_bytes(key)
    port = free_port()
    ctx = mp.get_context("spawn")
    servers = []
    load_before = os.getloadavg()
    try:
        # One at a time: the first creates and seeds the database, the others open it.
        for _ in range(args.processes):
            ready = ctx.Event()
            servers.append(ctx.Process(target=serve, args=(workdir, port, str(key_file), ready, args.processes > 1), daemon=True))
            servers[-1].start()
            if not ready.wait(60):
                raise SystemExit("the web server did not start")
        url = f"http://127.0.0.1:{port}"
        if args.client in ("wrk", "raw"):
            import httpx

            for _ in range(3):  # warm up, untimed
                httpx.get(url + "/")
        cpu_before = sum(cpu_seconds(p.pid) for p in servers)
        if args.client == "wrk":
            # Enough distinct bodies for 1500 submissions/s: no submission id is ever sent twice.
            result = run_wrk(url, key, workdir, args.concurrency, args.seconds, int(args.seconds * 1500) + 1000)
        elif args.client == "raw":
            try:
                import uvloop

                run = uvloop.run
            except ImportError:
                run = asyncio.run
            result = run(raw_client(url, key, args.concurrency, args.seconds, int(args.seconds * 1500) + 1000))
        else:
            result = asyncio.run(client(url, key, args.n, args.concurrency, args.max_seconds))
        server_cpu = sum(cpu_seconds(p.pid) for p in servers) - cpu_before
    finally:
        for p in servers:
            p.terminate()
        for p in servers:
            p.join(10)
    tickets, messages = count_rows(workdir)
    ok = result["statuses"].get(200, 0)
    # wrk stops its clock with requests in flight: the server still takes those in (at most one a connection).
    in_flight = args.concurrency if args.client == "wrk" else 0
    sound = ok <= tickets <= ok + in_flight and messages == tickets and result["statuses"].get("other", 0) == 0
    result.update(
        server_cpu_ms=round(server_cpu * 1000 / result["submissions"], 2) if result["submissions"] else None,
        client=args.client, concurrency=args.concurrency, processes=args.processes, database="sqlite (WAL, synchronous=FULL)", cpus=os.cpu_count(),
        load_before=[round(x, 2) for x in load_before], load_after=[round(x, 2) for x in os.getloadavg()],
        tickets=tickets, messages=messages, check="ok" if sound else f"MISMATCH ({tickets} tickets, {messages} messages)",
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"web form bench: {result['database']}, {result['cpus']} CPUs shared by server and client, "
          f"load {result['load_before']} -> {result['load_after']}")
    print(f"client: {result['client']}, server processes: {result['processes']}")
    print(f"{'concurrency':>11} {'submissions':>11} {'subm/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7}  statuses  check")
    print(f"{result['concurrency']:>11} {result['submissions']:>11} {result['per_second']:>8} {result['p50_ms']:>7} "
          f"{result['p99_ms']:>7} {result['server_cpu_ms']:>7}  {result['statuses']}  {result['check']}{' (truncated)' if result['truncated'] else ''}")


if __name__ == "__main__":
    main()
