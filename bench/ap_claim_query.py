"""Latency of the worker's claim query (``claim_due_syncs``) with 1,000,000 sync-state rows.

Seeds 1 M accounting points set-based (generate_series; triggers are bypassed with
``session_replication_role = replica`` and the sync rows written directly), 90 % of them with a
controllable unit, then runs the real ``claim_due_syncs`` query from
``tether.accountingpoints.repository`` repeatedly with limit 100, each claim in its own committed
transaction as the worker does, and reports p50/p95/p99. Two states of the table:

* ``fresh mix``: next_sync_at 2 % -infinity (never synced), 8 % past due (up to 1 h), 90 % in the
  next 23 h, the same for APs with and without a controllable unit;
* ``steady state``: as above, but every AP without a controllable unit (100 k, fetched by a
  lookup and never registered) is overdue by a day or more. Such APs are never claimed (the
  claim wants a unit) so in production they pile up at the head of ``next_sync_at`` order.

``EXPLAIN (ANALYZE, BUFFERS)`` of one claim (rolled back) is printed for each state.

Run: ``uv run python -m bench.ap_claim_query [--rows N] [--claims N] [--server-url URL]``.
Results are written to bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench.common import percentile, postgres, scratch_database, write_section
from tether.accountingpoints.repository import queries

HEADING = "## Accounting point claim query"
LIMIT = 100


def seed(url: str, rows: int) -> float:
    """``rows`` APs, sync rows with varied next_sync_at, a CU on 9 of 10; returns seconds."""
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # no per-row triggers
        conn.execute(
            "INSERT INTO ap.accounting_point (gsrn)"
            " SELECT (700000000000000000 + g)::text FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute(
            "INSERT INTO ap.accounting_point_sync"
            " (accounting_point_id, next_sync_at, last_synced_at)"
            " SELECT a.id, d.next_sync_at,"
            "  CASE WHEN d.next_sync_at > '-infinity' THEN now() - interval '1 day' END"
            " FROM ap.accounting_point a CROSS JOIN LATERAL (SELECT CASE"
            "  WHEN a.id % 50 = 7 THEN '-infinity'::timestamptz"
            "  WHEN a.id % 50 < 5 THEN now() - random() * interval '1 hour'"
            "  ELSE now() + interval '1 minute' + random() * interval '23 hours'"
            " END AS next_sync_at) d"
        )
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id, start_date)"
            " SELECT 'cu ' || a.id, a.id, CASE WHEN a.id % 3 = 0 THEN date '2024-01-01' END"
            " FROM ap.accounting_point a WHERE a.id % 10 <> 3"
        )
        # what ap.track_controllable_unit would have done row by row (migration 0003)
        flag = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'ap'"
            " AND table_name = 'accounting_point_sync' AND column_name = 'has_controllable_unit'"
        ).fetchone()
        if flag:
            conn.execute(
                "UPDATE ap.accounting_point_sync s SET has_controllable_unit = true"
                " WHERE EXISTS (SELECT 1 FROM ap.controllable_unit cu"
                "               WHERE cu.accounting_point_id = s.accounting_point_id)"
            )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - start


def make_steady_state(url: str) -> int:
    """APs without a CU: overdue by a day or more (never claimed, so never moved on)."""
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "UPDATE ap.accounting_point_sync s"
            " SET next_sync_at = now() - interval '1 day' - random() * interval '30 days'"
            " WHERE NOT EXISTS (SELECT 1 FROM ap.controllable_unit cu"
            "                   WHERE cu.accounting_point_id = s.accounting_point_id)"
        )
        count = cur.rowcount
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE ap.accounting_point_sync")
    return count


def _params(worker: str) -> dict[str, Any]:
    return {"limit": LIMIT, "dead_timeout": timedelta(minutes=10), "worker": worker}


def explain(url: str) -> str:
    query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + sql.SQL(queries["claim_due_syncs"])
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        plan = conn.execute(query, _params("bench-explain")).fetchall()
        conn.rollback()
    return "\n".join(r[0] for r in plan)


def measure(url: str, claims: int) -> tuple[list[float], int]:
    """``claims`` claims, each in its own committed transaction; latencies in ms, rows got."""
    samples: list[float] = []
    got = 0
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        for i in range(claims):
            start = time.perf_counter()
            with conn.transaction():
                rows = conn.execute(queries["claim_due_syncs"], _params(f"bench:{i}")).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
            got += len(rows)
    return samples, got


def _row(case: str, samples: list[float], got: int) -> str:
    return (
        f"| {case} | {len(samples)} | {got} | {statistics.median(samples):.2f} "
        f"| {percentile(samples, 0.95):.2f} | {percentile(samples, 0.99):.2f} "
        f"| {max(samples):.2f} |"
    )


def bench(server_url: str, rows: int, claims: int) -> tuple[list[str], list[str], str]:
    with psycopg.connect(server_url) as conn:
        version = str(conn.info.server_version)
    table: list[str] = []
    plans: list[str] = []
    with scratch_database(server_url, "bench_claim", migrate=True) as url:
        took = seed(url, rows)
        print(f"seeded {rows} rows in {took:.1f} s", flush=True)
        for case in ("fresh mix", "steady state"):
            if case == "steady state":
                moved = make_steady_state(url)
                case = f"steady state ({moved} CU-less APs overdue)"
            plan = explain(url)
            samples, got = measure(url, claims)
            table.append(_row(case, samples, got))
            plans.append(f"{case}:\n\n```\n{plan}\n```")
            print(table[-1], flush=True)
            print(plan, flush=True)
    return table, plans, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--server-url", default=None, help="a PostgreSQL server (else embedded)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    opts = parser.parse_args()
    with postgres(opts.server_url) as server_url:
        table, plans, version = bench(server_url, opts.rows, opts.claims)
    if opts.server_url:
        server_desc = f"PostgreSQL {version[:2]} server (`--server-url`)"
    else:
        server_desc = f"embedded PostgreSQL {version[:2]} (pgserver)"
    command = ("uv run python -m bench.ap_claim_query " + " ".join(sys.argv[1:])).strip()
    section = "\n".join(
        [
            HEADING,
            "",
            f"{date.today().isoformat()}, {os.cpu_count()} cores,"
            f" {platform.python_implementation()}"
            f" {platform.python_version()}, {server_desc}, {opts.rows:,} rows in"
            f" `ap.accounting_point_sync`, claims of {LIMIT}, each committed (`{command}`).",
            "",
            "| table state | claims | rows claimed | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *table,
            "",
            "One claim, `EXPLAIN (ANALYZE, BUFFERS)`:",
            "",
            *plans,
            "",
        ]
    )
    print(section)
    if not opts.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
