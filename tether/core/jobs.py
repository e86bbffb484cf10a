"""The core job loop for due work, and the backoff every retry uses.

A capability brings the claim (``FOR UPDATE SKIP LOCKED`` on a due clock, the claim moving the
clock to now + dead-claim timeout so a crashed worker's claim expires by itself) and the
processing (work outside the transaction, apply in one transaction, record failures with
``backoff``). The loop decides only *when*: claim, process, repeat; sleep when nothing is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import psycopg

from tether.core.errors import Busy, DatabaseUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


def default_worker_id(pid: int | None = None) -> str:
    """Host and process (this one, or ``pid`` of this host): unique among live workers,
    readable in ``claimed_by`` columns."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def backoff(attempts: int, *, base_s: float, max_s: float, jitter: float = 0.0) -> float:
    """Exponential retry delay after ``attempts`` consecutive failures (1 -> ``base_s``).

    ``jitter`` (0..1) is the share of the delay drawn at random, so items that failed together
    do not all retry at the same instant.
    """
    delay = float(min(max_s, base_s * 2.0 ** max(0, attempts - 1)))
    return delay * (1.0 - jitter * random.random())


# A database error (a deadlock, a lost connection, a pool timeout) ends one round, not the
# worker: the loop backs off and claims again; a bug elsewhere still raises.
TRANSIENT = (psycopg.Error, DatabaseUnavailable, Busy)
ONCE_GIVES_UP_AFTER = 5  # with ``once`` (tests, benchmarks) a database that keeps failing raises


async def run_due_loop(
    *,
    claim: Callable[[], Awaitable[Sequence[T]]],
    process: Callable[[Sequence[T]], Awaitable[None]],
    stop: asyncio.Event,
    once: bool = False,
    poll_interval_s: float = 1.0,
    wake: asyncio.Event | None = None,
    name: str = "job",
    pause: Callable[[Sequence[T]], float] | None = None,
) -> int:
    """Claim and process due work until ``stop`` (or, with ``once``, until nothing is due).

    ``wake`` cuts an idle wait short (a new item was just queued in this process). After a
    round the loop sleeps ``pause(items)`` seconds (0: claims again at once), so what comes
    meanwhile joins the next round: a trickle goes in groups, each round's fixed cost shared,
    for at most that much latency. Returns how many items were processed.
    """
    processed = failures = 0
    logger.info("%s loop started", name, extra={"action": "job_started", "job": name})
    while not stop.is_set():
        try:
            items = await claim()
            if items:
                await process(items)
        except TRANSIENT as exc:
            failures += 1
            if once and failures >= ONCE_GIVES_UP_AFTER:
                raise
            delay = backoff(failures, base_s=poll_interval_s, max_s=30.0, jitter=0.5)
            logger.warning(
                "%s: %s; retrying in %.1f s (what it claimed comes back when its claim expires)",
                name,
                f"{type(exc).__name__}: {exc}".strip(),
                delay,
                extra={"action": "job_retry", "job": name},
            )
            await idle(stop, None, delay)
            continue
        failures = 0
        if not items:
            if once:
                break
            await idle(stop, wake, poll_interval_s)
            continue
        processed += len(items)
        wait_s = 0.0 if pause is None else pause(items)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
    logger.info(
        "%s loop stopped after %d item(s)",
        name,
        processed,
        extra={"action": "job_stopped", "job": name},
    )
    return processed


async def idle(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` or ``wake`` (new work) is set; clears ``wake``."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    if wake is not None:
        wake.clear()


async def as_they_arrive(
    work: Sequence[Awaitable[T]], *, group_wait_s: float
) -> AsyncIterator[list[tuple[int, T]]]:
    """Results of ``work`` in groups as they finish, each as (index in ``work``, result).

    A group is what finished by ``group_wait_s`` after its first member (or everything left,
    if sooner), so a batch's fast answers are stored together while a slow one is still out:
    one slow call no longer holds a hundred back. Unfinished work is cancelled on exit.
    """
    tasks: dict[asyncio.Future[T], int] = {asyncio.ensure_future(w): i for i, w in enumerate(work)}
    pending: set[asyncio.Future[T]] = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending and group_wait_s > 0:
                more, pending = await asyncio.wait(pending, timeout=group_wait_s)
                done |= more
            yield sorted((tasks[t], t.result()) for t in done)
    finally:
        for task in pending:
            task.cancel()
