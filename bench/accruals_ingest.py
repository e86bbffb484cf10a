"""NEM12/NEM13 ingest into PostgreSQL, parse + COPY + merge: values/s end to end.

Generates a month of meter data, then ingests every file into a scratch database twice: a first
load (inserts) and a re-load of the same files (every channel-day compared with its stored
version, same data: nothing rewritten), with the parse-only time measured on the same files.
    uv run python -m bench.accruals_ingest --accounts 4000 [--server-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import postgres, scratch_database, write_section
from tether.accruals.ingest import ingest_files
from tether.accruals.nem import ChannelDays, NemFile
from tether.core import db, migrations


def _parse_only(paths: list[Path]) -> tuple[int, float]:
    start = time.perf_counter()
    values = 0
    for path in paths:
        values += sum(b.values.size for b in NemFile(path).batches() if isinstance(b, ChannelDays))
    return values, time.perf_counter() - start


async def _ingest(url: str, paths: list[Path]) -> tuple[int, float]:
    pool = db.make_pool(url, min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        start = time.perf_counter()
        results = await ingest_files(pool, paths)
        seconds = time.perf_counter() - start
    finally:
        await pool.close()
    assert all(r.status == "loaded" for r in results), [r.errors[:3] for r in results]
    return sum(r.values for r in results), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=4000)
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--server-url", default=None, help="PostgreSQL server (default: embedded)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    from tether.accruals.generator import generate

    with (
        tempfile.TemporaryDirectory(prefix="nem-ingest-") as tmp,
        postgres(args.server_url) as server,
        scratch_database(server, "bench_accruals") as url,
    ):
        migrations.upgrade(url, ("tether.core", "tether.accruals"))
        load = os.getloadavg()[0]
        gen_start, gen_cpu = time.perf_counter(), time.process_time()
        gen = generate(args.accounts, args.months, Path(tmp), seed=1)
        gen_s, gen_cpu = time.perf_counter() - gen_start, time.process_time() - gen_cpu
        paths = gen.nem12_files + gen.nem13_files
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        parsed, parse_s = _parse_only(paths)
        first, first_s = asyncio.run(_ingest(url, paths))
        again, again_s = asyncio.run(_ingest(url, paths))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("parse only", parsed, parse_s),
        ("ingest, first load (COPY + insert)", first, first_s),
        ("ingest, same files again (compared, nothing rewritten)", again, again_s),
    ]
    table = "\n".join(f"| {n} | {v:,} | {s:.1f} | {v / s:,.0f} |" for n, v, s in rows)
    heading = "## accruals: NEM12/NEM13 ingest into PostgreSQL"
    section = (
        f"{heading} ({date.today().isoformat()})\n\n"
        f"{args.accounts} accounts x {args.months} month(s): {len(paths)} files, "
        f"{size_mb:,.0f} MB, "
        f"{gen.channel_days:,} channel-days + {gen.basic_reads:,} basic reads; one transaction per "
        f"file, batches of 4,096 channel-days COPYed (binary) to a temp table while the next is "
        f"parsed, then one set-based merge keeping the newest UpdateDateTime. 2 cores shared "
        f"by the benchmark process, PostgreSQL and other work (load average {load:.1f} at the "
        f"start; wall times include waiting for a core). Peak RSS of the benchmark process "
        f"{peak_mb:,.0f} MB.\n\n"
        "| step | values | seconds | values/s |\n|---|---:|---:|---:|\n" + table + "\n"
        "\nTarget: ingest >= 1,000,000 values/s.\n\n"
        f"Generating these files (accounts, tariffs, invoices, NEM12, NEM13): {gen_s:.1f} s wall, "
        f"{gen_cpu:.1f} CPU s ({gen.values / gen_cpu:,.0f} values per CPU second).\n"
    )
    print(section)
    if not args.no_write:
        write_section(heading, section)


if __name__ == "__main__":
    main()
