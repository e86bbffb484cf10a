"""The run as a durable workflow (core/workflows: DBOS on our PostgreSQL).

Workflow ``accruals-run-YYYY-MM-DD`` (``-rN`` for the N-th attempt of a run date): one step per
stage; the pricing is one queued child workflow per chunk (``<id>-chunk-NNNNN``) on the queue
``accruals-chunks``, so every executor (each ``tether worker``, and a CLI that runs the run in
the foreground) prices chunks, with bounded concurrency per worker and overall. A step that
finished is never redone by a resumed workflow; a step cut short is redone whole (each stage is
one transaction over the run date's own rows, so redoing it gives the same rows).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tether.accruals import plan, retention, run
from tether.accruals.settings import AccrualsSettings
from tether.core import workflows

logger = logging.getLogger(__name__)
QUEUE = "accruals-chunks"
RUNS = "accruals-runs"
SCHEDULE = "accruals-monthly"
PURGE_SCHEDULE = "accruals-purge"
_ctx: dict[str, Any] = {}


def configure(url: str, settings: AccrualsSettings) -> None:
    """Where the steps of this process find the database and settings (not in workflow inputs:
    they are stored, and a URL may carry a password)."""
    _ctx["url"], _ctx["settings"] = url, settings


def _url() -> str:
    url: str = _ctx["url"]
    return url


def _s(fixed: dict[str, Any] | None = None) -> AccrualsSettings:
    """This process's settings with the run's ``fixed`` ones (its submit stored them): the
    figures never depend on which executor runs a step or a chunk."""
    settings: AccrualsSettings = _ctx["settings"]
    return settings.for_run(fixed)


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@workflows.step("accruals.prepare")
def _prepare(period_end: str, as_at: str, attempt: int, fixed: dict[str, Any] | None) -> int:
    return run.prepare(_url(), _d(period_end), _t(as_at), attempt, _s(fixed))


@workflows.step("accruals.profiles")
def _profiles(period_end: str, as_at: str, fixed: dict[str, Any] | None) -> None:
    run.profiles(_url(), _d(period_end), _t(as_at), _s(fixed))


@workflows.step("accruals.check")
def _check(period_end: str, fixed: dict[str, Any] | None) -> None:
    run.check(_url(), _d(period_end), _s(fixed))


@workflows.step("accruals.scalars")
def _scalars(period_end: str, as_at: str, fixed: dict[str, Any] | None) -> None:
    run.scalars(_url(), _d(period_end), _t(as_at), _s(fixed))


@workflows.step("accruals.mark")
def _mark(period_end: str, name: str, status: str, detail: dict[str, Any]) -> None:
    run.mark(_url(), _d(period_end), name, status, detail)


@workflows.step("accruals.price_chunk")
def _price_chunk(period_end: str, as_at: str, chunk: int, fixed: dict[str, Any] | None) -> int:
    if _s().chunk_pause_s:
        time.sleep(_s().chunk_pause_s)
    ids = run.chunk_ids(_url(), _d(period_end), chunk)
    return run.price(_url(), _d(period_end), _t(as_at), ids, _s(fixed), chunk)


@workflows.step("accruals.price_failed")
def _price_failed(period_end: str, as_at: str, fixed: dict[str, Any] | None) -> dict[str, int]:
    ids = run.chunk_ids(_url(), _d(period_end), None)
    failed = run.price(_url(), _d(period_end), _t(as_at), ids, _s(fixed)) if ids else 0
    return {"resubmitted": len(ids), "failed": failed}


@workflows.step("accruals.export")
def _export(period_end: str, as_at: str) -> dict[str, Any]:
    return run.export(_url(), _d(period_end), _t(as_at))


@workflows.workflow("accruals.chunk")
def chunk_workflow(
    period_end: str, as_at: str, chunk: int, fixed: dict[str, Any] | None = None
) -> int:
    """Price one chunk of accounts (queued; any executor) with the run's fixed settings."""
    return _price_chunk(period_end, as_at, chunk, fixed)


@workflows.workflow("accruals.run")
def run_workflow(
    period_end: str, as_at: str, attempt: int, fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole run of one period end; ``fixed``: the settings its submit fixed (None: a
    workflow queued before they were, which takes this process's)."""
    chunks = _prepare(period_end, as_at, attempt, fixed)
    _profiles(period_end, as_at, fixed)
    _check(period_end, fixed)
    _scalars(period_end, as_at, fixed)
    _mark(period_end, "price", "running", {})
    me = workflows.current_id()
    handles = [
        workflows.enqueue(QUEUE, f"{me}-chunk-{c:05d}", chunk_workflow, period_end, as_at, c, fixed)
        for c in range(chunks)
    ]
    failed = sum(int(h.get_result(polling_interval_sec=0.2)) for h in handles)
    _mark(period_end, "price", "done", {"chunks": chunks, "failed": failed})
    return _export(period_end, as_at)


@workflows.workflow("accruals.resubmit")
def resubmit_workflow(
    period_end: str, as_at: str, fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Price the run's failed accounts again (nothing else) with its settings, then re-export."""
    _price_failed(period_end, as_at, fixed)
    return _export(period_end, as_at)


@workflows.step("accruals.scheduled_start")
def _scheduled_start(period_end: str) -> str | None:
    attempt, running = plan.next_attempt(plan.latest(_url(), _d(period_end)))
    if attempt > 1 or running:
        return None  # the schedule never re-runs a run date someone already ran
    try:
        return submit(_url(), _s(), _d(period_end), None)
    except plan.RunRefused as exc:  # e.g. a schedule firing before the default as-at
        logger.error(
            "scheduled run of %s refused: %s; fix TETHER_ACCRUALS_SCHEDULE, then run it by hand",
            period_end,
            exc,
            extra={"action": "accruals_schedule_refused"},
        )
        return None


@workflows.workflow("accruals.scheduled")
def scheduled_workflow(scheduled_at: datetime, context: Any) -> None:
    """Fired by the schedule: run the month that ended before ``scheduled_at``."""
    when = scheduled_at if isinstance(scheduled_at, datetime) else _t(str(scheduled_at))
    period_end = when.date().replace(day=1) - timedelta(days=1)
    _scheduled_start(period_end.isoformat())


@workflows.step("accruals.purge")
def _purge() -> dict[str, Any]:
    result = retention.purge(_url(), _s())
    logger.info(
        "purged superseded meter data kept before %s: %d channel-days, %d basic reads",
        result.horizon.isoformat(),
        result.channel_days,
        result.basic_reads,
        extra={"action": "accruals_purged"},
    )
    if result.held_by is not None:
        logger.warning("purge: %s", result.held_back(), extra={"action": "accruals_purge_held"})
    return {
        "horizon": result.horizon.isoformat(),
        "channel_days": result.channel_days,
        "basic_reads": result.basic_reads,
    }


@workflows.workflow("accruals.purge_scheduled")
def purge_workflow(scheduled_at: datetime, context: Any) -> None:
    """Fired by the purge schedule, so storage stays bounded without an operator's cron: the
    same purge as ``tether accruals purge-superseded`` (one executor runs each firing)."""
    _purge()


def queues(settings: AccrualsSettings) -> list[workflows.QueueSpec]:
    """Runs (one at a time per worker) and their chunks (bounded per worker and overall)."""
    return [
        workflows.QueueSpec(name=RUNS, worker_concurrency=1, global_concurrency=4),
        workflows.QueueSpec(
            name=QUEUE,
            worker_concurrency=settings.worker_concurrency,
            global_concurrency=settings.global_concurrency,
            polling_interval_s=0.1,  # a chunk is ~1 s of work: a 0.5 s poll idled workers ~20 %
        ),
    ]


def submit(
    url: str,
    settings: AccrualsSettings,
    period_end: date,
    as_at: datetime | None,
    *,
    new_settings: bool = False,
) -> str:
    """Queue (or join, when one is under way) the run of ``period_end``; its workflow id.

    A finished or failed run date starts a new attempt (``-rN``), which first deletes the run
    date's own rows, then recomputes them with the as-at and settings stored with it (see
    plan.plan; ``new_settings``: this process's); refused (plan.RunRefused) for a period end not
    over or an as-at before it or in the future, (retention.SnapshotPurged) when versions as at
    its as-at were purged since."""
    fixed = plan.plan(url, settings, period_end, as_at, new_settings=new_settings)
    attempt, running = fixed.attempt, fixed.running
    state = workflows.status(url, running) if running else None
    if state in ("PENDING", "ENQUEUED"):
        return str(running)  # under way: join it
    if running and state is not None:
        attempt += 1  # marked running, but its workflow ended (cancelled, or lost its worker)
    retention.check(url, fixed.as_at)
    wid = run.workflow_id(period_end, attempt)
    workflows.register_queues(url, queues(settings))
    args = (period_end.isoformat(), fixed.as_at.isoformat(), attempt, fixed.settings)
    return workflows.submit(url, RUNS, "accruals.run", wid, *args)


def resubmit(url: str, settings: AccrualsSettings, period_end: date) -> str:
    """Re-price the failed accounts of the run date's current attempt (its as-at and stored
    settings); the workflow id."""
    found = plan.latest(url, period_end)
    if found is None:
        raise LookupError(f"no run for {period_end}")
    retention.check(url, found.as_at)  # its accounts would be priced from another snapshot
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workflows.register_queues(url, queues(settings))
    wid = f"{found.workflow_id}-resubmit-{stamp}"
    args = (period_end.isoformat(), found.as_at.isoformat(), found.settings)
    return workflows.submit(url, RUNS, "accruals.resubmit", wid, *args)


def start_executor(
    url: str, settings: AccrualsSettings, executor_id: str, *, migrate: bool = True
) -> None:
    """Make this process an executor of accruals work (and the schedule's host)."""
    configure(url, settings)
    workflows.launch(url, executor_id=executor_id, queues=queues(settings), migrate=migrate)
    if settings.schedule:
        workflows.schedule(SCHEDULE, settings.schedule, scheduled_workflow)
    if settings.purge_schedule:
        workflows.schedule(PURGE_SCHEDULE, settings.purge_schedule, purge_workflow)
