"""A launch that fails (the database down) leaves nothing half-started, so a retry works.

DBOS marks itself launched before it connects; kept, that instance made every later launch a
no-op with no queue threads while the heartbeat said the executor was alive. Also: the library's
log lines go through our formatter (JSON, masking), not a console handler of its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Iterator

import psycopg
import pytest

from tether.core import workflows
from tether.core.logging import configure_logging

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"


@workflows.workflow("test-launch-double")
def _double(n: int) -> int:
    return 2 * n


def _heartbeats() -> int:
    return sum(t.name == "dbos-heartbeat" and t.is_alive() for t in threading.enumerate())


@pytest.mark.timeout(60)  # without the fix the workflow waits for an executor forever
def test_after_a_failed_launch_the_next_launch_runs_workflows(db_url: str) -> None:
    before = _heartbeats()
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a refused port
        workflows.launch(UNREACHABLE, executor_id="test-launch-down")
    assert _heartbeats() == before  # no executor, so no sign of life for one
    workflows.launch(db_url, executor_id="test-launch-up")
    try:
        wid = workflows.start("test-launch-1", _double, 21)
        assert workflows.result(wid) == 42
        assert workflows.status(db_url, wid) == "SUCCESS"
    finally:
        workflows.shutdown()


@pytest.mark.timeout(60)
def test_a_launch_failing_after_the_connection_is_discarded_too(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = workflows.QueueSpec(name="test-launch-q", worker_concurrency=1, global_concurrency=1)

    def refuse(*_: object, **__: object) -> None:
        raise psycopg.OperationalError("connection lost")

    with monkeypatch.context() as m:
        m.setattr(workflows.DBOS, "register_queue", refuse)
        with pytest.raises(psycopg.OperationalError):
            workflows.launch(db_url, executor_id="test-launch-half", queues=[bad])
    workflows.launch(db_url, executor_id="test-launch-whole", queues=[bad])
    try:
        handle = workflows.enqueue("test-launch-q", "test-launch-2", _double, 5)
        assert handle.get_result() == 10
    finally:
        workflows.shutdown()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Our handler (JSON lines), writing to a buffer; the root's handlers are restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        configure_logging("INFO", as_json=True)
    yield out
    root.handlers[:], level = saved
    root.setLevel(level)


def test_the_library_logs_through_our_formatter(json_logs: io.StringIO) -> None:
    with pytest.raises(Exception):  # noqa: B017
        workflows.launch(UNREACHABLE, executor_id="test-launch-logs")
    logging.getLogger("dbos").warning("retry for 12345678901")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line[:1] == "{"]
    ours = [line for line in lines if line["logger"] == "dbos"]
    assert any(line["message"].startswith("DBOS failed to launch") for line in ours), lines
    assert any(line["message"] == "retry for <HIDDEN>" for line in ours), lines
