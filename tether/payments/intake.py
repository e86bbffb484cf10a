"""Intake in batches: many messages, one transaction, two round trips.

A batch is what the broker consumer fetched, or the HTTP requests of one API process that
arrived while the previous batch was being stored (group commit, ``group_commit``: concurrent
requests share a transaction and a commit; a batch of fewer than
``TETHER_PAYMENTS_INTAKE_LINGER_BELOW`` waits up to ``TETHER_PAYMENTS_INTAKE_LINGER_S``, 2 ms,
for company, as a batch's fixed cost is about 1.9 ms of CPU; bench/RESULTS.md). One batch
at a time by default (``TETHER_PAYMENTS_INTAKE_PARALLEL``): at 1,000 requests/s on 2 cores, four
at once made batches of 4.6 instead of 12, 0.2 ms more CPU a message and the p99 34-48 ms
instead of 26-36 (bench/RESULTS.md); a request that arrives during a batch waits for it.

One batch is one transaction: ``pay.intake_batch`` locks its cases in key order, logs every
message in arrival order and reads each case's confirmed state once; the messages are then
planned here in arrival order (a case's second message of the batch is planned against the same
state when the first changed nothing, and waits when the first produced an order); one
statement stores every order with its candidates, the cases' orders in flight and one status per
planned message. All or nothing per batch: should the batch fail (a deadlock, a bug in one row)
its messages are stored again one by one, so one bad message fails only itself.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from tether.core import db
from tether.core.errors import Conflict, TetherError
from tether.core.groups import Grouped
from tether.core.records import record
from tether.payments import codec, repository
from tether.payments.records import CaseRow, IntakeRow, Submission

logger = logging.getLogger(__name__)

STATUSES = Counter(
    "tether_payments_statuses_total",
    "Statuses this process stored in pay.status, counted once committed, by status",
    ["status"],
)
KINDS = ("MOTTATT", "HOS_OPPDRAG", "OK", "FEILET")  # pay.status's CHECK
for _kind in KINDS:  # every kind exported from the first scrape on, 0 until one is stored
    STATUSES.labels(_kind)
FAGSYSTEM = "DAGPENGER"
Outcome = Submission | TetherError


@record
class Item:
    """One message ready for a batch: parsed, or the reason it could not be (its FEILET)."""

    key: str
    raw: bytes
    digest: str
    msg: codec.Message | None
    checked: tuple[codec.Utbetaling, ...] = ()  # its split, case-free rules checked (precheck)
    failure: codec.Rejected | None = None
    simulering: bool = False  # an unreadable dry run: its FEILET says simulering


def prepare(key: str, raw: bytes) -> Item:
    """Parse and precheck a message: one that breaks a rule needing no case is refused before
    a case is locked or created (``codec.precheck``)."""
    digest = hashlib.sha256(raw).hexdigest()
    msg: codec.Message | None = None
    try:
        msg = codec.parse(raw)
        checked = codec.precheck(msg)
    except codec.Rejected as exc:
        return Item(
            key=key,
            raw=raw,
            digest=digest,
            msg=None,
            failure=exc,
            simulering=msg is not None and msg.dryrun,
        )
    return Item(key=key, raw=raw, digest=digest, msg=msg, checked=checked)


class KeyReused(Conflict):
    """An original key sent before with other content: the first message keeps it, so the
    refusal says what to do (``how``: the caller's way to give another key)."""

    def __init__(self, key: str, *, how: str = "a new original key") -> None:
        super().__init__(
            f"key {key!r} was used before for a different message: send it under {how}"
        )
        self.key = key


def answer_seen(key: str, stored_hash: str | None, digest: str) -> Outcome:
    """A key seen before: same content is answered from what is stored, other content refused."""
    if stored_hash != digest:
        return KeyReused(key)
    return Submission(key=key, duplicate=True)


async def store(
    pool: AsyncConnectionPool[Any], items: Sequence[Item], *, max_order_bytes: int | None = None
) -> list[Outcome]:
    """Store a batch in one transaction; on a database error, each message on its own. An order
    whose XML would exceed ``max_order_bytes`` is its message's FEILET 400 (``plan_safely``)."""
    try:
        return await _store(pool, items, max_order_bytes)
    except Exception:
        if len(items) == 1:
            raise
        logger.warning(
            "intake of a batch of %d failed; one by one",
            len(items),
            exc_info=True,
            extra={"action": "payments_intake_batch_fallback"},
        )
    out: list[Outcome] = []
    for item in items:
        out += await _store(pool, [item], max_order_bytes)
    return out


async def _store(
    pool: AsyncConnectionPool[Any], items: Sequence[Item], max_order_bytes: int | None
) -> list[Outcome]:
    # two round trips: BEGIN with the intake, the store with COMMIT (pipelined, the connection
    # in autocommit so that psycopg sends no BEGIN of its own and waits for it). Each round trip
    # is two wake-ups, and on a busy machine each waits for a core: four of them were 1.2-1.5 ms
    # each of a 10.6 ms batch at 1,000 requests/s (bench/RESULTS.md)
    async with db.autocommit(pool) as conn:  # an error leaves the transaction rolled back
        rows = await repository.intake_batch(
            conn,
            fagsystem=FAGSYSTEM,
            keys=[i.key for i in items],
            hashes=[i.digest for i in items],
            sak_ids=[i.msg.sak_id if i.msg is not None else None for i in items],
            bodies=[i.raw for i in items],
            begin=True,
        )
        batch = Planner(max_order_bytes)
        results = [
            batch.take(n, i, row) for n, (i, row) in enumerate(zip(items, rows, strict=True))
        ]
        await repository.store_and_commit(
            conn,
            fagsystem=FAGSYSTEM,
            orders=batch.orders,
            statuses=batch.statuses,
            waiting=batch.waiting,
        )
    count(batch.counted)
    return results


def count(statuses: Iterable[str]) -> None:
    """Count stored statuses, one per ``pay.status`` row, only once their transaction has
    committed: a rolled-back batch (stored again one by one) or a failed commit counts none.
    Each kind once per call (a labelled child's lookup costs more than the addition)."""
    for status, n in collections.Counter(statuses).items():
        STATUSES.labels(status).inc(n)


class Planner:
    """Plans a batch's messages in arrival order; collects what ``store_intake`` stores (an
    intake batch, or a receipt batch's drain of its freed cases)."""

    def __init__(self, max_order_bytes: int | None = None) -> None:
        self.max_order_bytes = max_order_bytes  # None: no limit
        self.states: dict[str, PlanState] = {}
        self.blocked: set[str] = set()  # cases with an order planned in this batch
        self.orders: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.waiting: list[str] = []
        self.counted: list[str] = []

    def take(self, n: int, item: Item, row: IntakeRow) -> Outcome:
        case = row.case
        if case is not None and row.confirmed is not None and case.sak_id not in self.states:
            self.states[case.sak_id] = state_safely(case, row.confirmed)
        if not row.logged:
            return answer_seen(item.key, row.seen_hash, item.digest)
        if item.msg is None or case is None:
            assert item.failure is not None
            self._status(n, item.key, codec.failed(item.failure, simulering=item.simulering))
        elif case.inflight_order is not None:
            pass  # logged 'waiting': planned when the case's receipt is booked
        elif case.sak_id in self.blocked:
            self.waiting.append(item.key)
        else:
            state = self.states.get(case.sak_id)
            self.plan(n, item.key, case.sak_id, item.msg, state, checked=item.checked)
        return Submission(key=item.key)

    def plan(
        self,
        n: int,
        key: str,
        sak_id: str,
        msg: codec.Message | bytes,
        state: PlanState,
        *,
        checked: Sequence[codec.Utbetaling] | None = None,
    ) -> bool:
        """Plan one message of a free case; True when it made an order (the case now waits)."""
        if isinstance(state, Unreadable):  # its FEILET 500; the case stays free
            self._status(n, key, codec.internal_error(state.reason))
            return False
        order_id = uuid.uuid4()
        outcome = plan_safely(
            key, msg, state, order_id, max_order_bytes=self.max_order_bytes, checked=checked
        )
        if not isinstance(outcome, codec.Planned):
            self._status(n, key, outcome)
            return False
        if outcome.xml is None:
            self._status(n, key, codec.bare_ok())
            return False
        self._order(n, key, sak_id, order_id, outcome)
        self.blocked.add(sak_id)
        return True

    def _status(self, n: int, key: str, body: codec.StatusBody) -> None:
        status = str(body["status"])
        self.statuses.append({"ord": n, "original_key": key, "status": status, "body": body})
        self.counted.append(status)

    def _order(
        self, n: int, key: str, sak_id: str, order_id: uuid.UUID, planned: codec.Planned
    ) -> None:
        assert planned.xml is not None and planned.details is not None
        self.orders.append(
            {
                "ord": n,
                "id": str(order_id),
                "sak_id": sak_id,
                "original_key": key,
                "xml": planned.xml,
                "sha256": hashlib.sha256(planned.xml.encode()).hexdigest(),
                "uids": sorted(planned.uids),
                "details": planned.details,
                "candidates": planned.candidates,
            }
        )
        self.counted.append("MOTTATT")


def group_commit(
    pool: AsyncConnectionPool[Any],
    max_batch: int,
    at_once: int,
    *,
    max_order_bytes: int | None = None,
    linger_s: float = 0.0,
    linger_below: int = 0,
) -> Grouped[Item, Submission]:
    """Concurrent intakes of one process share transactions (``core.groups``): up to
    ``at_once`` batches stored at the same time, a crowd waiting for the next free one (at most
    ``max_batch``); a batch of fewer than ``linger_below`` waits up to ``linger_s`` from its
    oldest message for more (a batch's fixed cost is most of a small one's). A message's
    ``TetherError`` outcome is raised to its caller."""

    async def run(items: list[Item]) -> list[Outcome]:
        return await store(pool, items, max_order_bytes=max_order_bytes)

    return Grouped(
        run, parallel=at_once, limit=max_batch, linger_s=linger_s, linger_below=linger_below
    )


@dataclass(frozen=True)
class Unreadable:
    """A case whose stored state does not read (a bug, a hand-edited row): each message planned
    against it is FEILET 500, as any other processing error, and the others go on."""

    reason: str


PlanState = codec.CaseState | Unreadable | None  # what a message is planned against


def state_safely(case: CaseRow, confirmed: Mapping[str, Any]) -> PlanState:
    """``codec.case_state_of``, or why the case's state cannot be read."""
    try:
        return codec.case_state_of(case, confirmed)
    except Exception as exc:
        logger.exception(
            "the stored state of case %s does not read",
            case.sak_id,
            extra={"action": "payments_state_unreadable"},
        )
        return Unreadable(f"the case's stored state does not read: {type(exc).__name__}: {exc}")


def plan_safely(
    key: str,
    msg: codec.Message | bytes,
    state: codec.CaseState | None,
    order_id: uuid.UUID,
    *,
    max_order_bytes: int | None = None,
    checked: Sequence[codec.Utbetaling] | None = None,
) -> codec.Planned | codec.StatusBody:
    """Plan one message; a rejection or a bug becomes its FEILET, never the batch's. An order
    larger than ``max_order_bytes`` (what the orders queue takes) is a FEILET 400, never stored:
    the broker would refuse it, and its case would wait for ever."""
    try:
        parsed = codec.parse(msg) if isinstance(msg, bytes) else msg
        return codec.plan(
            parsed,
            state,
            now=now(),
            order_id=order_id,
            max_order_bytes=max_order_bytes,
            checked=checked if isinstance(msg, codec.Message) else None,
        )
    except codec.Rejected as exc:
        return codec.failed(exc)
    except Exception as exc:  # one message's bug must not stop its case or the worker
        logger.exception("planning message %s failed", key, extra={"action": "payments_plan_bug"})
        return codec.internal_error(f"{type(exc).__name__}: {exc}")


def now() -> datetime:
    return datetime.now().astimezone()
