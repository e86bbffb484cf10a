"""Group commit (``groups.Grouped``): what arrives together runs together; nobody is stranded."""

from __future__ import annotations

import asyncio

from tether.core.groups import Grouped


class Recorder:
    """A group runner that records its groups; ``gate`` holds a group until it is set."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, items: list[int]) -> list[int | BaseException]:
        self.groups.append(items)
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_items_submitted_together_run_as_one_group_each_with_its_own_result() -> None:
    recorder = Recorder()
    grouped = Grouped(recorder.run, parallel=1)
    results = await asyncio.gather(*(grouped.submit(i) for i in range(5)), return_exceptions=True)
    assert recorder.groups == [[0, 1, 2, 3, 4]]
    assert [r if isinstance(r, int) else str(r) for r in results] == [
        0,
        "odd 1",
        20,
        "odd 3",
        40,
    ]


async def test_items_arriving_while_a_group_runs_go_together_in_the_next() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    grouped = Grouped(recorder.run, parallel=1)
    first = asyncio.ensure_future(grouped.submit(0))
    await asyncio.sleep(0.01)
    assert recorder.groups == [[0]]  # the lone item started a group at once
    later = [asyncio.ensure_future(grouped.submit(i)) for i in (2, 4, 6)]
    await asyncio.sleep(0.01)
    assert recorder.groups == [[0]]  # the others wait for the running group
    recorder.gate.set()
    assert await asyncio.gather(first, *later) == [0, 20, 40, 60]
    assert recorder.groups == [[0], [2, 4, 6]]


async def test_a_failing_group_fails_each_of_its_items_and_the_next_group_still_runs() -> None:
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return items

    grouped = Grouped(run, parallel=1)
    failed = await asyncio.gather(grouped.submit(1), grouped.submit(2), return_exceptions=True)
    assert [str(f) for f in failed] == ["the database went away"] * 2
    assert await grouped.submit(3) == 3


async def test_an_item_submitted_as_the_last_group_ends_starts_a_group_of_its_own() -> None:
    async def run(items: list[int]) -> list[int]:
        return items  # the group's task ends in the step it starts

    grouped = Grouped(run, parallel=1)

    async def late() -> int:
        await asyncio.sleep(0)  # runs again right after the group's task has ended
        return await grouped.submit(2)

    later = asyncio.ensure_future(late())
    assert await grouped.submit(1) == 1
    assert await asyncio.wait_for(later, 5) == 2


async def settle() -> None:
    """Lets every ready task run (a group that may start has started)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_item_lingers_for_company_but_never_longer_than_linger_s() -> None:
    recorder = Recorder()
    grouped = Grouped(recorder.run, parallel=1, linger_s=0.01, linger_below=100)
    lone = asyncio.ensure_future(grouped.submit(2))
    await settle()
    assert recorder.groups == []  # waiting for company
    assert await asyncio.wait_for(lone, 5) == 20  # 99 more never came: it went alone
    assert recorder.groups == [[2]]


async def test_items_arriving_during_the_linger_join_its_group_which_starts_once_enough() -> None:
    recorder = Recorder()
    grouped = Grouped(recorder.run, parallel=4, linger_s=30, linger_below=3)
    first = [asyncio.ensure_future(grouped.submit(i)) for i in (0, 2)]
    await settle()
    assert recorder.groups == []  # two of three: lingering, and no second group started
    third = asyncio.ensure_future(grouped.submit(4))
    assert await asyncio.wait_for(asyncio.gather(*first, third), 5) == [0, 20, 40]
    assert recorder.groups == [[0, 2, 4]]  # started by the third, not by the 30 s


async def test_linger_0_starts_a_lone_item_at_once() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    grouped = Grouped(recorder.run, parallel=1, linger_s=0, linger_below=100)
    lone = asyncio.ensure_future(grouped.submit(2))
    await settle()
    assert recorder.groups == [[2]]
    recorder.gate.set()
    assert await lone == 20


async def test_items_queued_behind_a_running_group_do_not_linger_again() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    grouped = Grouped(recorder.run, parallel=1, linger_s=0.05, linger_below=2)
    first = [asyncio.ensure_future(grouped.submit(i)) for i in (0, 2)]
    await settle()
    assert recorder.groups == [[0, 2]]  # enough: at once
    later = asyncio.ensure_future(grouped.submit(4))
    await asyncio.sleep(0.06)  # the running group outlasts the later item's linger
    recorder.gate.set()
    await settle()
    assert recorder.groups == [[0, 2], [4]]  # its wait counts: it goes as soon as it can
    assert await asyncio.gather(*first, later) == [0, 20, 40]
