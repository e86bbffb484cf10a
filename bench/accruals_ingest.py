"""NEM12/NEM13 ingest into PostgreSQL, parse + COPY + merge: values/s end to end.

Generates a month of meter data, then ingests into a scratch database: a first load (inserts),
the same files again (every channel-day compared with its stored version: nothing rewritten),
and copies with a later UpdateDateTime on every day (every channel-day rewritten); the
parse-only time is measured on the same files.
    uv run python -m bench.accruals_ingest --accounts 4000 [--server-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from dataclasses import dataclass
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


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a local process has used; 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ingest(url: str, paths: list[Path]) -> Step:
    """Ingest on one connection, so the server's CPU is that one backend's."""
    pool = db.make_pool(url, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
        pid = int(row["pid"]) if row else 0
        server, client, start = _cpu_of(pid), time.process_time(), time.perf_counter()
        results = await ingest_files(pool, paths)
        seconds = time.perf_counter() - start
        client, server = time.process_time() - client, _cpu_of(pid) - server
    finally:
        await pool.close()
    assert all(r.status == "loaded" for r in results), [r.errors[:3] for r in results]
    return Step(values=sum(r.values for r in results), wall=seconds, client=client, server=server)


@dataclass(frozen=True)
class Step:
    values: int
    wall: float
    client: float  #: CPU seconds of this process (parse, encode, send)
    server: float  #: CPU seconds of the PostgreSQL backend (COPY, merge)

    def row(self, name: str) -> str:
        both = self.client + self.server
        pipelined = self.values / max(self.client, self.server, 1e-9)
        return (
            f"| {name} | {self.values:,} | {self.wall:.1f} | {self.client:.1f} | "
            f"{self.server:.1f} | {self.values / self.wall:,.0f} | {self.values / both:,.0f} | "
            f"{pipelined:,.0f} |"
        )


def _newer_versions(paths: list[Path], folder: Path) -> list[Path]:
    """Copies of the NEM12 files whose every day has a later UpdateDateTime (02:30 -> 03:30)."""
    folder.mkdir()
    out = []
    for path in paths:
        copy = folder / path.name
        copy.write_bytes(path.read_bytes().replace(b"023000,", b"033000,"))
        out.append(copy)
    return out


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
        parse_cpu = time.process_time()
        parsed, parse_s = _parse_only(paths)
        parse = Step(values=parsed, wall=parse_s, client=time.process_time() - parse_cpu, server=0)
        first = asyncio.run(_ingest(url, paths))
        again = asyncio.run(_ingest(url, paths))
        newer = _newer_versions(gen.nem12_files, Path(tmp) / "newer")
        updated = asyncio.run(_ingest(url, newer))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = "\n".join([
        "| step | values | wall s | client CPU s | server CPU s | values/s (wall) "
        "| values per CPU-s (both) | values/s if pipelined on 2 idle cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        parse.row("parse only"),
        first.row("ingest, first load (COPY + insert)"),
        again.row("ingest, same files again (compared, nothing rewritten)"),
        updated.row("ingest, newer versions of every channel-day (rewritten)"),
    ])  # fmt: skip
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
        + table
        + "\n\nThe last column is an estimate, values / max(client CPU, server CPU): the parser "
        "and the server work on different batches at once, so on two otherwise idle cores the "
        "slower side sets the pace. Server CPU is the ingest's own backend only (not the WAL "
        "writer or checkpointer), and commits' fsync waits are not CPU.\n"
        "\nTarget: ingest >= 1,000,000 values/s.\n\n"
        f"Generating these files (accounts, tariffs, invoices, NEM12, NEM13): {gen_s:.1f} s wall, "
        f"{gen_cpu:.1f} CPU s ({gen.values / gen_cpu:,.0f} values per CPU second).\n"
    )
    print(section)
    if not args.no_write:
        write_section(heading, section)


if __name__ == "__main__":
    main()
