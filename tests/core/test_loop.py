"""Every entrypoint's loop is uvloop, and simulators parse HTTP with httptools."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
import uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tether.core import loop


def test_run_uses_uvloop_and_returns_the_result() -> None:
    async def which() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert loop.run(which()) is uvloop.Loop


def test_uvicorn_picks_httptools() -> None:
    config = uvicorn.Config(FastAPI(), lifespan="off")
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol


def test_startup_frozen_holds_what_exists_out_of_the_collector_until_exit() -> None:
    import gc

    kept = [object() for _ in range(10)]  # a list is tracked by the collector

    def walked(obj: object) -> bool:
        """In one of the generations a collection walks (not frozen)."""
        return any(o is obj for o in gc.get_objects())

    assert gc.get_freeze_count() == 0 and walked(kept)
    with loop.startup_frozen():
        assert gc.get_freeze_count() > 0
        assert not walked(kept)  # everything alive at entry is frozen, the list among it
        gc.collect()  # a full collection inside leaves the frozen objects where they are
        assert not walked(kept) and gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # unfrozen at exit: finalization sees every object
    assert walked(kept)


def test_cancel_and_wait_ends_a_task_that_swallowed_the_first_cancel() -> None:
    """As a cancel lost in ``wait_for`` on Python 3.11, or turned into an error and retried:
    one ``cancel()`` and an unbounded await would wait for ever."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    async def main() -> bool:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(loop.cancel_and_wait(task, every_s=0.05), 5)
        return task.cancelled()

    assert loop.run(main())
    assert swallowed == 1


def test_cancel_and_wait_raises_the_tasks_own_failure() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ValueError("broke while stopping") from None

    async def main() -> None:
        task = asyncio.create_task(failing())
        await asyncio.sleep(0)
        await loop.cancel_and_wait(task)

    with pytest.raises(ValueError, match="broke while stopping"):
        loop.run(main())
