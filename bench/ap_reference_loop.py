"""The reference loop: the least a correct pull sync must do, to compare tether's sync against.

Each of W processes repeats: claim up to 100 due sync rows with ``FOR UPDATE SKIP LOCKED`` (the
claim committed), fetch them concurrently from the simulator over keep-alive HTTP, store each
answer as one JSONB row and mark the rows synced, in one transaction; until nothing is due. No
validation, no merge, no history. Run by ``bench.ap_sync_throughput --reference``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing

import httpx
import psycopg
from psycopg.types.json import Jsonb

CLAIM = """
WITH due AS (
    SELECT s.accounting_point_id FROM ap.accounting_point_sync s
    WHERE s.next_sync_at <= now() ORDER BY s.next_sync_at LIMIT 100
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE ap.accounting_point_sync s SET next_sync_at = now() + interval '10 minutes'
FROM due, ap.accounting_point a
WHERE s.accounting_point_id = due.accounting_point_id AND a.id = s.accounting_point_id
RETURNING s.accounting_point_id, a.gsrn
"""
STORE = """
INSERT INTO bench_reference_answer (accounting_point_id, body)
SELECT * FROM unnest(%s::bigint[], %s::jsonb[])
ON CONFLICT (accounting_point_id) DO UPDATE SET body = EXCLUDED.body
"""
MARK = """
UPDATE ap.accounting_point_sync SET last_synced_at = now(), next_sync_at = now() + interval '23h'
WHERE accounting_point_id = ANY(%s)
"""


async def _loop(url: str, adapter: str, token: str) -> None:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers = {"Authorization": f"Bearer {token}"}
    params = {"valid_from": "2000-01-01T00:00:00+01:00"}
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
        httpx.AsyncClient(base_url=adapter, headers=headers, limits=limits) as http,
    ):
        while True:
            rows = await (await conn.execute(CLAIM)).fetchall()
            if not rows:
                return

            async def fetch(gsrn: str) -> object:
                response = await http.get(f"/accounting_point/{gsrn}", params=params)
                response.raise_for_status()
                return response.json()

            bodies = await asyncio.gather(*(fetch(g) for _, g in rows))
            ids = [r[0] for r in rows]
            async with conn.transaction():
                await conn.execute(STORE, (ids, [Jsonb(b) for b in bodies]))
                await conn.execute(MARK, (ids,))


def _process(url: str, adapter: str, token: str) -> None:
    asyncio.run(_loop(url, adapter, token))


def prepare(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_reference_answer"
            " (accounting_point_id bigint PRIMARY KEY, body jsonb NOT NULL)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run it through `python -m bench.ap_sync_throughput --modes 100/batch,100/reference`"
        ", which prepares the database and starts the simulator.",
    )
    parser.add_argument("url", help="database URL, seeded and prepared")
    parser.add_argument("adapter", help="the simulator's data URL")
    parser.add_argument("token", help="the simulator's bearer token")
    parser.add_argument("workers", type=int, help="processes to start")
    args = parser.parse_args()
    url, adapter, token = args.url, args.adapter, args.token
    spawn = multiprocessing.get_context("spawn")  # like tether's worker processes
    procs = [
        spawn.Process(target=_process, args=(url, adapter, token)) for _ in range(args.workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
