"""Intake benchmark (issue 2): contacts taken in per second through `IntakeService`, end to end — extraction
pipeline, threading checks, ticket/fields/message/event rows, durable commit.

Matrix: SQLite (the embedded default: WAL, `synchronous=FULL`, `BEGIN IMMEDIATE`) and PostgreSQL (a throwaway
cluster started here on a free loopback port with fsync on, or the server in `HELPDESK_BENCH_POSTGRES_URL`),
× 1 and N concurrent worker processes, × one commit per contact (`submit`) and batched commits
(`submit_many`, 32 a commit, as the SMTP receiver batches concurrent sessions).

Contacts are the hand-written Italian/English email, web-form and call-transcript cases of
`tests/data/extraction_cases.json`, multiplied with distinct external ids (and Message-IDs for email), so
extraction does real work on varied text. Each run starts on a fresh database seeded with the sample
inventory and directory (`config/*.csv`), warms up, then times the calls. After each run the database is
counted: every contact submitted must be exactly one message (nothing lost, nothing duplicated).

Figures: contacts/s over the wall time from the start barrier to the last worker's end; p50/p99 of one
call (`submit()` for single commits, one `submit_many()` of 32 for batches); peak RSS of a worker process.
The run is bounded: `--n` contacts per run and `--max-seconds` per run, after which workers stop and the
row is marked truncated. Traffic goes to loopback only.

    .venv/bin/python bench/intake.py                       # the whole matrix, table on stdout
    .venv/bin/python bench/intake.py --only sqlite --procs 1 --n 5000
    .venv/bin/python bench/intake.py --json > intake.json
    .venv/bin/python bench/intake.py --only sqlite --procs 1 --modes submit --profile /tmp/intake.prof
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _pg  # noqa: E402

CASES = ROOT / "tests" / "data" / "extraction_cases.json"
CONFIG_DIR = ROOT / "config"
ENV_POSTGRES = "HELPDESK_BENCH_POSTGRES_URL"
MODES = ("submit", "submit_many")
TARGET = 1000.0  # contacts/s on SQLite in one process (issue 2)
BARRIER_SECONDS = 120.0  # start-up and warm-up of every worker must fit in this


@dataclass(frozen=True)
class RunSpec:
    backend: str  # "sqlite" | "postgresql"
    procs: int
    mode: str  # "submit" | "submit_many"
    n: int  # measured contacts in the whole run, split between the processes
    batch: int
    warmup: int  # contacts per process before the clock starts
    max_seconds: float
    profile: str | None = None


# -- contacts -----------------------------------------------------------------------------------------------------
def load_cases() -> list[dict]:
    return json.loads(CASES.read_text(encoding="utf-8"))


def make_contacts(cases: list[dict], tag: str, count: int, start: int = 0) -> list:
    """`count` contacts cycling through the cases, each with its own external id (and Message-ID for email).

    The raw input's reference is filled as a channel adapter would (the hash of the bytes), without writing
    a blob: storing the raw input is the adapter's cost, not the intake's.
    """
    from gateway.contact_files import contact_from_dict
    from ticketing.contact import BlobRef, ThreadHints

    out = []
    for i in range(start, start + count):
        case = cases[i % len(cases)]
        ext = f"bench-{tag}-{i}"
        c = contact_from_dict(case, case["channel"], default_id=ext)
        raw = f"{c.subject or ''}\n{c.text}\n{ext}".encode()
        changes = {"raw": BlobRef(hashlib.sha256(raw).hexdigest(), len(raw))}
        if case["channel"] == "email":
            ext = f"<{ext}@bench.regione.example.it>"
            changes.update(external_id=ext, thread=ThreadHints(message_id=ext))
        out.append(c.replace(**changes))
    return out


# -- configuration, as tests/conftest.py make_config builds it ------------------------------------------------------
def make_config(data_dir: Path, database_url: str):
    from gateway.config import load_config

    env = {
        "HELPDESK_GATEWAY__STORAGE__DATA_DIR": str(data_dir),
        "HELPDESK_GATEWAY__STORAGE__URL": database_url,
        "HELPDESK_GATEWAY__STORAGE__SQLITE_SYNCHRONOUS": "FULL",
        "HELPDESK_GATEWAY__DIRECTORY__ASSETS_CSV": f'"{CONFIG_DIR / "assets.csv"}"',
        "HELPDESK_GATEWAY__DIRECTORY__USERS_CSV": f'"{CONFIG_DIR / "users.csv"}"',
    }
    # An empty file of our own: defaults ← environment only, whatever config/gateway.toml the cwd holds.
    empty = data_dir / "bench.toml"
    if not empty.exists():
        empty.write_text("", encoding="utf-8")
    return load_config(empty, environ=env)


# -- one worker process ---------------------------------------------------------------------------------------------
def worker(spec: RunSpec, url: str, data_dir: str, wid: int, count: int, barrier, out) -> None:
    """Build a core on the run's database, warm up, wait for the others, time `count` contacts, report."""
    try:
        out.put(_work(spec, url, Path(data_dir), wid, count, barrier))
    except BaseException as e:  # the parent must hear about it rather than wait for a result
        out.put({"wid": wid, "error": f"{type(e).__name__}: {e}"})
        raise


def _work(spec: RunSpec, url: str, data_dir: Path, wid: int, count: int, barrier) -> dict:
    from gateway.app import build_core

    core = build_core(make_config(data_dir, url), upgrade=False)
    try:
        cases = load_cases()
        warm = make_contacts(cases, f"w{wid}-warm", spec.warmup)
        todo = make_contacts(cases, f"w{wid}", count, start=wid * 7)  # workers start on different cases
        step = spec.batch if spec.mode == "submit_many" else 1
        call = core.intake.submit_many if spec.mode == "submit_many" else (lambda cs: [core.intake.submit(cs[0])])
        for i in range(0, len(warm), step):
            call(warm[i : i + step])

        profiler = None
        if spec.profile:
            import cProfile

            profiler = cProfile.Profile()
        barrier.wait(timeout=BARRIER_SECONDS)
        deadline = time.monotonic() + spec.max_seconds
        outcomes: dict[str, int] = {}
        latencies: list[float] = []
        done = 0
        t0 = time.time()
        if profiler:
            profiler.enable()
        for i in range(0, len(todo), step):
            c0 = time.perf_counter()
            results = call(todo[i : i + step])
            latencies.append(time.perf_counter() - c0)
            done += len(results)
            for r in results:
                outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
            if time.monotonic() > deadline:
                break
        t1 = time.time()
        if profiler:
            profiler.disable()
            profiler.dump_stats(f"{spec.profile}.{spec.backend}-{spec.procs}-{spec.mode}.{wid}")
        return {
            "wid": wid,
            "start": t0,
            "end": t1,
            "done": done,
            "warmup": len(warm),
            "outcomes": outcomes,
            "latencies": latencies,
            "truncated": done < count,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # KiB on Linux
        }
    finally:
        core.close()


# -- one run: a fresh database, N workers ----------------------------------------------------------------------------
def run(spec: RunSpec, url: str, data_dir: Path) -> dict:
    from gateway.app import build_core, seed_directory

    core = build_core(make_config(data_dir, url))  # migrates the fresh database
    seed_directory(core)
    core.close()

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: honest RSS, no inherited connections
    barrier, out = ctx.Barrier(spec.procs), ctx.Queue()
    shares = [spec.n // spec.procs + (1 if w < spec.n % spec.procs else 0) for w in range(spec.procs)]
    procs = [ctx.Process(target=worker, args=(spec, url, str(data_dir), w, shares[w], barrier, out)) for w in range(spec.procs)]
    for p in procs:
        p.start()
    reports, errors = [], []
    give_up = time.monotonic() + BARRIER_SECONDS + spec.max_seconds + 60
    try:
        while len(reports) + len(errors) < spec.procs:
            try:
                r = out.get(timeout=max(0.1, give_up - time.monotonic()))
            except queue.Empty:
                errors.append("a worker did not report in time")
                break
            if "error" in r:
                errors.append(f"worker {r['wid']}: {r['error']}")
                barrier.abort()  # the others stop waiting for it and report at once
            else:
                reports.append(r)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
    if errors:
        raise RuntimeError("; ".join(errors))

    submitted = sum(r["done"] + r["warmup"] for r in reports)
    stored = _count_messages(url)
    done = sum(r["done"] for r in reports)
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    lat = sorted(x for r in reports for x in r["latencies"])
    outcomes: dict[str, int] = {}
    for r in reports:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    return {
        **{k: v for k, v in asdict(spec).items() if k != "profile"},
        "contacts_per_commit": spec.batch if spec.mode == "submit_many" else 1,
        "contacts": done,
        "seconds": round(wall, 3),
        "contacts_per_s": round(done / wall, 1) if wall > 0 else None,
        "call_p50_ms": round(_pct(lat, 50) * 1000, 2),
        "call_p99_ms": round(_pct(lat, 99) * 1000, 2),
        "calls": len(lat),
        "peak_rss_mib": round(max(r["peak_rss_kib"] for r in reports) / 1024, 1),
        "outcomes": outcomes,
        "messages_stored": stored,
        "messages_submitted": submitted,
        "intact": stored == submitted and outcomes.get("duplicate", 0) == 0,
        "truncated": any(r["truncated"] for r in reports),
    }


def _pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _count_messages(url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from ticketing.models import Message

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Message.__table__).where(Message.external_id.like("%bench-%")))
    finally:
        engine.dispose()


# -- the matrix --------------------------------------------------------------------------------------------------------
class Backends:
    """Hands out a fresh database per run and cleans up what it started."""

    def __init__(self) -> None:
        self.cluster: _pg.PostgresCluster | None = None
        self.pg_base: str | None = None
        self.pg_version: str | None = None
        self.pg_source: str | None = None

    def postgres(self) -> str:
        if self.pg_base is None:
            if os.environ.get(ENV_POSTGRES):
                self.pg_base, self.pg_source = _pg.base_of(os.environ[ENV_POSTGRES]), f"${ENV_POSTGRES}"
            else:
                self.cluster = _pg.PostgresCluster(fsync=True)
                self.pg_base, self.pg_source = self.cluster.base, "throwaway cluster on loopback, fsync=on"
        return self.pg_base

    def fresh(self, backend: str, scratch: Path) -> tuple[str, Path, callable]:
        data_dir = Path(tempfile.mkdtemp(prefix=f"{backend}-", dir=scratch))
        if backend == "sqlite":
            return f"sqlite:///{data_dir / 'helpdesk.sqlite3'}", data_dir, lambda: shutil.rmtree(data_dir, ignore_errors=True)
        url = _pg.create_database(self.postgres())
        if self.pg_version is None:
            self.pg_version = _server_version(url)

        def cleanup() -> None:
            _pg.drop_database(url)
            shutil.rmtree(data_dir, ignore_errors=True)

        return url, data_dir, cleanup

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


def _server_version(url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar()
    finally:
        engine.dispose()


def machine() -> dict:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def print_table(report: dict, file=sys.stdout) -> None:
    m = report["machine_before"]
    print(
        f"helpdesk-gateway intake benchmark — {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}"
        + (f", PostgreSQL {report['postgresql']['version'] or '(unreachable)'} ({report['postgresql']['source']})" if report.get("postgresql") else ""),
        file=file,
    )
    print(
        f"load average (1/5/15 min) before: {' '.join(map(str, m['loadavg']))}   after: "
        f"{' '.join(map(str, report['machine_after']['loadavg']))}   (the machine may be shared: read figures with it)",
        file=file,
    )
    head = f"{'backend':<11}{'procs':>5}  {'mode':<16}{'contacts':>9}{'seconds':>9}{'contacts/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}  check"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['backend']:<11}{r['procs']:>5}  {r['mode']:<16}  error: {r['error']}", file=file)
            continue
        mode = "submit" if r["mode"] == "submit" else f"submit_many×{r['batch']}"
        check = ("ok" if r["intact"] else f"MISMATCH stored {r['messages_stored']} of {r['messages_submitted']}") + (
            " truncated" if r["truncated"] else ""
        )
        print(
            f"{r['backend']:<11}{r['procs']:>5}  {mode:<16}{r['contacts']:>9}{r['seconds']:>9.2f}{r['contacts_per_s']:>12.1f}"
            f"{r['call_p50_ms']:>9.2f}{r['call_p99_ms']:>9.2f}{r['peak_rss_mib']:>9.1f}  {check}",
            file=file,
        )
    for line in target_lines(report["runs"]):
        print(line, file=file)
    for name, why in report.get("skipped", {}).items():
        print(f"{name}: skipped — {why}", file=file)
    print("p50/p99: one call — submit() of 1 contact, or submit_many() of a whole batch; RSS: peak of a worker process", file=file)


def target_lines(runs: list[dict]) -> list[str]:
    lines = []
    for r in runs:
        if r["backend"] == "sqlite" and r["procs"] == 1 and "error" not in r:
            met = "met" if r["contacts_per_s"] >= TARGET else "MISSED"
            lines.append(f"target ≥ {TARGET:.0f} contacts/s, SQLite, 1 process, {r['mode']}: {r['contacts_per_s']:.0f} — {met}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="measured contacts per run, split between the processes (default 2000)")
    ap.add_argument("--only", choices=["sqlite", "postgresql"], help="one backend only")
    ap.add_argument("--procs", default="1,4", help="worker process counts, comma-separated (default 1,4)")
    ap.add_argument("--modes", default="submit,submit_many", help="submit, submit_many or both (default both)")
    ap.add_argument("--batch", type=int, default=32, help="contacts per submit_many commit (default 32)")
    ap.add_argument("--warmup", type=int, default=64, help="contacts per process before the clock starts (default 64)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="time limit of one run's measured part (default 60)")
    ap.add_argument("--profile", metavar="PATH", help="write a cProfile dump of each worker's measured part to PATH.<backend>-<procs>-<mode>.<worker>")
    ap.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    args = ap.parse_args(argv)

    try:
        procs = sorted({int(p) for p in args.procs.split(",") if p.strip()})
    except ValueError:
        ap.error("--procs: expected comma-separated integers, e.g. 1,4")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not procs or any(not 1 <= p <= 32 for p in procs):
        ap.error("--procs: between 1 and 32 processes")
    if not modes or any(m not in MODES for m in modes):
        ap.error(f"--modes: expected {', '.join(MODES)}")
    if not 1 <= args.n <= 1_000_000 or not 1 <= args.batch <= 1000 or not 0 <= args.warmup <= 10_000:
        ap.error("--n 1..1000000, --batch 1..1000, --warmup 0..10000")
    if not 1 <= args.max_seconds <= 3600:
        ap.error("--max-seconds: 1 to 3600")

    backends_wanted = [args.only] if args.only else ["sqlite", "postgresql"]
    report: dict = {"machine_before": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "runs": [], "skipped": {}}
    backends = Backends()
    scratch = Path(tempfile.mkdtemp(prefix="hd-bench-"))
    try:
        for backend in backends_wanted:
            if backend == "postgresql":
                try:
                    backends.postgres()
                except (RuntimeError, ValueError, OSError) as e:
                    if args.only:
                        print(f"postgresql: {e}", file=sys.stderr)
                        return 2
                    report["skipped"]["postgresql"] = str(e)
                    continue
            for p in procs:
                for mode in modes:
                    spec = RunSpec(backend, p, mode, args.n, args.batch, args.warmup, args.max_seconds, args.profile)
                    print(f"… {backend} {p} proc {mode}", file=sys.stderr, flush=True)
                    cleanup = None
                    try:
                        url, data_dir, cleanup = backends.fresh(backend, scratch)
                        report["runs"].append(run(spec, url, data_dir))
                    except Exception as e:  # one failed run is a row that says so, not a lost report
                        report["runs"].append({**asdict(spec), "error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"})
                    finally:
                        if cleanup is not None:
                            cleanup()
        if backends.pg_base:
            report["postgresql"] = {"version": backends.pg_version, "source": backends.pg_source}
    finally:
        backends.close()
        shutil.rmtree(scratch, ignore_errors=True)
    report["machine_after"] = machine()
    report["target"] = target_lines(report["runs"])
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_table(report)
    bad = [r for r in report["runs"] if "error" in r or not r["intact"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
