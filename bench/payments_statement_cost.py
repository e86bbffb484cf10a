"""PostgreSQL's time per batch of the payments hot statements, from pg_stat_statements.

Needs a server with ``pg_stat_statements`` loaded and ``pg_stat_statements.track_planning=on``
(``track=all`` also shows the statements inside pay.intake_batch). A template database is
seeded once through the real code: ``--cases`` first messages (intake batches of 40), their
receipts booked (00), so every case has confirmed state; ANALYZEd unless ``--no-analyze``.
Then for each batch size, on a copy of the template, ``--messages`` change messages on cases
of their own go through ``intake.store`` (intake_one / intake_batch, store_intake) and their
receipts through ``PaymentsService.apply_receipts`` (lock_orders, lock_cases, book_receipts),
batches of that size, on one backend, after a warm-up (``--warm`` batches, not counted). Printed
per statement: calls, planning and execution ms per call, and per batch; and the backend's CPU
per batch (parsing, commits and all; read from /proc, so the server must run on this machine).
With the server under ``valgrind --tool=callgrind``, the backend's pid is printed: two runs of
different ``--messages`` give its instructions per batch (the difference of their totals).

Run: ``python -m bench.payments_statement_cost postgresql://postgres@127.0.0.1:PORT/postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import scratch_database
from bench.payments_throughput import make_message as message  # the benchmark's message
from tether.capabilities import migration_components
from tether.core import db, migrations
from tether.payments import codec, intake, repository
from tether.payments.client import OppdragClient
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings
from tether.payments.statuses import STATUS_BATCH

WATCHED = {  # what a statement's text begins with (the first match names it)
    "intake_one": "SELECT ord, logged, seen_hash, active_uids, has_order_before, inflight_order,"
    " confirmed\nFROM pay.intake_one",
    "intake_batch": "SELECT ord, logged, seen_hash, active_uids, has_order_before, "
    "inflight_order, confirmed\nFROM pay.intake_batch",
    "store_intake": "SELECT pay.store_intake(",
    "lock_orders": "SELECT id, fagsystem, sak_id, original_key, uids, state",
    "lock_cases": "SELECT fagsystem, sak_id, active_uids, has_order_before, inflight_order\nFROM",
    "book_receipts": "SELECT fagsystem, sak_id\nFROM pay.book_receipts",
    # before migration 0014, and inside the functions (pg_stat_statements.track = all)
    "batch: lock cases": "WITH locked AS (",
    "batch: log": "WITH logged AS (",
    "batch: rows": "WITH m AS (",
    "one: lock case": "INSERT INTO pay.sak AS q (fagsystem, sak_id) VALUES",
    "one: log": "INSERT INTO pay.inbound (original_key, content_hash, fagsystem, sak_id, body, "
    "dryrun, state)\n    VALUES",
    "one: confirmed": "SELECT coalesce(jsonb_object_agg(u.uid, u.data)",
    "store_intake ": "WITH o AS (",
    "lock_orders ": "SELECT o.id, o.fagsystem, o.sak_id, o.original_key, o.uids, o.state",
    "lock_cases ": "SELECT s.fagsystem, s.sak_id, s.active_uids",
    "book_receipts ": "WITH r AS (",
    # the sender's and the status publisher's (queries.sql, or their functions' calls)
    "claim_due_orders": "SELECT id, original_key, xml, message_id, send_attempts",
    "claim_due_orders (sql)": "UPDATE pay.oppdrag o SET claimed_until",
    "mark_orders_sent": "SELECT pay.mark_orders_sent(",
    "mark_orders_sent (sql)": "WITH locked AS MATERIALIZED (",
    "claim_status_window": "SELECT done, upto, txid, id, original_key, body",
    "claim_status_window (sql)": "WITH c AS (",
    "move_status_cursor": "UPDATE pay.status_cursor",
}
INTAKE = ("intake_one", "intake_batch", "store_intake")
RECEIPT = ("lock_orders", "lock_cases", "book_receipts")
SENDER = (
    "claim_due_orders",
    "claim_due_orders (sql)",
    "mark_orders_sent",
    "mark_orders_sent (sql)",
)
STATUSES = ("claim_status_window", "claim_status_window (sql)", "move_status_cursor")
Stats = dict[tuple[str, bool], tuple[int, float, float]]  # (name, top level): calls, plan, exec


async def _round(service: PaymentsService, batch: Sequence[tuple[str, bytes]], size: int) -> None:
    """A batch's intake, its orders claimed and marked sent as the sender does, then their
    receipts (00) in batches of ``size``, and the statuses' pages claimed as the publisher does
    (nothing published)."""
    items = [intake.prepare(k, raw) for k, raw in batch]
    outcomes = await intake.store(service.pool, items)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    async with db.autocommit(service.pool) as conn:
        claimed = await repository.claim_due_orders(conn, limit=len(batch), dead_s=30.0)
    async with db.autocommit(service.pool) as conn:  # as tasks._send_batch books a round
        await repository.book_sends(conn, sent=[o.id for o in claimed])
    async with service.pool.connection() as conn:
        cur = await conn.execute(  # each case's order in flight, by key (no scan to weigh)
            "SELECT o.xml FROM pay.sak s JOIN pay.oppdrag o ON o.id = s.inflight_order"
            " WHERE s.sak_id = ANY(%s) AND s.fagsystem = 'DAGPENGER' ORDER BY o.id",
            ([json.loads(raw)["sakId"] for _, raw in batch],),
        )
        xmls = [build_receipt_xml(r["xml"], "00") for r in await cur.fetchall()]
    for n in range(0, len(xmls), size):
        part = xmls[n : n + size]
        booked = await service.apply_receipts([(codec.read_receipt(x), x) for x in part])
        assert booked == ["ok"] * len(part), booked
    while True:  # the statuses' pages, as statuses.publish_statuses claims and moves them
        async with db.autocommit(service.pool) as conn:
            page = await repository.claim_status_window(conn, limit=STATUS_BATCH, begin=True)
            await repository.move_status_cursor(conn, page, commit=True)
        if page is None or len(page.rows) < STATUS_BATCH:
            break


def _cpu_ticks(pid: int) -> int:
    """User and system CPU of a process, in clock ticks (the server must be on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def _drive(
    url: str, messages: list[tuple[str, bytes]], size: int, warm: int = 0, reset: bool = False
) -> float | None:
    """The messages and their receipts in batches of ``size`` on one backend (as a busy
    worker's); after the first ``warm`` batches, pg_stat_statements is reset (``reset``).
    Returns the backend's CPU ms since then (None: not readable here)."""
    pool = db.make_pool(url, min_size=1, max_size=1)
    await pool.open(wait=True)
    settings = PaymentsSettings(oppdrag_url="http://127.0.0.1:9")
    before = None
    try:
        async with OppdragClient.from_settings(settings) as client:
            service = PaymentsService(pool=pool, settings=settings, client=client)
            for n in range(0, len(messages), size):
                if n == warm * size:
                    async with pool.connection() as conn:
                        cur = await conn.execute("SELECT pg_backend_pid() AS pid")
                        pid = (await cur.fetchall())[0]["pid"]
                        if reset:
                            await conn.execute("SELECT pg_stat_statements_reset()")
                    print(f"backend {pid}")  # under callgrind: its file callgrind.out.<pid>
                    with contextlib.suppress(OSError):
                        before = _cpu_ticks(pid)
                await _round(service, messages[n : n + size], size)
            used = None if before is None else _cpu_ticks(pid) - before
    finally:
        await pool.close()
    return None if used is None else used * 1000 / os.sysconf("SC_CLK_TCK")


def _statements(url: str) -> bool:
    """pg_stat_statements in ``url``'s database, where the server loaded it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        if row is None or "pg_stat_statements" not in row[0]:
            return False
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


def seed(url: str, cases: int, analyze: bool) -> None:
    first = [(f"seed-{i}", message(f"s{i}", 500)) for i in range(cases)]
    asyncio.run(_drive(url, first, 40))
    if analyze:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def stats(url: str) -> Stats:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query, toplevel, calls, total_plan_time, total_exec_time"
            " FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    out: Stats = {}
    for query, toplevel, calls, plan, exe in rows:
        for name, start in WATCHED.items():
            if query.lstrip().startswith(start):
                key = (name.strip(), toplevel)
                c, p, e = out.get(key, (0, 0.0, 0.0))
                out[key] = (c + calls, p + plan, e + exe)
                break
    return out


def measure(url: str, size: int, messages: int, warm: int, offset: int) -> None:
    """``messages`` change messages (cases from ``offset`` on) in batches of ``size``: the
    first ``warm`` batches uncounted, then the statements' figures."""
    change = [(f"m{size}-{i}", message(f"s{offset + i}", 600)) for i in range(messages)]
    started = time.perf_counter()
    statements = _statements(url)
    cpu = asyncio.run(_drive(url, change, size, warm, statements))
    wall = time.perf_counter() - started
    batches = (messages - warm * size) / size
    print(f"\nbatch {size}: {batches:.0f} batches, {wall:.1f} s wall")
    if cpu is not None:
        print(f"per batch, backend CPU (parsing and all): {cpu / batches:.2f} ms")
    if not statements:
        return
    got = stats(url)
    print(f"{'statement':24} {'calls':>6} {'plan ms/call':>12} {'exec ms/call':>12}")
    for (name, toplevel), (c, p, e) in sorted(got.items(), key=lambda kv: not kv[0][1]):
        label = name if toplevel else f"  (nested) {name}"
        print(f"{label:24} {c:6d} {p / c:12.3f} {e / c:12.3f}")
    total = 0.0
    groups = (("intake", INTAKE), ("receipts", RECEIPT), ("sender", SENDER), ("statuses", STATUSES))
    for label, names in groups:
        plan = sum(got[(n, True)][1] for n in names if (n, True) in got) / batches
        exe = sum(got[(n, True)][2] for n in names if (n, True) in got) / batches
        total += plan + exe
        print(f"per batch, {label:8}: plan {plan:.3f} + exec {exe:.3f} = {plan + exe:.3f} ms")
    print(f"per batch, all     : {total:.3f} ms (planning and execution)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server_url")
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=880, help="per batch size")
    parser.add_argument("--sizes", default="1,11,40")
    parser.add_argument("--warm", type=int, default=3, help="batches per size not counted")
    parser.add_argument("--no-analyze", action="store_true")
    parser.add_argument("--cache-plans", action="store_true", help="repository.CACHE_PLANS on")
    parser.add_argument("--plan-cache-mode", help="the measured database's plan_cache_mode")
    parser.add_argument(
        "--template", help="a database seeded by an earlier run, kept (seeded now if missing)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    assert args.messages * len(sizes) <= args.cases, "each size changes cases of its own"
    if args.template:
        template = db.with_dbname(args.server_url, args.template)
        with psycopg.connect(args.server_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (args.template,)
            ).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{args.template}"')
        if not found:
            migrations.upgrade(template, migration_components())
            seed(template, args.cases, not args.no_analyze)
        _run(args, template, sizes)
        return
    with scratch_database(args.server_url, "bench_stmt", migrate=True) as template:
        started = time.perf_counter()
        seed(template, args.cases, not args.no_analyze)
        print(f"seeded {args.cases} cases in {time.perf_counter() - started:.0f} s")
        _run(args, template, sizes)


def _run(args: argparse.Namespace, template: str, sizes: list[int]) -> None:
    repository.CACHE_PLANS = args.cache_plans or repository.CACHE_PLANS
    for n, size in enumerate(sizes):
        with scratch_database(args.server_url, "bench_stmt_run", template_url=template) as url:
            migrations.upgrade(url, migration_components())  # a template seeded before some
            if args.plan_cache_mode:
                with psycopg.connect(url, autocommit=True) as conn:
                    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} SET plan_cache_mode = {}").format(
                            sql.Identifier(str(name)), sql.Literal(args.plan_cache_mode)
                        )
                    )
            measure(url, size, args.messages, args.warm, n * args.messages)


if __name__ == "__main__":
    main()
