"""What every pooled session is set to, whatever the server's defaults."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool


async def test_pooled_sessions_run_in_utc_without_jit(pool: AsyncConnectionPool[Any]) -> None:
    # JIT off: the server compiles a statement whose estimated cost passes jit_above_cost, and a
    # receipt batch over a table that grew faster than its statistics did so at 50-90 ms a call
    async with pool.connection() as conn:
        for setting, expected in (("jit", "off"), ("TimeZone", "UTC")):
            row = await (await conn.execute(f"SELECT current_setting('{setting}') AS v")).fetchone()
            assert row is not None
            assert row["v"] == expected
