"""``tether_payments_statuses_total`` counts what ``pay.status`` holds: one increment per status
row, counted once its transaction committed, every kind (HOS_OPPDRAG too), whatever path stored
it (intake, its one-by-one fallback, dry runs, the sender, receipts and their drain)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from typing import Any

import pytest
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from tether.core.events import ensure_stream
from tether.payments import codec, tasks
from tether.payments.intake import KINDS
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService

from .conftest import day, june, message, order_publisher

POISON = ("poison", "poison-dry")  # keys whose transaction fails at COMMIT


def _counted() -> dict[str, float]:
    return {
        kind: REGISTRY.get_sample_value("tether_payments_statuses_total", {"status": kind}) or 0.0
        for kind in KINDS
    }


async def _stored(pool: AsyncConnectionPool[Any]) -> dict[str, float]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) AS n FROM pay.status GROUP BY status")
        rows = {r["status"]: float(r["n"]) for r in await cur.fetchall()}
    return {kind: rows.get(kind, 0.0) for kind in KINDS}


def _receipt(xml: str, code: str) -> tuple[codec.Receipt, str]:
    raw = build_receipt_xml(xml, code)
    return codec.read_receipt(raw), raw


async def test_the_counter_adds_one_per_committed_status_row_of_each_kind(
    service: PaymentsService, pool: AsyncConnectionPool[Any], js: Any
) -> None:
    """A status counted before its commit failed (a dry run's) was counted with no row, and the
    sender's HOS_OPPDRAG was stored and never counted."""
    async with pool.connection() as conn:  # the database refuses these keys' commits
        await conn.execute(
            "CREATE FUNCTION pay.refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'refused at commit'; END $$;"
            " CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON pay.status"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" WHEN (NEW.original_key IN {POISON!r}) EXECUTE FUNCTION pay.refuse()"
        )
    before = _counted()

    await service.submit("k1", message(june(3, 7)))  # MOTTATT
    await service.submit("k1b", message(june(3, 14), behandling="b2"))  # waits behind k1
    await service.submit("bad", b"{not json")  # FEILET 400, unreadable
    invalid = [day(date(2024, 6, 3), 100), day(date(2024, 6, 3), 200)]
    await service.submit("invalid", message(invalid, sak="sakV"))  # FEILET 400, a rule
    await service.submit("d1", message(june(3, 7), sak="sakD", dryrun=True))  # FEILET 503
    await service.submit("d2", message(june(3, 14), dryrun=True))  # FEILET 409: k1 in flight
    with pytest.raises(Exception, match="refused at commit"):
        await service.submit("poison-dry", message(june(3, 7), sak="sakP", dryrun=True))
    with pytest.raises(Exception, match="refused at commit"):  # the batch, then poison alone
        await service.submit_many(
            [
                ("g1", message(june(3, 7), sak="sakG")),
                ("g2", b"[]"),
                ("poison", message(june(3, 7), sak="sakQ")),
            ]
        )

    s = service.settings
    await ensure_stream(js, s.orders_stream, s.orders_subject)
    (k1,) = await service.orders("sak1")
    assert (
        await tasks._send_batch(service, order_publisher(js, service), [k1]) == 1
    )  # HOS_OPPDRAG by the sender
    (g1,) = await service.orders("sakG")  # unsent: its 08 stores HOS_OPPDRAG first
    booked = await service.apply_receipts([_receipt(k1.xml, "00"), _receipt(g1.xml, "08")])
    assert booked == ["ok", "feilet"]  # k1b drained: its MOTTATT

    stored = await _stored(pool)
    assert stored == {"MOTTATT": 3, "HOS_OPPDRAG": 2, "OK": 1, "FEILET": 6}
    after = _counted()
    assert {kind: after[kind] - before[kind] for kind in KINDS} == stored


def test_every_kind_is_exported_before_any_is_stored() -> None:
    """A fresh process shows HOS_OPPDRAG (and the others) at 0: a series that appears only with
    its first increment loses that increment to ``rate()``, and reads as "never counted"."""
    code = (
        "import tether.payments.intake\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        "print(generate_latest(REGISTRY).decode())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for kind in KINDS:
        assert f'tether_payments_statuses_total{{status="{kind}"}} 0.0' in out, kind
