"""A whole accruals run on generated data: time per step and peak memory, extrapolated.

Generates N accounts with M months of history (A1's generator), loads and ingests them into a
scratch database (not timed as part of the run), then runs the period end in a child process
(every stage in order, chunks one after another: one core), or with ``--workers N`` through the
real path: N ``tether worker --only accruals`` processes share the run's queued chunks. Reports
each step's time from acc.run_step and the peak RSS of the run's processes (PostgreSQL's own
memory not included).
    uv run python -m bench.accruals_run --accounts 20000 --months 13 [--workers 2]
        [--server-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from bench.common import postgres, scratch_database, write_section
from tether.accruals import flow, loader, run
from tether.accruals.generator import generate
from tether.accruals.ingest import ingest_files
from tether.accruals.settings import AccrualsSettings
from tether.core import db

PE = date(2026, 11, 30)
TARGET_ACCOUNTS = 250_000


def _as_at(settings: AccrualsSettings) -> datetime:
    """The default snapshot, or now while that is still ahead (a run never reads as at a time
    that has not passed: the data are generated and ingested before the run)."""
    return min(run.default_as_at(PE, settings), datetime.now(UTC))


def _run(url: str, settings: AccrualsSettings) -> None:
    run.run_inline(url, PE, _as_at(settings), settings)


def _tree_peak_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a process and its descendants, from /proc, in MB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def _wait_for_executors(url: str, n: int) -> None:
    """Until ``n`` executors have written their heartbeat (they are launched), at most 120 s."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM tether.workflow_executor").fetchone()
        if row and row[0] >= n:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{n} workers did not start within 120 s")


def _with_workers(url: str, settings: AccrualsSettings, n: int) -> tuple[float, float]:
    """Submit the run and let ``n`` worker processes do it: (wall seconds, peak MB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        {
            "DATABASE_URL": url,
            "TETHER_ACCRUALS_SCHEDULE": "",
            "TETHER_ACCRUALS_CHUNK_SIZE": str(settings.chunk_size),
            "TETHER_ACCRUALS_GLOBAL_CONCURRENCY": str(n),
            "TETHER_LOG_LEVEL": "WARNING",
        }
    )
    cmd = [sys.executable, "-m", "tether", "worker", "--only", "accruals"]
    procs = [subprocess.Popen(cmd, env=env, start_new_session=True) for _ in range(n)]
    try:
        _wait_for_executors(url, n)  # their start (imports, DBOS launch) is not the run's
        flow.configure(url, settings)
        t0 = time.perf_counter()
        flow.submit(url, settings, PE, _as_at(settings))
        peak = 0.0
        while True:
            peak = max(peak, sum(_tree_peak_mb(p.pid) for p in procs))
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT status FROM acc.run WHERE period_end = %s", (PE,)
                ).fetchone()
            if row and row[0] in ("finished", "failed"):
                return time.perf_counter() - t0, peak
            time.sleep(0.5)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait()


async def _ingest(url: str, paths: list[Path]) -> None:
    pool = db.make_pool(url, min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        await ingest_files(pool, paths)
    finally:
        await pool.close()


class _Loaded:
    """What the run's data are: counts, and (generate, load + ingest) seconds."""

    def __init__(self, channel_days: int, basic_reads: int, seconds: tuple[float, float]):
        self.channel_days, self.basic_reads, self.seconds = channel_days, basic_reads, seconds


def _load(url: str, args: argparse.Namespace, tmp: Path) -> _Loaded:
    """Generate and ingest (or, with --reuse, count what the copied database holds)."""
    if args.reuse:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            days = conn.execute("SELECT count(*) FROM acc.channel_day").fetchone()
            reads = conn.execute("SELECT count(*) FROM acc.basic_read").fetchone()
        return _Loaded(days[0] if days else 0, reads[0] if reads else 0, (0.0, 0.0))
    t0 = time.perf_counter()
    made = generate(args.accounts, args.months, tmp, 11, end=PE)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    for kind in loader.KINDS:
        assert loader.load(url, kind, tmp / f"{kind}.csv").status == "loaded"
    asyncio.run(_ingest(url, [*made.nem12_files, *made.nem13_files]))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return _Loaded(made.channel_days, made.basic_reads, (t_gen, time.perf_counter() - t0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=0, help="0: inline, one process.")
    parser.add_argument("--server-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    parser.add_argument(
        "--keep-as", default=None, help="Also copy the loaded database to this name (reuse it)."
    )
    parser.add_argument(
        "--reuse", default=None, help="Copy this database (from --keep-as) instead of loading."
    )
    args = parser.parse_args()
    settings = AccrualsSettings(chunk_size=args.chunk_size)  # type: ignore[call-arg]
    with (
        tempfile.TemporaryDirectory(prefix="tether-acc-bench-") as tmp,
        postgres(args.server_url) as server,
        scratch_database(
            server,
            "bench_accruals",
            migrate=not args.reuse,
            template_url=db.with_dbname(server, args.reuse) if args.reuse else None,
        ) as url,
    ):
        made = _load(url, args, Path(tmp))
        t_gen, t_load = made.seconds
        if args.keep_as:
            with psycopg.connect(server, autocommit=True) as conn:
                name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
                conn.execute(
                    f'CREATE DATABASE "{args.keep_as}" TEMPLATE "{name}" STRATEGY FILE_COPY'
                )
        if args.workers:
            wall, peak_mb = _with_workers(url, settings, args.workers)
        else:
            t0 = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(target=_run, args=(url, settings))
            child.start()
            child.join()
            wall = time.perf_counter() - t0
            assert child.exitcode == 0, "the run failed"
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with psycopg.connect(url) as conn:
            steps = conn.execute(
                "SELECT step, extract(epoch FROM finished_at - started_at) FROM acc.run_step"
                " WHERE period_end = %s ORDER BY ordinal",
                (PE,),
            ).fetchall()
            totals = conn.execute(
                "SELECT totals, extract(epoch FROM finished_at - started_at) FROM acc.run"
                " WHERE period_end = %s",
                (PE,),
            ).fetchone()
    scale = TARGET_ACCOUNTS / args.accounts
    mode = (
        f"{args.workers} worker processes sharing the queued chunks"
        if args.workers
        else "one process (chunks in turn)"
    )
    lines = [
        f"## Accruals run, {mode.split(' (')[0]} ({date.today()})",
        "",
        f"{args.accounts} accounts, {args.months} months of history "
        f"({made.channel_days} channel-days, {made.basic_reads} basic reads), chunks of "
        f"{args.chunk_size}, {mode}. Load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores at the end. Generate {t_gen:.1f} s, load + "
        f"ingest {t_load:.1f} s (not part of the run).",
        "",
        "| step | seconds | x250k/N (linear) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {float(sec):.2f} | {float(sec) * scale:.1f} |" for s, sec in steps]
    lines += [
        f"| run row, started -> finished | {float(totals[1] if totals else 0):.2f} |"
        f" {float(totals[1] if totals else 0) * scale:.1f} |",
        f"| **whole run (wall, submit -> finished seen)** | **{wall:.2f}** |"
        f" **{wall * scale:.1f}** |",
        "",
        f"Peak RSS of the run's processes: {peak_mb:.0f} MB (bounded by the chunk, not the account"
        " count, except the per-account profile flags: ~72 bytes/account). Totals: "
        f"{totals[0] if totals else {}}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(f"## Accruals run, {mode.split(' (')[0]}", text)


if __name__ == "__main__":
    main()
