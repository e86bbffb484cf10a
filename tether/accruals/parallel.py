"""Read-only queries of one stage spread over a few connections, results kept in order.

The serial stages (profiles, scalars) are a handful of big reads; on a machine with more than
one core the server can answer two of them at once. Results come back in task order, so what is
computed from them (sums in a fixed order) is the same as with one connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")
Task = Callable[[psycopg.Connection[Any]], T]


def ordered(url: str, tasks: Iterable[Task[T]], workers: int = 2) -> Iterator[T]:
    """Each task's result, in task order; ``workers`` connections (one per thread)."""
    local = threading.local()
    conns: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def run(task: Task[T]) -> T:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(url)
            with lock:
                conns.append(conn)
        with conn.transaction():
            return task(conn)

    try:
        with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
            yield from pool.map(run, tasks)
    finally:
        for conn in conns:
            conn.close()
