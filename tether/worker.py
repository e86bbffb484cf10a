"""``tether worker``: every capability's background jobs, in one or more processes.

Each process opens one runtime, builds the service of each capability that has jobs and runs
all its jobs concurrently until SIGTERM / SIGINT. Children stop with their parent: the parent
forwards SIGTERM, and a child whose parent died (even by kill -9) stops by itself.

Children are forked from a parent that has imported the selected capabilities' services and jobs
(and holds no thread, loop or connection): each starts at once and shares those pages, instead
of a spawned interpreter importing everything again (~0.3 s of CPU per child). With a metrics
port they are spawned: prometheus_client must be imported after its multiprocess directory is set.

Priority: with ``TETHER_WORKER_DEFERRED_NICE`` > 0 each of the ``--processes`` is two, one
running the jobs a sender waits on (intake consumers) at normal priority and one running the
deferred jobs (``Job.deferred``: outboxes, receipts, status publishing) at that nice value. On a
saturated machine the OS then gives the intake the cores first and the deferred work lags behind
(it catches up when the load falls) instead of the intake queueing behind it in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from prometheus_client import Counter

from tether.capabilities import CAPABILITIES
from tether.core import db, loop, workers
from tether.core.bootstrap import open_runtime
from tether.core.capability import Capability, Job, JobContext, Ref
from tether.core.errors import one_line
from tether.core.jobs import backoff, default_worker_id, idle
from tether.core.logging import configure_logging
from tether.core.settings import Settings

RESTART_BASE_S = 1.0  # the first pause before a failed job is started again, doubling
RESTART_MAX_S = 60.0  # the longest such pause
RECOVERED_AFTER_S = 10.0  # a restarted job running this long without failing has recovered
JOB_RESTARTS = Counter(
    "tether_worker_job_restarts_total", "Jobs started again after they failed", ["job"]
)
logger = logging.getLogger(__name__)

PARENT_CHECK_S = 0.5
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

Lane = Literal["all", "prompt", "deferred"]  # which jobs of the selected capabilities


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    once: bool = False
    only: tuple[str, ...] = ()  # capability names; empty = every capability with jobs
    worker_id: str | None = None
    lane: Lane = "all"  # "prompt": the jobs a sender waits on; "deferred": ``Job.deferred``

    def runs(self, job: Job) -> bool:
        return self.lane == "all" or job.deferred == (self.lane == "deferred")


def selected(options: WorkerOptions) -> list[Capability]:
    """The capabilities whose jobs this worker runs."""
    unknown = set(options.only) - {c.name for c in CAPABILITIES}
    if unknown:
        known = ", ".join(c.name for c in CAPABILITIES if c.jobs)
        raise ValueError(f"unknown capability {sorted(unknown)}; with jobs: {known}")
    return [c for c in CAPABILITIES if c.jobs and (not options.only or c.name in options.only)]


async def run_jobs(
    settings: Settings,
    database_url: str,
    options: WorkerOptions,
    stop: asyncio.Event,
    *,
    overrides: Sequence[Any] = (),
) -> None:
    """One worker process's work: every selected capability's jobs, until ``stop``."""
    worker_id = options.worker_id or default_worker_id()
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            open_runtime(settings, database_url=database_url, overrides=overrides)
        )
        tasks: list[asyncio.Task[None]] = []
        for capability in selected(options):
            jobs = [job for job in capability.jobs if options.runs(job)]
            if not jobs:
                continue
            service = await stack.enter_async_context(capability.build(runtime))
            ctx = JobContext(
                runtime=runtime, service=service, stop=stop, once=options.once, worker_id=worker_id
            )
            tasks += [
                asyncio.create_task(
                    supervised(job, ctx, f"{capability.name}.{job.name}"),
                    name=f"{capability.name}.{job.name}",
                )
                for job in jobs
            ]
        # the console's "workers: N alive": a row beaten every few seconds, deleted at the end,
        # listing the jobs still running (beaten again as soon as one ends)
        ended = asyncio.Event()
        for task in tasks:
            task.add_done_callback(lambda _: ended.set())
        beat = asyncio.create_task(
            workers.heartbeat(
                runtime.pool,
                lane=options.lane,
                jobs=lambda: [t.get_name() for t in tasks if not t.done()],
                stop=stop,
                changed=ended,
            ),
            name="heartbeat",
        )
        try:
            await asyncio.sleep(0)  # each job past its first step (its lazy imports)
            with loop.startup_frozen():
                await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await beat  # its row deleted: a clean stop is not a dead worker


async def supervised(job: Job, ctx: JobContext, name: str) -> None:
    """Run a job; should it fail, log it and start it again after a backoff (1 s doubling to a
    minute), so one failing job (an upstream it cannot reach, a bug on one row) never stops the
    process's other jobs. A run with ``once`` still fails, for the caller to see."""
    failures = 0
    streak = _Streak(name)
    running = asyncio.get_running_loop()
    while True:
        started = running.time()
        # a run that lasts RECOVERED_AFTER_S ends the streak of failures (its "recovered" line);
        # only while the job runs: a backoff longer than that is no recovery
        timer = running.call_later(RECOVERED_AFTER_S, streak.recovered) if streak.count else None
        try:
            await job.run(ctx)
        except Exception as exc:
            if ctx.once or ctx.stop.is_set():
                raise
            error = exc
        else:
            if not ctx.stop.is_set():
                streak.recovered()
            return
        finally:
            if timer is not None:
                timer.cancel()
        ran_s = running.time() - started
        failures = 1 if ran_s > RESTART_MAX_S else failures + 1  # a long good run: anew
        delay = backoff(failures, base_s=RESTART_BASE_S, max_s=RESTART_MAX_S)
        JOB_RESTARTS.labels(name).inc()
        streak.failed(error, delay)
        await idle(ctx.stop, None, delay)
        if ctx.stop.is_set():
            return


class _Streak:
    """A job's failures in a row, so that an outage (the database down for an hour) logs one
    traceback, then one short line per restart, then how long it lasted: not one traceback per
    restart. A different error in the streak gets its traceback too (``error_key``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.since = 0.0  # monotonic time of the streak's first failure
        self.seen: set[str] = set()  # errors (type and message) already logged with a traceback

    def failed(self, exc: Exception, delay: float) -> None:
        now = time.monotonic()
        if not self.count:
            self.since = now
        self.count += 1
        error = f"{type(exc).__name__}: {exc}".strip()
        if (key := error_key(exc)) not in self.seen:
            self.seen.add(key)
            logger.error(
                "job %s failed (%d in a row); started again in %.0f s",
                self.name,
                self.count,
                delay,
                exc_info=exc,
                extra={"action": "job_restarted"},
            )
            return
        logger.warning(
            "job %s still failing for %.0f s (%d in a row, same error: %s); again in %.0f s",
            self.name,
            now - self.since,
            self.count,
            error.splitlines()[0][:200],
            delay,
            extra={"action": "job_still_failing"},
        )

    def recovered(self) -> None:
        if not self.count:
            return
        logger.info(
            "job %s recovered after %.0f s (%d failure(s) in a row)",
            self.name,
            time.monotonic() - self.since,
            self.count,
            extra={"action": "job_recovered"},
        )
        self.count = 0
        self.seen.clear()


def error_key(exc: BaseException) -> str:
    """An error as the streak knows it: its root cause's type and first line, digits masked.
    In an outage a DBOS job failed first on psycopg's ``OperationalError`` and then
    on sqlalchemy's wrapping of the same one (DBOS' launch): two tracebacks for one error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return re.sub(r"\d+", "N", one_line(exc))


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Set ``stop`` when the parent process is gone (re-parented children see a new ppid)."""
    while not stop.is_set():
        if os.getppid() != parent:
            logger.warning("parent process died; stopping", extra={"action": "parent_gone"})
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_CHECK_S)


def process_main(
    settings: Settings, database_url: str, options: WorkerOptions, parent: int
) -> None:
    """Entry of a worker process (it shares nothing live with its parent but the database)."""
    for sig in STOP_SIGNALS:  # a replacement forked from the parent inherits its forwarding
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held while it was started
    pid = os.getpid()
    # every line says which process wrote it: children of one worker wrote identical lines
    configure_logging(
        settings.log_level, settings.log_json, fields={"worker": f"{options.lane}:{pid}"}
    )
    if options.lane == "deferred":
        os.nice(settings.worker_deferred_nice)

    async def main() -> None:
        stop = asyncio.Event()
        why: list[str] = []  # what ended the process, first cause first

        def stopped_by(name: str) -> None:
            why.append(f"stopped by {name}")
            stop.set()

        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                running.add_signal_handler(sig, stopped_by, sig.name)
        watcher = asyncio.create_task(_watch_parent(parent, stop))
        try:
            named = db.with_application_name(database_url, f"tether worker {options.lane}")
            await run_jobs(settings, named, options, stop)
        except Exception as exc:
            why.append(f"failed: {one_line(exc)}")
            raise
        finally:
            stop.set()
            await watcher
            if os.getppid() != parent:
                why.append("its parent died")
            why.append("its work is done (--once)" if options.once else "all its jobs ended")
            logger.info(
                "worker process done (lane %s, pid %d): %s",
                options.lane,
                pid,
                why[0],
                extra={"action": "worker_done"},
            )

    loop.run(main())


def run_processes(
    settings: Settings,
    database_url: str,
    processes: int,
    options: WorkerOptions,
    *,
    metrics: tuple[str, int] | None = None,
) -> int:
    """Start ``processes`` worker processes and wait; returns how many failed.

    SIGTERM or SIGINT to this parent stops every child cleanly (forwarded as SIGTERM); a child
    that dies meanwhile is replaced (``worker_children``). With
    ``metrics`` (host, port) the children's counters are served there, summed (core/metrics.py),
    to callers with an API key of scope ``read``.
    """
    from tether.worker_children import run_children

    selected(options)  # fail fast on an unknown --only
    if metrics is None:
        return run_children(settings, database_url, processes, options, {})
    from tether.core import keys
    from tether.core.metrics import children_metrics  # the web stack, only for the metrics port

    allowed = partial(keys.header_allows, database_url, scope="read")
    with children_metrics(*metrics, authorized=allowed) as env:
        return run_children(settings, database_url, processes, options, env)


def _forkable(options: WorkerOptions, env: dict[str, str]) -> bool:
    """Whether children can be forked; if so, what they run is imported first."""
    if env or threading.active_count() > 1:  # a metrics port, or a thread a fork would break
        return False
    for capability in selected(options):
        for target in (capability.build, *(job.run for job in capability.jobs)):
            if isinstance(target, Ref):
                target.load()
    return True


def lanes(settings: Settings, options: WorkerOptions) -> list[Lane]:
    """The kinds of worker process to start, ``--processes`` of each: one kind running every
    job, or (``worker_deferred_nice`` > 0) the prompt and the deferred jobs apart, only the
    kinds that have a job."""
    if settings.worker_deferred_nice == 0:
        return ["all"]
    jobs = [job for capability in selected(options) for job in capability.jobs]
    kinds: list[Lane] = ["prompt", "deferred"]
    return [lane for lane in kinds if any(replace(options, lane=lane).runs(j) for j in jobs)]
