"""The only module that runs the payments queries (named in queries.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from tether.core import db
from tether.core.db import Connection, json_param, json_text
from tether.core.sql import load_queries
from tether.payments.records import (
    CaseRow,
    InboundRow,
    IntakeRow,
    Json,
    OrderHead,
    OrderRow,
    Outgoing,
    StatusPage,
    StatusRow,
    UtbetalingRow,
)

queries = load_queries("tether.payments")
# The other batch statements over the case, order and inbound tables are planned for each call
# (db.fetch_all): those tables fill fast, and a plan cached while they were small scans them
# whole until autovacuum analyzes them.
CACHE_PLANS = False  # psycopg prepare: no, so each call is planned for its own parameters
# The hot batch statements call plpgsql functions whose plans reach every table by key, cached
# (migration 0014): the call itself is prepared too (its plan is a function scan), so it is
# neither parsed nor planned again.
CALLS = True


async def fetch_case(conn: Connection, *, fagsystem: str, sak_id: str) -> CaseRow | None:
    key = {"fagsystem": fagsystem, "sak_id": sak_id}
    row = await db.fetch_optional(conn, queries["fetch_case"], key)
    return None if row is None else CaseRow.from_row(row)


async def fetch_utbetalinger(
    conn: Connection, *, fagsystem: str, sak_id: str
) -> list[UtbetalingRow]:
    key = {"fagsystem": fagsystem, "sak_id": sak_id}
    return [
        UtbetalingRow.from_row(r)
        for r in await db.fetch_all(conn, queries["fetch_utbetalinger"], key)
    ]


async def fetch_inbound(conn: Connection, *, original_key: str) -> InboundRow | None:
    row = await db.fetch_optional(conn, queries["fetch_inbound"], {"original_key": original_key})
    return None if row is None else InboundRow.from_row(row)


async def intake_batch(
    conn: Connection,
    *,
    fagsystem: str,
    keys: Sequence[str],
    hashes: Sequence[str],
    sak_ids: Sequence[str | None],
    bodies: Sequence[bytes],
    begin: bool = False,
) -> list[IntakeRow]:
    """Lock the batch's cases, log its messages and read each case's confirmed state in one
    call; one row per message, in the batch's order. With ``begin``, ``BEGIN`` goes with it in
    one round trip (``conn`` in autocommit: psycopg's own BEGIN would wait for its answer
    first); the transaction stays open for ``store_and_commit``, and on an error the caller
    rolls it back."""
    if len(keys) == 1:  # the usual HTTP batch: a cheaper function, the same row
        query = queries["intake_one"]
        params: dict[str, object] = {
            "key": keys[0],
            "hash": hashes[0],
            "sak": sak_ids[0],
            "body": bodies[0],
        }
    else:
        query = queries["intake_batch"]
        params = {
            "keys": list(keys),
            "hashes": list(hashes),
            "saks": list(sak_ids),
            "bodies": list(bodies),
        }
    params["fagsystem"] = fagsystem
    async with db.pipelined(conn, begin=begin):
        cur = await conn.execute(query, params, prepare=CALLS)
    return _intake_rows(await cur.fetchall(), fagsystem, sak_ids)  # with begin: read at the sync


def _intake_rows(
    rows: Sequence[dict[str, Any]], fagsystem: str, sak_ids: Sequence[str | None]
) -> list[IntakeRow]:
    return [
        IntakeRow(
            logged=r["logged"],
            seen_hash=r["seen_hash"],
            case=None
            if sak is None
            else CaseRow.from_row({**r, "fagsystem": fagsystem, "sak_id": sak}),
            confirmed=r["confirmed"],
        )
        for r, sak in zip(rows, sak_ids, strict=True)
    ]


async def store_intake(
    conn: Connection,
    *,
    fagsystem: str,
    orders: Sequence[Json],
    statuses: Sequence[Json],
    waiting: Sequence[str],
    claim_s: float | None = None,
) -> None:
    """A batch's orders (with candidates, case in flight, MOTTATT), its other statuses and the
    messages now queued behind one of its orders: one statement. With ``claim_s`` the orders
    are stored claimed for that long by the caller's sender (``send_attempts`` 1)."""
    await db.execute(
        conn,
        queries["store_intake"],
        _store_params(fagsystem, orders, statuses, waiting, claim_s),
        prepare=CALLS,
    )


async def store_and_commit(
    conn: Connection,
    *,
    fagsystem: str,
    orders: Sequence[Json],
    statuses: Sequence[Json],
    waiting: Sequence[str],
) -> None:
    """``store_intake`` (when there is anything to store) and ``COMMIT`` sent together, one
    round trip: the end of the transaction ``intake_batch(begin=True)`` opened."""
    async with db.pipelined(conn, commit=True):
        if orders or statuses or waiting:
            params = _store_params(fagsystem, orders, statuses, waiting, None)
            await conn.execute(queries["store_intake"], params, prepare=CALLS)


def _store_params(
    fagsystem: str,
    orders: Sequence[Json],
    statuses: Sequence[Json],
    waiting: Sequence[str],
    claim_s: float | None,
) -> dict[str, Any]:
    return {
        "fagsystem": fagsystem,
        "orders": json_param(orders),
        "sak_ids": [o["sak_id"] for o in orders],
        "statuses": json_param(statuses),
        "waiting": list(waiting),
        "claim_s": claim_s,
    }


async def insert_inbound(
    conn: Connection,
    *,
    original_key: str,
    content_hash: str,
    fagsystem: str | None,
    sak_id: str | None,
    body: bytes,
    dryrun: bool,
    state: str,
) -> InboundRow | None:
    """Log a message; None when its key is already logged (a concurrent duplicate)."""
    row = await db.fetch_optional(
        conn,
        queries["insert_inbound"],
        {
            "original_key": original_key,
            "content_hash": content_hash,
            "fagsystem": fagsystem,
            "sak_id": sak_id,
            "body": body,
            "dryrun": dryrun,
            "state": state,
        },
    )
    return None if row is None else InboundRow.from_row(row)


async def take_waiting(
    conn: Connection, *, keys: Sequence[tuple[str, str]]
) -> list[tuple[tuple[str, str], str, bytes, Json]]:
    """Per case, its oldest waiting message (now done) and its confirmed state (uid -> data):
    ((fagsystem, sak_id), original key, body, confirmed)."""
    params = {"fagsystems": [k[0] for k in keys], "sak_ids": [k[1] for k in keys]}
    rows = await db.fetch_all(conn, queries["take_waiting"], params, prepare=CACHE_PLANS)
    return [
        ((r["fagsystem"], r["sak_id"]), r["original_key"], bytes(r["body"]), r["confirmed"])
        for r in rows
    ]


async def insert_status(conn: Connection, *, original_key: str, status: str, body: Json) -> None:
    params = {"original_key": original_key, "status": status, "body": Jsonb(body)}
    await db.execute(conn, queries["insert_status"], params)


async def fetch_latest_status(
    conn: Connection, *, original_key: str
) -> tuple[StatusRow | None, datetime | None]:
    """The key's latest status, else (None) when the key was logged (None: never)."""
    params = {"original_key": original_key}
    row = await db.fetch_one(conn, queries["fetch_latest_status"], params)
    if row["status"] is None:
        return None, row["received_at"]
    return StatusRow.from_row(row), None


async def claim_due_orders(conn: Connection, *, limit: int, dead_s: float) -> list[Outgoing]:
    params = {"limit": limit, "dead_s": dead_s}
    rows = await db.fetch_all(conn, queries["claim_due_orders"], params, prepare=CALLS)
    return [Outgoing.from_row(r) for r in rows]


async def book_sends(
    conn: Connection,
    *,
    sent: Sequence[uuid.UUID],
    parked: Sequence[tuple[uuid.UUID, str]] = (),
    failed: Sequence[tuple[uuid.UUID, float, str]] = (),
) -> int:
    """A send round's outcomes in one transaction and one round trip: ``BEGIN``,
    ``mark_orders_sent``, each order parked (``park_order``) and each failure (id, retry delay,
    error: ``record_send_failure``), ``COMMIT``, pipelined on ``conn`` in autocommit
    (``db.autocommit``: a failure leaves the transaction for it to roll back). Returns how many
    HOS_OPPDRAG statuses it stored."""
    marked = None
    async with db.pipelined(conn, begin=True, commit=True):
        if sent:
            params: dict[str, Any] = {"ids": list(sent)}
            marked = await conn.execute(queries["mark_orders_sent"], params, prepare=CALLS)
        for id_, error in parked:
            await conn.execute(queries["park_order"], {"id": id_, "error": error[:500]})
        for id_, delay_s, error in failed:
            params = {"id": id_, "delay_s": delay_s, "error": error[:500]}
            await conn.execute(queries["record_send_failure"], params)
    return 0 if marked is None else int((await marked.fetchall())[0]["marked"])


async def claim_unanswered_orders(
    conn: Connection, *, limit: int, timeout_s: float
) -> list[OrderRow]:
    params = {"limit": limit, "timeout_s": timeout_s}
    rows = await db.fetch_all(conn, queries["claim_unanswered_orders"], params)
    return [OrderRow.from_row(r) for r in rows]


async def resend_order(conn: Connection, *, id: uuid.UUID) -> bool:
    return await db.execute(conn, queries["resend_order"], {"id": id}) == 1


async def lock_orders_and_cases(
    conn: Connection, *, ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, OrderHead], dict[tuple[str, str], CaseRow]]:
    """A receipt batch's orders in id order, then their cases in key order: both statements
    sent before either result is read, one round trip in pipeline mode."""
    params = {"ids": list(ids)}
    orders = await conn.execute(queries["lock_orders"], params, prepare=CALLS)
    cases = await conn.execute(queries["lock_cases"], params, prepare=CALLS)
    return (
        {r["id"]: OrderHead.from_row(r) for r in await orders.fetchall()},
        {(r["fagsystem"], r["sak_id"]): CaseRow.from_row(r) for r in await cases.fetchall()},
    )


async def book_receipts(
    conn: Connection, *, receipts: Sequence[Json], free: Sequence[tuple[str, str]] = ()
) -> set[tuple[str, str]]:
    """A batch's bookings (``receipts.Booking`` rows), all in one statement; returns the cases
    (fagsystem, sak_id) a message waits on whose sak id is one of ``free``'s, read once the
    batch holds their locks: a superset of the free cases with a waiting message (the caller
    intersects; another fagsystem's case of the same sak id may be among them)."""
    params = {
        "receipts": json_text(receipts),
        "ids": [r["id"] for r in receipts],
        "sak_ids": [r["sak_id"] for r in receipts],
        "free_sak_ids": [k[1] for k in free],
    }
    rows = await db.fetch_all(conn, queries["book_receipts"], params, prepare=CALLS)
    return {(r["fagsystem"], r["sak_id"]) for r in rows}


async def insert_stray_receipt(
    conn: Connection, *, order_id: str | None, reason: str, body: str
) -> None:
    params = {"order_id": order_id, "reason": reason, "body": body}
    await db.execute(conn, queries["insert_stray_receipt"], params)


async def claim_status_window(
    conn: Connection, *, limit: int, begin: bool = False
) -> StatusPage | None:
    """The next page of statuses to publish, in order; None while another publisher holds the
    cursor. With ``begin``, ``BEGIN`` goes with it in one round trip (``conn`` in autocommit, as
    ``intake_batch(begin=True)``); ``move_status_cursor(commit=True)`` ends that transaction."""
    cur = conn.cursor(row_factory=tuple_row)
    query, params = queries["claim_status_window"], {"limit": limit}
    async with db.pipelined(conn, begin=begin):
        await cur.execute(query, params, prepare=CALLS)
    rows = await cur.fetchall()  # with begin: read at the sync
    await cur.close()
    if not rows:
        return None
    done, upto = rows[0][0], rows[0][1]
    return StatusPage(
        done=done,
        upto=upto,
        rows=[(txid, id_, key, body) for _, _, txid, id_, key, body in rows if id_ is not None],
        limit=limit,
    )


async def move_status_cursor(
    conn: Connection, page: StatusPage | None, *, commit: bool = False
) -> None:
    """Past ``page`` (None: no page was claimed, the cursor stays): its window is exhausted
    when the page came back short. With ``commit``, ``COMMIT`` goes with it in one round trip
    (the end of ``claim_status_window(begin=True)``'s transaction)."""
    async with db.pipelined(conn, commit=commit):
        if page is not None:
            last_txid, last_id = (page.rows[-1][0], page.rows[-1][1]) if page.rows else ("0", 0)
            params = {
                "done": page.done,
                "upto": page.upto,
                "last_txid": last_txid,
                "last_id": last_id,
                "exhausted": len(page.rows) < page.limit,
            }
            await conn.execute(queries["move_status_cursor"], params)


async def fetch_orders_of_case(conn: Connection, *, fagsystem: str, sak_id: str) -> list[OrderRow]:
    key = {"fagsystem": fagsystem, "sak_id": sak_id}
    return [
        OrderRow.from_row(r) for r in await db.fetch_all(conn, queries["fetch_orders_of_case"], key)
    ]


async def fetch_statuses_of_case(
    conn: Connection, *, fagsystem: str, sak_id: str
) -> list[StatusRow]:
    key = {"fagsystem": fagsystem, "sak_id": sak_id}
    rows = await db.fetch_all(conn, queries["fetch_statuses_of_case"], key)
    return [StatusRow.from_row(r) for r in rows]
