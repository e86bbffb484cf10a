"""Group commit: work items that arrive together run as one group (one statement, not N).

A caller submits one item and waits for its own result. An item starts a group at once when
fewer than ``parallel`` groups are running (so a lone item waits for nothing); items that arrive
while they run wait for the next group, which takes all of them (up to ``limit``). Under load
the groups grow by themselves and the per-item cost falls.

Below that load a group's fixed cost is paid for one or two items. ``linger_s`` > 0 trades a
bounded wait for it: a group of fewer than ``linger_below`` items starts only when that many are
waiting or its oldest item has waited ``linger_s``, so no item waits longer for company (items
that queued behind a running group have mostly waited that long already and go at once).
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

    def __init__(
        self,
        run: Run[K, R],
        *,
        parallel: int,
        limit: int = 500,
        linger_s: float = 0.0,
        linger_below: int = 0,
    ) -> None:
        self._run = run
        self._parallel = max(1, parallel)
        self._limit = max(1, limit)
        self._linger_s = max(0.0, linger_s)
        self._linger_below = min(self._limit, linger_below) if self._linger_s else 0
        self._waiting: list[tuple[K, asyncio.Future[R], float]] = []
        self._draining = 0  # groups running (or about to)
        self._lingering: asyncio.Future[None] | None = None  # done when enough are waiting
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done

    async def submit(self, item: K) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future, loop.time() if self._linger_below else 0.0))
        lingering = self._lingering
        if lingering is not None:  # a group is waiting for company: this item joins it
            if len(self._waiting) >= self._linger_below and not lingering.done():
                lingering.set_result(None)
        elif self._draining < self._parallel:
            self._draining += 1  # counted here and uncounted as it ends: no item is stranded
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future  # a caller that gives up still has its item run with its group

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if len(self._waiting) < self._linger_below:
                    if self._lingering is not None:  # another group lingers: it takes them
                        return
                    await self._linger()
                group, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
                try:
                    results = await self._run([item for item, _, _ in group])
                except Exception as exc:  # every waiter of the group gets it
                    results = [exc] * len(group)
                for (_, future, _), result in zip(group, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining -= 1

    async def _linger(self) -> None:
        """Until ``linger_below`` items wait or the oldest has waited ``linger_s``."""
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0][2] + self._linger_s
        if deadline <= loop.time():
            return
        self._lingering = enough = loop.create_future()
        timer = loop.call_at(deadline, _settle, enough)
        try:
            await enough
        finally:
            timer.cancel()
            self._lingering = None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
