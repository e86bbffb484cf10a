"""The core job loop survives a database error (it backs off and claims again; a bug still
raises), and ``jobs.as_they_arrive`` gives results in groups as they finish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import psycopg
import pytest

from tether.core import jobs

Claim = Callable[[], Awaitable[Sequence[int]]]


def claims_from(rounds: list[list[int] | Exception]) -> tuple[Claim, list[int]]:
    """A claim function giving ``rounds`` in turn (an exception is raised), then nothing."""
    processed: list[int] = []

    async def claim() -> Sequence[int]:
        if not rounds:
            return []
        head = rounds.pop(0)
        if isinstance(head, Exception):
            raise head
        return head

    return claim, processed


async def test_a_deadlock_ends_one_round_not_the_loop() -> None:
    claim, processed = claims_from(
        [[1, 2], psycopg.errors.DeadlockDetected("deadlock detected"), [3]]
    )

    async def process(items: Sequence[int]) -> None:
        processed.extend(items)

    done = await jobs.run_due_loop(
        claim=claim,
        process=process,
        stop=asyncio.Event(),
        once=True,
        poll_interval_s=0.01,
    )
    assert (done, processed) == (3, [1, 2, 3])


async def test_a_bug_still_raises_and_a_database_that_keeps_failing_ends_a_once_run() -> None:
    async def process(items: Sequence[int]) -> None:
        raise ValueError("a bug")

    claim, _ = claims_from([[1]])
    with pytest.raises(ValueError, match="a bug"):
        await jobs.run_due_loop(claim=claim, process=process, stop=asyncio.Event(), once=True)

    down = [psycopg.OperationalError("connection lost")] * jobs.ONCE_GIVES_UP_AFTER
    claim, _ = claims_from(list(down))
    with pytest.raises(psycopg.OperationalError):
        await jobs.run_due_loop(
            claim=claim,
            process=process,
            stop=asyncio.Event(),
            once=True,
            poll_interval_s=0.001,
        )


async def answer(value: str, after_s: float) -> str:
    await asyncio.sleep(after_s)
    return value


async def test_fast_results_come_together_and_a_slow_one_comes_later() -> None:
    work = [answer("a", 0), answer("slow", 1.0), answer("b", 0.01), answer("c", 0)]
    groups = [g async for g in jobs.as_they_arrive(work, group_wait_s=0.3)]
    assert groups == [[(0, "a"), (2, "b"), (3, "c")], [(1, "slow")]]


async def test_without_a_group_wait_every_result_is_still_given_once() -> None:
    work = [answer(str(i), i / 100) for i in range(5)]
    groups = [g async for g in jobs.as_they_arrive(work, group_wait_s=0)]
    assert sorted(pair for g in groups for pair in g) == [(i, str(i)) for i in range(5)]


async def test_stopping_early_cancels_what_is_still_running() -> None:
    cancelled = asyncio.Event()

    async def never() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"  # pragma: no cover

    groups = jobs.as_they_arrive([answer("a", 0), never()], group_wait_s=0.01)
    async for group in groups:
        assert group == [(0, "a")]
        break
    await groups.aclose()
    await asyncio.wait_for(cancelled.wait(), 5)


async def rounds_with_a_newcomer(linger_s: float, full: int, first: list[int]) -> list[list[int]]:
    """The rounds of a once-loop over ``first``; an item comes while the first round's end
    yields to the event loop a few times (well within any pause)."""
    queue = list(first)
    rounds: list[list[int]] = []
    tasks: list[asyncio.Future[None]] = []

    async def claim() -> Sequence[int]:
        taken = queue[:full]
        del queue[:full]
        return taken

    async def newcomer() -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        queue.append(99)

    async def process(items: Sequence[int]) -> None:
        rounds.append(list(items))
        if len(rounds) == 1:
            tasks.append(asyncio.ensure_future(newcomer()))

    await jobs.run_due_loop(
        claim=claim,
        process=process,
        stop=asyncio.Event(),
        once=True,
        poll_interval_s=0.01,
        pause=lambda items: linger_s if len(items) < full else 0.0,
    )
    return rounds


async def test_a_small_round_lingers_so_what_comes_meanwhile_joins_the_next() -> None:
    assert await rounds_with_a_newcomer(0.05, 3, [1]) == [[1], [99]]


async def test_a_full_round_or_linger_0_claims_again_at_once() -> None:
    # the full first round is followed at once by the small [4], which lingers for 99
    assert await rounds_with_a_newcomer(0.05, 3, [1, 2, 3, 4]) == [[1, 2, 3], [4], [99]]
    assert await rounds_with_a_newcomer(0.05, 1, [1, 2]) == [[1], [2]]  # ended before it came
    assert await rounds_with_a_newcomer(0, 3, [1]) == [[1]]
