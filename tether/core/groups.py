"""Group commit: work items that arrive together run as one group (one statement, not N).

A caller submits one item and waits for its own result. An item starts a group at once when
fewer than ``parallel`` groups are running (so a lone item waits for nothing); items that arrive
while they run wait for the next group, which takes all of them (up to ``limit``). Under load
the groups grow by themselves and the per-item cost falls; idle, nothing is delayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")

Run = Callable[[list[K]], Awaitable[Sequence[R | BaseException]]]


class Grouped(Generic[K, R]):
    """Runs ``run(items)`` over the items submitted together; each caller gets its result.

    ``run`` returns one result per item, in order: a value, or the exception of that item.
    An exception ``run`` raises fails every item of its group.
    """

    def __init__(self, run: Run[K, R], *, parallel: int, limit: int = 500) -> None:
        self._run = run
        self._parallel = max(1, parallel)
        self._limit = max(1, limit)
        self._waiting: list[tuple[K, asyncio.Future[R]]] = []
        self._draining = 0  # groups running (or about to)
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done

    async def submit(self, item: K) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._draining < self._parallel:
            self._draining += 1  # counted here and uncounted as it ends: no item is stranded
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future  # a caller that gives up still has its item run with its group

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
                try:
                    results = await self._run([item for item, _ in group])
                except Exception as exc:  # every waiter of the group gets it
                    results = [exc] * len(group)
                for (_, future), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining -= 1
