"""A whole accruals run on generated data: time per step and peak memory, extrapolated.

Generates N accounts with M months of history (A1's generator), loads and ingests them into a
scratch database (not timed as part of the run), then runs the period end in a child process
(every stage in order, chunks one after another: one core) and reports each step's time from
acc.run_step and the child's peak RSS. PostgreSQL's own memory is not included.
    uv run python -m bench.accruals_run --accounts 20000 --months 13 [--server-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg

from bench.common import postgres, scratch_database, write_section
from tether.accruals import loader, run
from tether.accruals.generator import generate
from tether.accruals.ingest import ingest_files
from tether.accruals.settings import AccrualsSettings
from tether.core import db

PE = date(2026, 11, 30)
TARGET_ACCOUNTS = 250_000


def _run(url: str, settings: AccrualsSettings) -> None:
    run.run_inline(url, PE, run.default_as_at(PE, settings), settings)


async def _ingest(url: str, paths: list[Path]) -> None:
    pool = db.make_pool(url, min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        await ingest_files(pool, paths)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--server-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    args = parser.parse_args()
    settings = AccrualsSettings(chunk_size=args.chunk_size)  # type: ignore[call-arg]
    with (
        tempfile.TemporaryDirectory(prefix="tether-acc-bench-") as tmp,
        postgres(args.server_url) as server,
        scratch_database(server, "bench_accruals", migrate=True) as url,
    ):
        t0 = time.perf_counter()
        made = generate(args.accounts, args.months, Path(tmp), 11, end=PE)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        for kind in loader.KINDS:
            assert loader.load(url, kind, Path(tmp) / f"{kind}.csv").status == "loaded"
        asyncio.run(_ingest(url, [*made.nem12_files, *made.nem13_files]))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        t_load = time.perf_counter() - t0
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
                "SELECT totals FROM acc.run WHERE period_end = %s", (PE,)
            ).fetchone()
    scale = TARGET_ACCOUNTS / args.accounts
    lines = [
        f"## Accruals run ({date.today()})",
        "",
        f"{args.accounts} accounts, {args.months} months of history "
        f"({made.channel_days} channel-days, {made.basic_reads} basic reads), chunks of "
        f"{args.chunk_size}, one process (chunks in turn). Generate {t_gen:.1f} s, load + "
        f"ingest {t_load:.1f} s (not part of the run).",
        "",
        "| step | seconds | x250k/N (linear) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {float(sec):.2f} | {float(sec) * scale:.1f} |" for s, sec in steps]
    lines += [
        f"| **whole run (wall, incl. process start)** | **{wall:.2f}** | **{wall * scale:.1f}** |",
        "",
        f"Peak RSS of the run process: {peak_mb:.0f} MB (bounded by the chunk, not the account"
        " count, except the per-account profile flags: ~72 bytes/account). Totals: "
        f"{totals[0] if totals else {}}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("## Accruals run", text)


if __name__ == "__main__":
    main()
