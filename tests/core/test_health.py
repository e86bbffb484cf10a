"""``/healthz`` is open to anyone, so a crowd of calls shares one database check: each call used
to open its own connection, and a flood of them used up the server's connection slots (``FATAL:
sorry, too many clients already``) while real requests waited."""

from __future__ import annotations

import asyncio
import threading

import httpx
import psycopg

from tests.conftest import StartApi
from tether.core.health import PROBE_APP_NAME as HEALTH_APP_NAME
from tether.core.settings import Settings


def test_a_crowd_of_health_checks_opens_one_connection_at_a_time(
    start_api: StartApi, settings: Settings, db_url: str
) -> None:
    api = start_api(settings)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    # this test's database only: another test process's API (the fuzzers
                    # call /healthz) may hold a health session on the same server meanwhile
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s AND datname = current_database()",
                    (HEALTH_APP_NAME,),
                ).fetchone()
                seen.append(row[0] if row else 0)

    async def crowd() -> list[int]:
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as anonymous:
            answers = await asyncio.gather(*(anonymous.get("/healthz") for _ in range(300)))
        return [a.status_code for a in answers]

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        codes = asyncio.run(crowd())
    finally:
        done.set()
        watcher.join()
    assert codes == [200] * 300
    assert len(seen) > 3 and max(seen) <= 1, max(seen)
