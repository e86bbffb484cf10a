"""The one place that picks the asyncio event loop: uvloop when installed, else the default.

Every entrypoint that starts a loop (CLI commands, worker processes, simulator threads) calls
``run``; ``uvicorn.run`` picks uvloop by itself (``loop="auto"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is installed (not on Windows), else ``None`` (default)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return None
    return uvloop.new_event_loop


async def cancel_and_wait(task: asyncio.Task[Any], *, every_s: float = 0.5) -> None:
    """Cancel ``task`` and wait until it is done, cancelling it again every ``every_s``.

    One ``cancel()`` is not always delivered: Python 3.11's ``asyncio.wait_for`` returns the
    inner result when it completes as the cancel arrives, and a library may turn the cancel
    into an error its caller retries. A simulator's stop that awaited its consumer after one
    cancel waited past its thread's 15 s join, and its NATS client kept reconnecting after the
    test's broker was gone."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)
    if not task.cancelled():
        task.result()  # its own failure, raised as awaiting it would


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop ``loop_factory`` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


@contextlib.contextmanager
def startup_frozen() -> Iterator[None]:
    """Within: every object alive on entry (modules, routes, schemas, services) is out of the
    collector's generations.

    A full collection walks every tracked object; with the web and database stack imported that
    is hundreds of thousands, and it stopped a worker's intake for 130-170 ms twice in a
    20-second burst, the API for 64 ms. Frozen, a full collection walks only what was made
    since. Enter once startup is done; unfrozen on exit, so finalization (and the next app of a
    test process) sees every object as it would without."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
