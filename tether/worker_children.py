"""The parent of ``tether worker``'s processes: starts them, forwards a stop, replaces the dead.

A child killed (kill -9, the OOM killer, a crash in a C extension) took its jobs with it while
the parent and the other children ran on, logging nothing: payments intake or the accruals
executor stopped and only a growing backlog said so. The parent now logs an ERROR naming the
child's lane, how it ended and its jobs, and starts another in its place; should children keep
dying (more than ``DEATHS_MAX`` in ``DEATHS_WINDOW_S``), it stops the rest and exits non-zero,
for a supervisor (systemd, Kubernetes) to see. A child that exits 0 while the worker runs ended
its jobs (e.g. the payments jobs without NATS): not a death. ``--once`` replaces nothing.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from tether.core import workers
from tether.core.jobs import backoff
from tether.core.settings import Settings, exported
from tether.worker import STOP_SIGNALS, WorkerOptions, _forkable, lanes, process_main, selected

logger = logging.getLogger("tether.worker")

DEATHS_MAX = 5  # children dead within DEATHS_WINDOW_S before the parent gives up
DEATHS_WINDOW_S = 60.0
RESPAWN_BASE_S = 1.0  # the pause before a second quick replacement, doubling
RESPAWN_MAX_S = 30.0
POLL_S = 0.5  # how often the parent looks at the clock while a replacement waits


@dataclass
class _Child:
    """One child's place: what it runs, and the process that runs it now."""

    options: WorkerOptions
    name: str
    process: Any = None

    def jobs(self) -> list[str]:
        return [
            f"{capability.name}.{job.name}"
            for capability in selected(self.options)
            for job in capability.jobs
            if self.options.runs(job)
        ]


class _Forward:
    """The parent's SIGTERM / SIGINT handler: stop every child, once."""

    def __init__(self, children: list[_Child]) -> None:
        self.children = children
        self.stopping = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.stopping:  # once is enough: a second must not kill a child mid-shutdown
            return
        self.stopping = True
        for child in self.children:
            process = child.process
            if process is not None and process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)


def how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def run_children(
    settings: Settings,
    database_url: str,
    processes: int,
    options: WorkerOptions,
    env: dict[str, str],
) -> int:
    """Start the children and wait for them; returns how many ended by failing."""
    forked = _forkable(options, env)
    context = (
        multiprocessing.get_context("fork") if forked else multiprocessing.get_context("spawn")
    )
    children = [
        _Child(
            options=replace(options, lane=lane),
            name=f"tether-worker-{i}" if lane == "all" else f"tether-worker-{lane}-{i}",
        )
        for lane in lanes(settings, options)
        for i in range(processes)
    ]
    forward = _Forward(children)

    def start(child: _Child) -> None:
        child.process = context.Process(
            target=process_main,
            args=(settings, database_url, child.options, os.getpid()),
            name=child.name,
        )
        with exported(env):
            child.process.start()

    # The stop signals are held while a child starts and until the parent's handler is set:
    # one that comes meanwhile waits, then is forwarded to them all. Unheld, it met the
    # default handler, which killed the parent and left the children to notice on their own;
    # with the handler set first instead, a SIGTERM forwarded to a child in the instant it
    # forked was seen lost (the worker hung). The children start with them held too and
    # release them first thing (``process_main``).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for child in children:
            start(child)
        previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    try:
        return _watch(children, forward, start, database_url, replaces=not options.once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch(
    children: list[_Child], forward: _Forward, start: Any, database_url: str, *, replaces: bool
) -> int:
    """Wait for every child; replace one that died while the worker runs."""
    running = list(children)
    waiting: list[tuple[float, _Child]] = []  # (when, a dead child's place) to start again
    deaths: deque[float] = deque()
    failed = 0
    while running or waiting:
        timeout = POLL_S if waiting else None
        multiprocessing.connection.wait([c.process.sentinel for c in running], timeout)
        for child in [c for c in running if not c.process.is_alive()]:
            running.remove(child)
            child.process.join()
            code = child.process.exitcode
            if forward.stopping or not replaces or code == 0:
                # a child still starting when we forwarded SIGTERM ends by it: stopped
                stopped = (0, -signal.SIGTERM) if forward.stopping else (0,)
                failed += code not in stopped
                continue
            now = time.monotonic()
            deaths.append(now)
            while deaths[0] < now - DEATHS_WINDOW_S:
                deaths.popleft()
            given_up = len(deaths) > DEATHS_MAX
            delay = (
                0.0
                if len(deaths) == 1
                else backoff(len(deaths) - 1, base_s=RESPAWN_BASE_S, max_s=RESPAWN_MAX_S)
            )
            logger.error(
                "worker process %s (lane %s, pid %s) died, %s; its jobs stopped: %s; %s",
                child.name,
                child.options.lane,
                child.process.pid,
                how_it_ended(code),
                ", ".join(child.jobs()) or "none",
                f"{len(deaths)} deaths in {DEATHS_WINDOW_S:.0f} s: stopping the worker"
                if given_up
                else f"starting another in {delay:.0f} s",
                extra={"action": "worker_child_died"},
            )
            # its heartbeat row goes now (not once silent for 30 s) and the death is counted
            workers.child_died(
                database_url,
                child.process.pid,
                lane=child.options.lane,
                how=how_it_ended(code),
                jobs=child.jobs(),
            )
            if given_up:
                failed += 1
                forward(signal.SIGTERM, None)
            else:
                waiting.append((now + delay, child))
        if forward.stopping:
            waiting.clear()
        for due in [w for w in waiting if w[0] <= time.monotonic()]:
            waiting.remove(due)
            child = due[1]
            held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:  # held as at the first start: a stop from now on reaches the new child too
                if forward.stopping:
                    break
                start(child)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
            running.append(child)
            logger.warning(
                "worker process %s (lane %s) started again, pid %s",
                child.name,
                child.options.lane,
                child.process.pid,
                extra={"action": "worker_child_restarted"},
            )
    return failed
