"""``tether worker`` through an outage: the log says what failed once, and the truth after."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tether import worker
from tether.core.capability import Job, JobContext


async def test_a_backoff_longer_than_the_recovery_period_is_no_recovery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The "recovered" timer ran on through the backoff, so a pause of 16 s or more (recovery
    after 10 s) logged "job recovered" mid-outage and forgot the errors seen: the next failure
    printed its traceback again. Now only a run that lasts the period is a recovery."""
    monkeypatch.setattr(worker, "RESTART_BASE_S", 0.1)  # pauses 0.1, 0.2, 0.4 s
    monkeypatch.setattr(worker, "RECOVERED_AFTER_S", 0.15)
    failures = 4
    recovered = asyncio.Event()

    async def down(ctx: JobContext) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("database down")
        await ctx.stop.wait()

    def note(record: logging.LogRecord) -> bool:
        if getattr(record, "action", None) == "job_recovered":
            recovered.set()
        return True

    stop = asyncio.Event()
    ctx = JobContext(runtime=None, service=None, stop=stop, once=False, worker_id="w")  # type: ignore[arg-type]
    worker.logger.addFilter(note)
    try:
        with caplog.at_level(logging.INFO, logger=worker.logger.name):
            job = asyncio.create_task(worker.supervised(Job(name="db", run=down), ctx, "t.db"))
            await asyncio.wait_for(recovered.wait(), 10)
            stop.set()
            await job
    finally:
        worker.logger.removeFilter(note)
    lines = [r for r in caplog.records if r.name == worker.logger.name]
    assert [(getattr(r, "action", None), r.exc_info is not None) for r in lines] == [
        ("job_restarted", True),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_still_failing", False),
        ("job_recovered", False),  # once it really ran 0.15 s
    ]
    assert "4 failure(s)" in lines[-1].getMessage()
