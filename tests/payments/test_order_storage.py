"""An order's XML is stored out of line and uncompressed (migration 0007): an order row is
updated three times, and each update then copies a pointer instead of the compressed XML."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.payments.service import PaymentsService

from .conftest import june, message


async def test_a_large_order_xml_is_stored_out_of_line_uncompressed(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    # a new amount every week: one line per week and meldeperiode, an XML of several KB
    days = [d for w, first in enumerate((3, 10, 17, 24)) for d in june(first, first + 4, 100 + w)]
    days += [{**d, "meldeperiode": "m2"} for d in june(3, 28, 300)]
    await service.submit("k1", message(days))
    (order,) = await service.orders("sak1")
    assert len(order.xml) > 2_500  # past the row size at which PostgreSQL compresses or moves
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT pg_column_size(xml) AS stored, octet_length(xml) AS raw,"
            " (SELECT count(*) FROM pg_class t JOIN pg_class o ON o.reltoastrelid = t.oid"
            "  WHERE o.oid = 'pay.oppdrag'::regclass) AS toast_tables"
            " FROM pay.oppdrag WHERE id = %s",
            (order.id,),
        )
        row = await cur.fetchone()
    assert row is not None and row["toast_tables"] == 1
    assert row["stored"] == row["raw"]  # not compressed (inline, it was about 45 % of it)
