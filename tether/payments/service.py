"""Use cases of the payments capability: intake, dry run, receipts, and the reads.

Intake of one message is one transaction: the message is logged by its original key, the case
row is locked (``FOR UPDATE``: workers take turns per case, other cases run in parallel), and
unless an order of the case is still at the payment system, the case's waiting messages are
planned in arrival order: candidates + order (the outbox) + ``MOTTATT``. A receipt frees the case
and plans its next waiting message in the same transaction, so no message of a case is planned
against state that a pending order may still change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.db import Connection
from tether.core.errors import Conflict, InvalidInput, NotFound, UpstreamError
from tether.payments import codec, repository
from tether.payments.client import OppdragClient
from tether.payments.records import (
    CaseRow,
    CaseView,
    InboundRow,
    OrderRow,
    StatusRow,
    Submission,
)
from tether.payments.settings import PaymentsSettings

logger = logging.getLogger(__name__)

STATUSES = Counter("tether_payments_statuses_total", "Statuses recorded, by status", ["status"])
FINAL = frozenset({"OK", "FEILET"})
FAGSYSTEM = "DAGPENGER"


class PaymentsService:
    """Everything the API, the CLI, the worker jobs and the demo do with payments."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        settings: PaymentsSettings,
        client: OppdragClient,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.client = client
        # in-process wake-ups: an order or a status was just stored (other processes poll)
        self.orders_ready = asyncio.Event()
        self.statuses_ready = asyncio.Event()

    def _wake(self) -> None:
        self.orders_ready.set()
        self.statuses_ready.set()

    # --- intake --------------------------------------------------------------------------

    async def submit(self, key: str, raw: bytes) -> Submission:
        """Take one message under its original key; the status tells what became of it."""
        if not key.strip() or len(key) > 200:
            raise InvalidInput("the Transaction-ID (original key) must be 1..200 characters")
        digest = hashlib.sha256(raw).hexdigest()
        msg: codec.Message | None = None
        failure: codec.Rejected | None = None
        dryrun = False
        try:
            msg = codec.parse(raw)
            codec.precheck(msg)  # ids too long for a case key are refused before any lock
        except codec.Rejected as exc:
            msg, failure, dryrun = None, exc, msg is not None and msg.dryrun
        if msg is not None and msg.dryrun:
            return await self._dry_run(key, digest, raw, msg)
        if msg is None:
            assert failure is not None
            async with db.transaction(self.pool) as conn:
                if not await self._log(conn, key, digest, raw, None, state="done"):
                    return await self._seen_now(conn, key, digest)
                await self._status(conn, key, codec.failed(failure, simulering=dryrun))
        else:
            # pipelined: BEGIN goes with the intake call, the order and MOTTATT with COMMIT, so
            # one message costs two round trips; still one transaction
            async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
                case, confirmed = await repository.intake(
                    conn,
                    fagsystem=FAGSYSTEM,
                    sak_id=msg.sak_id,
                    original_key=key,
                    content_hash=digest,
                    body=raw,
                )
                if confirmed is None:  # a concurrent intake of the same key came first
                    return await self._seen_now(conn, key, digest)
                if case.inflight_order is None:  # nothing of this case waits: plan it now
                    await self._plan_one(conn, case, key, msg, codec.case_state_of(case, confirmed))
        self._wake()
        return Submission(key=key)

    async def _log(
        self,
        conn: Connection,
        key: str,
        digest: str,
        raw: bytes,
        sak_id: str | None,
        *,
        state: str,
        dryrun: bool = False,
    ) -> bool:
        """Record the message; False when a concurrent intake of the same key came first."""
        row = await repository.insert_inbound(
            conn,
            original_key=key,
            content_hash=digest,
            fagsystem=FAGSYSTEM if sak_id is not None else None,
            sak_id=sak_id,
            body=raw,
            dryrun=dryrun,
            state=state,
        )
        return row is not None

    async def _seen_now(self, conn: Connection, key: str, digest: str) -> Submission:
        seen = await repository.fetch_inbound(conn, original_key=key)
        assert seen is not None
        return _answer_seen(seen, digest)

    async def _drain(self, conn: Connection, case: CaseRow) -> None:
        """Plan the case's waiting messages in arrival order until one produces an order; the
        confirmed state is read only once a message waits (most receipts find none)."""
        where = {"fagsystem": case.fagsystem, "sak_id": case.sak_id}
        state: list[codec.CaseState | None] = []  # unchanged until an order is stored
        while (nxt := await repository.fetch_next_waiting(conn, **where)) is not None:
            state = state or [await self._state(conn, case)]
            await repository.mark_inbound_done(conn, seq=nxt.seq)
            if await self._plan_one(conn, case, nxt.original_key, nxt.body, state[0]):
                return

    async def _state(self, conn: Connection, case: CaseRow) -> codec.CaseState | None:
        """The confirmed state; a case the payment system never accepted has no rows to read."""
        if not case.has_order_before:
            return codec.case_state(case, [])
        rows = await repository.fetch_utbetalinger(
            conn, fagsystem=case.fagsystem, sak_id=case.sak_id
        )
        return codec.case_state(case, rows)

    async def _plan_one(
        self,
        conn: Connection,
        case: CaseRow,
        key: str,
        msg: codec.Message | bytes,
        state: codec.CaseState | None,
    ) -> bool:
        """Plan one message against the confirmed state; True when it stored an order."""
        order_id = uuid.uuid4()
        outcome = _plan_safely(key, msg, state, order_id)
        if not isinstance(outcome, codec.Planned):
            await self._status(conn, key, outcome)
            return False
        if outcome.xml is None:
            await self._status(conn, key, codec.bare_ok())
            return False
        await self._store_order(conn, case, key, order_id, outcome)
        return True

    async def _store_order(
        self,
        conn: Connection,
        case: CaseRow,
        key: str,
        order_id: uuid.UUID,
        planned: codec.Planned,
    ) -> None:
        assert planned.xml is not None and planned.details is not None
        await repository.store_order(
            conn,
            id=order_id,
            fagsystem=case.fagsystem,
            sak_id=case.sak_id,
            original_key=key,
            xml=planned.xml,
            sha256=hashlib.sha256(planned.xml.encode()).hexdigest(),
            uids=sorted(planned.uids),
            details=planned.details,
            candidates=planned.candidates,
            status=codec.mottatt(planned.details),
        )
        STATUSES.labels("MOTTATT").inc()

    async def _status(self, conn: Connection, key: str, body: codec.StatusBody) -> None:
        status = str(body["status"])
        await repository.insert_status(conn, original_key=key, status=status, body=body)
        STATUSES.labels(status).inc()

    # --- dry run -------------------------------------------------------------------------

    async def _dry_run(self, key: str, digest: str, raw: bytes, msg: codec.Message) -> Submission:
        """Same split and diff, no case state stored: the simulation service answers."""
        async with db.transaction(self.pool) as conn:
            seen = await repository.fetch_inbound(conn, original_key=key)
            if seen is not None:
                return _answer_seen(seen, digest)
            case = await repository.fetch_case(conn, fagsystem=FAGSYSTEM, sak_id=msg.sak_id)
            rows = await repository.fetch_utbetalinger(conn, fagsystem=FAGSYSTEM, sak_id=msg.sak_id)
        try:
            planned = codec.plan(
                msg, codec.case_state(case, rows), now=_now(), order_id=uuid.uuid4()
            )
        except codec.Rejected as exc:
            body = codec.failed(exc, simulering=True)
        else:
            if planned.xml is None:
                body = codec.simulated_no_change()
            else:
                try:
                    simulation = await self.client.simulate(planned.xml)
                except UpstreamError as exc:
                    body = codec.failed_simulation(exc.message, exc.status_code)
                else:
                    body = codec.simulated(planned.details, simulation)
        async with db.transaction(self.pool) as conn:
            if not await self._log(conn, key, digest, raw, msg.sak_id, state="done", dryrun=True):
                return await self._seen_now(conn, key, digest)
            await self._status(conn, key, body)
        self._wake()
        return Submission(key=key)

    # --- receipts ------------------------------------------------------------------------

    async def apply_receipt(self, receipt: codec.Receipt, raw: str) -> str:
        """Book one receipt; returns ``ok``, ``feilet``, ``duplicate`` or ``stray``."""
        return (await self.apply_receipts([(receipt, raw)]))[0]

    async def apply_receipts(self, batch: Sequence[tuple[codec.Receipt, str]]) -> list[str]:
        """Book a fetched batch in one pipelined transaction (one commit, not one per receipt);
        orders are locked in id order so two workers' batches do not deadlock. A database error
        rolls back the whole batch: the caller then books its receipts one by one."""
        outcomes = [""] * len(batch)
        by_order = sorted(range(len(batch)), key=lambda i: str(batch[i][0].order_id))
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            for i in by_order:
                outcomes[i] = await self._apply(conn, *batch[i])
        self._wake()
        return outcomes

    async def _apply(self, conn: Connection, receipt: codec.Receipt, raw: str) -> str:
        order = None
        if receipt.order_id is not None:
            order = await repository.lock_order(conn, id=receipt.order_id)
        if order is None:
            await repository.insert_stray_receipt(
                conn, order_id=str(receipt.order_id), reason="unknown order", body=raw
            )
            logger.warning(
                "receipt for an unknown order %s kept",
                receipt.order_id,
                extra={"action": "payments_receipt_stray"},
            )
            return "stray"
        if order.state in FINAL:
            logger.info(
                "second receipt for order %s ignored",
                order.id,
                extra={"action": "payments_receipt_duplicate"},
            )
            return "duplicate"
        case = await repository.lock_case(conn, fagsystem=order.fagsystem, sak_id=order.sak_id)
        outcome, case = await self._book(conn, order, receipt, case)
        if case.inflight_order is None:
            await self._drain(conn, case)
        return outcome

    async def _book(
        self, conn: Connection, order: OrderRow, receipt: codec.Receipt, case: CaseRow
    ) -> tuple[str, CaseRow]:
        """00/04: candidates become the confirmed state; else the previous state stays. Returns
        the outcome and the locked case as confirm/release_case leave it (no second read)."""
        body = codec.final(order.details, receipt)
        if order.state == "MOTTATT":  # the receipt beat the sender's bookkeeping: say it was sent
            await self._status(conn, order.original_key, codec.hos_oppdrag(order.details))
        if body["status"] == "OK":
            await repository.confirm_candidates(conn, id=order.id)
            await repository.confirm_case(
                conn, fagsystem=order.fagsystem, sak_id=order.sak_id, uids=order.uids
            )
            case = replace(
                case, active_uids=frozenset(order.uids), has_order_before=True, inflight_order=None
            )
        else:
            await repository.release_case(
                conn, fagsystem=order.fagsystem, sak_id=order.sak_id, id=order.id
            )
            if case.inflight_order == order.id:
                case = replace(case, inflight_order=None)
        state = str(body["status"])
        await repository.finish_order(
            conn, id=order.id, state=state, code=receipt.code, text=receipt.source.beskr_melding
        )
        await self._status(conn, order.original_key, body)
        return state.lower(), case

    # --- reads ---------------------------------------------------------------------------

    async def latest_status(self, key: str) -> StatusRow:
        async with self.pool.connection() as conn:
            status = await repository.fetch_latest_status(conn, original_key=key)
            if status is None:
                seen = await repository.fetch_inbound(conn, original_key=key)
                if seen is None:
                    raise NotFound(f"no message with key {key!r}")
                return StatusRow(original_key=key, status="VENTER", body=codec.waiting())
            return status

    async def wait_status(self, key: str, wait_s: float) -> StatusRow:
        """The latest status; with ``wait_s`` > 0, the first final one within that time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_s)
        while True:
            status = await self.latest_status(key)
            if status.status in FINAL or loop.time() >= deadline:
                return status
            await asyncio.sleep(min(self.settings.poll_interval_s, deadline - loop.time()))

    async def case(self, sak_id: str, fagsystem: str = FAGSYSTEM) -> CaseView:
        async with self.pool.connection() as conn:
            case = await repository.fetch_case(conn, fagsystem=fagsystem, sak_id=sak_id)
            if case is None:
                raise NotFound(f"no case {fagsystem}/{sak_id}")
            rows = await repository.fetch_utbetalinger(conn, fagsystem=fagsystem, sak_id=sak_id)
        return CaseView(
            fagsystem=fagsystem,
            sak_id=sak_id,
            active_uids=case.active_uids,
            inflight_order=case.inflight_order,
            utbetalinger=rows,
        )

    async def orders(self, sak_id: str, fagsystem: str = FAGSYSTEM) -> list[OrderRow]:
        async with self.pool.connection() as conn:
            return await repository.fetch_orders_of_case(conn, fagsystem=fagsystem, sak_id=sak_id)

    async def statuses(self, sak_id: str, fagsystem: str = FAGSYSTEM) -> list[StatusRow]:
        async with self.pool.connection() as conn:
            return await repository.fetch_statuses_of_case(conn, fagsystem=fagsystem, sak_id=sak_id)


def _answer_seen(seen: InboundRow, digest: str) -> Submission:
    """A key seen before: same content is answered from what is stored, other content refused."""
    if seen.content_hash != digest:
        raise Conflict(f"key {seen.original_key!r} was used before for a different message")
    return Submission(key=seen.original_key, duplicate=True)


def _plan_safely(
    key: str, msg: codec.Message | bytes, state: codec.CaseState | None, order_id: uuid.UUID
) -> codec.Planned | codec.StatusBody:
    """Plan one message; a rejection or a bug becomes its FEILET, never the batch's."""
    try:
        parsed = codec.parse(msg) if isinstance(msg, bytes) else msg
        return codec.plan(parsed, state, now=_now(), order_id=order_id)
    except codec.Rejected as exc:
        return codec.failed(exc)
    except Exception as exc:  # one message's bug must not stop its case or the worker
        logger.exception("planning message %s failed", key, extra={"action": "payments_plan_bug"})
        return codec.internal_error(f"{type(exc).__name__}: {exc}")


def _now() -> datetime:
    return datetime.now().astimezone()


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[PaymentsService]:
    """The service for a process's lifetime (its client closed on exit)."""
    own = runtime.settings_of(PaymentsSettings)
    async with OppdragClient.from_settings(own) as client:
        yield PaymentsService(pool=runtime.pool, settings=own, client=client)
