"""Cost of the accounting point console panel (and so of each ``/metrics`` scrape) at scale.

Seeds ``--rows`` accounting points set-based (triggers bypassed, sync rows written directly):
9 of 10 with a controllable unit, 2 % never synced, 8 % due, 1 % failing over three reasons;
then runs the panel's one statement (``sync_overview`` of ``accountingpoints/console.sql``)
``--runs`` times and reports p50/p95, with ``EXPLAIN (ANALYZE, BUFFERS)`` of one run. The console
refreshes every 5 s per open page and Prometheus scrapes every 15-60 s, so this is the database
time an operator's screen and the alerting cost.

Run: ``uv run python -m bench.console_panel_cost [--rows N] [--runs N] [--server-url URL]``.
Results are written to bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

import psycopg

from bench.common import percentile, postgres, scratch_database, write_section
from tether.accountingpoints.console import EXAMPLES, queries

HEADING = "## Console panel (and /metrics scrape) cost"


def seed(url: str, rows: int) -> float:
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # no per-row triggers
        conn.execute(
            "INSERT INTO ap.accounting_point (gsrn)"
            " SELECT (700000000000000000 + g)::text FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute(
            "INSERT INTO ap.accounting_point_sync (accounting_point_id, next_sync_at,"
            " last_synced_at, has_controllable_unit, last_error, last_error_reason, last_error_at)"
            " SELECT a.id, CASE WHEN a.id % 50 = 7 THEN '-infinity'::timestamptz"
            "   WHEN a.id % 50 < 5 THEN now() - random() * interval '1 hour'"
            "   ELSE now() + random() * interval '23 hours' END,"
            "  CASE WHEN a.id % 50 = 7 THEN NULL ELSE now() - random() * interval '1 day' END,"
            "  a.id % 10 <> 0,"
            "  CASE WHEN a.id % 100 = 3 THEN 'failed' END,"
            "  CASE WHEN a.id % 100 = 3 THEN (ARRAY['upstream_unavailable','unknown_supplier',"
            "   'invalid_accounting_point_data'])[1 + a.id % 3] END,"
            "  CASE WHEN a.id % 100 = 3 THEN now() - random() * interval '1 hour' END"
            " FROM ap.accounting_point a"
        )
        conn.execute("ANALYZE ap.accounting_point_sync")
        conn.execute("ANALYZE ap.accounting_point")
    return time.perf_counter() - start


def measure(url: str, runs: int) -> tuple[list[float], str]:
    query = queries["sync_overview"]
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(runs):
            start = time.perf_counter()
            conn.execute(query, {"examples": EXAMPLES}).fetchone()
            samples.append((time.perf_counter() - start) * 1000)
        plan = conn.execute(
            psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + psycopg.sql.SQL(query),
            {"examples": EXAMPLES},
        ).fetchall()
    return samples, "\n".join(row[0] for row in plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="accounting points to seed")
    parser.add_argument("--runs", type=int, default=20, help="panel statements to time")
    parser.add_argument("--server-url", help="a PostgreSQL server (default: embedded)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    with (
        postgres(args.server_url) as server,
        scratch_database(server, "tether_bench_console", migrate=True) as url,
    ):
        seeded = seed(url, args.rows)
        samples, plan = measure(url, args.runs)
    p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
    print(plan)
    summary = (
        f"{HEADING}\n\n"
        f"{date.today()} · {platform.machine()}, {os.cpu_count()} cores shared with other work · "
        f"{args.rows:,} accounting points ({args.rows * 9 // 10:,} kept in sync), seeded in "
        f"{seeded:.1f} s\n\n"
        f"| statement | runs | p50 ms | p95 ms |\n|---|---|---|---|\n"
        f"| `sync_overview` (AP panel) | {args.runs} | "
        f"{p50:.1f} | {p95:.1f} |\n\n"
        "An aggregate pass over `ap.accounting_point_sync` (every row is counted, so no index "
        "helps) and a filtered pass for the failing rows, the only ones joined to their AP. "
        "A process reads the panels at most every 2 s (`core/console.PanelCache`), however "
        "many console pages (refreshing every 5 s) and scrapes ask.\n"
    )
    print(summary)
    if not args.no_write:
        write_section(HEADING, summary)


if __name__ == "__main__":
    main()
