"""``jobs.as_they_arrive``: results in groups as they finish, slow work in a later group, and
unfinished work cancelled when the caller stops early."""

from __future__ import annotations

import asyncio

from tether.core import jobs


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
