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
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.bootstrap import Runtime
from tether.core.db import Connection
from tether.core.errors import Conflict, InvalidInput, NotFound
from tether.core.limits import excerpt
from tether.payments import codec, dryrun, intake, receipts, repository, rounds
from tether.payments.client import OppdragClient
from tether.payments.intake import FAGSYSTEM
from tether.payments.records import (
    CaseRow,
    CaseView,
    InboundRow,
    OrderHead,
    OrderRow,
    Outgoing,
    StatusRow,
    Submission,
)
from tether.payments.settings import PaymentsSettings

logger = logging.getLogger(__name__)

FINAL = frozenset({"OK", "FEILET"})
CaseMap = dict[tuple[str, str], CaseRow]
Drained = tuple[list[str], list[Outgoing]]  # statuses stored, orders stored claimed


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
        s = settings
        self._group = intake.group_commit(
            pool,
            s.intake_batch,
            s.intake_parallel,
            max_order_bytes=s.max_order_bytes,
            linger_s=s.intake_linger_s,
            linger_below=s.intake_linger_below,
        )
        # in-process wake-ups: an order or a status was just stored (other processes poll)
        self.orders_ready = asyncio.Event()
        self.statuses_ready = asyncio.Event()
        # orders a receipt batch planned, stored claimed for this process's sender (None: no
        # sender here, so they are stored due for any sender to claim)
        self._handed: list[Outgoing] | None = None
        self.queueing = rounds.Queueing()  # do messages wait behind their cases?

    def send_here(self) -> None:
        """This process runs a sender: the orders its receipt batches plan are handed to it
        directly (stored claimed by it), not claimed back from the table."""
        if self._handed is None:
            self._handed = []

    def take_handed(self) -> list[Outgoing]:
        """The orders handed to this process's sender since it last took them."""
        handed = self._handed or []
        if handed:
            self._handed = []
        return handed

    def _wake(self) -> None:
        self.orders_ready.set()
        self.statuses_ready.set()

    # --- intake --------------------------------------------------------------------------

    async def submit(self, key: str, raw: bytes) -> Submission:
        """Take one message under its original key; the status tells what became of it.
        Concurrent calls share a transaction (``intake.group_commit``)."""
        _check_key(key)
        item = intake.prepare(key, raw)
        if item.msg is not None and item.msg.dryrun:
            return await self._dry_run(key, item.digest, raw, item.msg)
        submission = await self._group.submit(item)
        self._wake()
        return submission

    async def submit_many(self, messages: Sequence[tuple[str, bytes]]) -> list[intake.Outcome]:
        """Take a batch (the broker's fetch) in one transaction, each message's outcome in its
        place: a ``Submission``, or the error that refused it (a bad or reused key)."""
        outcomes: list[intake.Outcome | None] = [None] * len(messages)
        batch: list[tuple[int, intake.Item]] = []
        for n, (key, raw) in enumerate(messages):
            try:
                _check_key(key)
            except InvalidInput as exc:
                outcomes[n] = exc
                continue
            item = intake.prepare(key, raw)
            if item.msg is not None and item.msg.dryrun:
                try:
                    outcomes[n] = await self._dry_run(key, item.digest, raw, item.msg)
                except Conflict as exc:
                    outcomes[n] = exc
            else:
                batch.append((n, item))
        if batch:
            stored = await intake.store(
                self.pool,
                [item for _, item in batch],
                max_order_bytes=self.settings.max_order_bytes,
            )
            for (n, _), outcome in zip(batch, stored, strict=True):
                outcomes[n] = outcome
            self._wake()
        return [o for o in outcomes if o is not None]

    async def _log_dry_run(
        self, conn: Connection, key: str, digest: str, raw: bytes, sak_id: str
    ) -> bool:
        """Record a dry run; False when a concurrent intake of the same key came first."""
        row = await repository.insert_inbound(
            conn,
            original_key=key,
            content_hash=digest,
            fagsystem=FAGSYSTEM,
            sak_id=sak_id,
            body=raw,
            dryrun=True,
            state="done",
        )
        return row is not None

    async def _seen_now(self, conn: Connection, key: str, digest: str) -> Submission:
        seen = await repository.fetch_inbound(conn, original_key=key)
        assert seen is not None
        return _answer_seen(seen, digest)

    async def _drain(
        self, conn: Connection, cases: Sequence[CaseRow], claim_s: float | None
    ) -> Drained:
        """Plan the cases' waiting messages in arrival order until each case has an order or
        none waits; per round one statement takes every case's next message and one stores
        what their planning made (``store_intake``, as an intake batch stores; with
        ``claim_s``, claimed for this process's sender). Returns the statuses stored, to count
        once committed, and the orders stored claimed (none without ``claim_s``)."""
        free = {(c.fagsystem, c.sak_id): c for c in cases}
        counted: list[str] = []
        orders: list[Outgoing] = []
        while free:
            taken = await repository.take_waiting(conn, keys=sorted(free))
            planners: dict[str, intake.Planner] = {}
            still: dict[tuple[str, str], CaseRow] = {}
            for n, (key, original_key, body, confirmed) in enumerate(taken):
                case = free[key]
                planner = planners.setdefault(
                    case.fagsystem, intake.Planner(self.settings.max_order_bytes)
                )
                state = intake.state_safely(case, confirmed)
                if not planner.plan(n, original_key, case.sak_id, body, state):
                    still[key] = case  # nothing sent for this one: the next may be planned
            for fagsystem, planner in sorted(planners.items()):
                await repository.store_intake(
                    conn,
                    fagsystem=fagsystem,
                    orders=planner.orders,
                    statuses=planner.statuses,
                    waiting=[],
                    claim_s=claim_s,
                )
                counted += planner.counted
                if claim_s is not None:  # stored claimed: the local sender gets them
                    orders += [receipts.planned_order(o) for o in planner.orders]
            free = still
        return counted, orders

    async def _status(self, conn: Connection, key: str, body: codec.StatusBody) -> str:
        """Store one status; returns it, for the caller to count once committed."""
        status = str(body["status"])
        await repository.insert_status(conn, original_key=key, status=status, body=body)
        return status

    # --- dry run -------------------------------------------------------------------------

    async def _dry_run(self, key: str, digest: str, raw: bytes, msg: codec.Message) -> Submission:
        """Answered now (``dryrun.answer``), logged under its key with that one status."""
        async with db.transaction(self.pool) as conn:
            seen = await repository.fetch_inbound(conn, original_key=key)
        if seen is not None:
            return _answer_seen(seen, digest)
        body = await dryrun.answer(
            self.pool, self.client, key, msg, max_order_bytes=self.settings.max_order_bytes
        )
        async with db.transaction(self.pool) as conn:
            if not await self._log_dry_run(conn, key, digest, raw, msg.sak_id):
                return await self._seen_now(conn, key, digest)
            status = await self._status(conn, key, body)
        intake.count([status])  # committed
        self._wake()
        return Submission(key=key)

    # --- receipts ------------------------------------------------------------------------

    async def apply_receipt(self, receipt: codec.Receipt, raw: str) -> str:
        """Book one receipt; returns ``ok``, ``feilet``, ``duplicate`` or ``stray``."""
        return (await self.apply_receipts([(receipt, raw)]))[0]

    async def apply_receipts(self, batch: Sequence[tuple[codec.Receipt, str]]) -> list[str]:
        """Book a fetched batch in one pipelined transaction (one commit, not one per receipt).
        Its orders are locked first, in id order (as the sender locks them), then its cases in
        key order (as an intake batch locks them): no deadlock with either. The bookings are
        one set-based statement (``Booking``). A database error rolls back the whole batch: the
        caller then books its receipts one by one."""
        ids = sorted({r.order_id for r, _ in batch if r.order_id is not None})
        outcomes = [""] * len(batch)
        booking = receipts.Booking()
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            orders, cases = await repository.lock_orders_and_cases(conn, ids=ids)

            def place(i: int) -> tuple[str, str, str]:
                order = orders.get(batch[i][0].order_id)  # type: ignore[arg-type]
                return ("", "", "") if order is None else (*receipts.case_key(order), str(order.id))

            for i in sorted(range(len(batch)), key=place):
                outcomes[i] = await self._apply(conn, *batch[i], orders, cases, booking)
            drained = await self._book(conn, booking, cases)
        self._booked(booking, drained)
        return outcomes

    async def refuse_unsendable(self, refusals: Sequence[tuple[uuid.UUID, str]]) -> int:
        """End orders tether will never send (too large for the queue) as an 08 would: FEILET
        400 under each key, the previous state in force, the case's next message planned.
        Locked as a receipt batch locks; one sent or finished meanwhile is left alone."""
        why = dict(refusals)
        booking = receipts.Booking()
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            orders, cases = await repository.lock_orders_and_cases(conn, ids=sorted(why))
            unsent = [o for o in orders.values() if o.state == "MOTTATT"]
            for order in sorted(unsent, key=lambda o: (*receipts.case_key(o), str(o.id))):
                key = receipts.case_key(order)
                cases[key] = await booking.refuse(conn, order, why[order.id], cases[key])
            drained = await self._book(conn, booking, cases)
        self._booked(booking, drained)
        return len(unsent)

    async def _book(self, conn: Connection, booking: receipts.Booking, cases: CaseMap) -> Drained:
        """Store a batch's bookings, then plan what waits on every case left free (a message
        may wait that the lock's read could not see: queued by an intake that held the case
        while this batch waited for it). The booking statement reads which free cases have a
        waiting message: only those are drained, so the usual batch (none waits: 767 of 767 per
        20,000 messages) sends no ``take_waiting``, 0.24 ms of planning a batch."""
        free = [c for c in cases.values() if c.inflight_order is None]
        waiting = await booking.flush(conn, free=[(c.fagsystem, c.sak_id) for c in free])
        if waiting is not None:  # else nothing was booked: drain every free case, as before
            free = [c for c in free if (c.fagsystem, c.sak_id) in waiting]
        claim_s = None if self._handed is None else self.settings.send_dead_timeout_s
        return await self._drain(conn, free, claim_s)

    def _booked(self, booking: receipts.Booking, drained: Drained) -> None:
        counted, planned = drained  # committed: count, hand the planned orders to the sender
        intake.count(booking.counted + counted)
        if counted:  # each message it planned left a status
            self.queueing.released()
        if self._handed is not None:
            self._handed += planned
        self._wake()

    async def _apply(
        self,
        conn: Connection,
        receipt: codec.Receipt,
        raw: str,
        orders: dict[uuid.UUID, OrderHead],
        cases: dict[tuple[str, str], CaseRow],
        booking: receipts.Booking,
    ) -> str:
        order = None if receipt.order_id is None else orders.get(receipt.order_id)
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
        if order.state in FINAL or order.id in booking.orders:  # finished, or earlier in the batch
            logger.info(
                "second receipt for order %s ignored",
                order.id,
                extra={"action": "payments_receipt_duplicate"},
            )
            return "duplicate"
        # locked by lock_cases; drained at the end of the batch when free
        key = receipts.case_key(order)
        outcome, cases[key] = await booking.add(conn, order, receipt, cases[key])
        return outcome

    # --- reads ---------------------------------------------------------------------------

    async def latest_status(self, key: str) -> StatusRow:
        """One statement outside a transaction: a poll is one round trip (no BEGIN/ROLLBACK)."""
        async with db.autocommit(self.pool) as conn:
            status, received_at = await repository.fetch_latest_status(conn, original_key=key)
        if status is not None:
            return status
        if received_at is None:
            raise NotFound(f"no message with key {excerpt(key)!r}")
        return StatusRow(
            original_key=key, status="VENTER", body=codec.waiting(), created_at=received_at
        )

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
                raise NotFound(f"no case {excerpt(fagsystem)}/{excerpt(sak_id)}")
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
        """The case's statuses, then its messages waiting behind its order (VENTER)."""
        async with self.pool.connection() as conn:
            return await repository.fetch_statuses_of_case(conn, fagsystem=fagsystem, sak_id=sak_id)


def _answer_seen(seen: InboundRow, digest: str) -> Submission:
    """A key seen before: same content is answered from what is stored, other content refused."""
    if seen.content_hash != digest:
        raise intake.KeyReused(seen.original_key)
    return Submission(key=seen.original_key, duplicate=True)


MAX_KEY = 200  # characters of an original key


def valid_key(key: str) -> bool:
    """An original key: 1 to ``MAX_KEY`` characters, not blank (every intake's rule)."""
    return bool(key.strip()) and len(key) <= MAX_KEY


def _check_key(key: str) -> None:
    if not key:
        raise InvalidInput("no Transaction-ID (the original key): set it on every message")
    if not valid_key(key):
        raise InvalidInput(
            f"the Transaction-ID (original key) must be 1..{MAX_KEY} characters, not blank; "
            f"got {len(key)}"
        )


@asynccontextmanager
async def build(runtime: Runtime) -> AsyncIterator[PaymentsService]:
    """The service for a process's lifetime (its client closed on exit)."""
    own = runtime.settings_of(PaymentsSettings)
    async with OppdragClient.from_settings(own) as client:
        yield PaymentsService(pool=runtime.pool, settings=own, client=client)
