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
import time
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


def _executor_rows(url: str, executor_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tether.workflow_executor WHERE executor_id = %s", (executor_id,)
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(60)
def test_a_clean_stop_leaves_no_executor_row_to_resume(db_url: str) -> None:
    """The row a clean stop left went silent, and the next worker warned that it "resumed the
    pending workflows" of that dead executor though nothing was pending."""
    workflows.launch(db_url, executor_id="test-clean-stop")
    deadline = time.monotonic() + 10
    while not _executor_rows(db_url, "test-clean-stop") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _executor_rows(db_url, "test-clean-stop") == 1  # its heartbeat
    workflows.shutdown()
    assert _executor_rows(db_url, "test-clean-stop") == 0


@pytest.mark.timeout(60)
def test_a_stop_with_pending_workflows_keeps_the_row_for_their_resumption(db_url: str) -> None:
    workflows.launch(db_url, executor_id="test-pending-stop")
    with psycopg.connect(db_url, autocommit=True) as conn:  # a workflow cut short by the stop
        conn.execute(
            "INSERT INTO tether_dbos.workflow_status"
            " (workflow_uuid, status, name, executor_id, application_version)"
            " VALUES ('test-cut-short', 'PENDING', 'test-unregistered', %s, %s)",
            ("test-pending-stop", workflows.APP_VERSION),
        )
    try:
        workflows.shutdown()
        assert _executor_rows(db_url, "test-pending-stop") == 1
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM tether_dbos.workflow_status WHERE workflow_uuid = 'test-cut-short'"
            )


@pytest.mark.timeout(60)
def test_forgetting_a_silent_executor_with_nothing_pending_warns_of_nothing(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tether.workflow_executor VALUES ('test-old-clean', now() - interval '1 h')"
        )
    workflows.launch(db_url, executor_id="test-recoverer")
    try:
        with caplog.at_level(logging.INFO, logger=workflows.logger.name):
            assert workflows.recover_dead(db_url, 30) == ["test-old-clean"]
    finally:
        workflows.shutdown()
    ours = [r for r in caplog.records if r.name == workflows.logger.name]
    assert [r.levelno for r in ours] == [logging.INFO], [r.getMessage() for r in ours]
    assert "nothing of theirs to resume" in ours[0].getMessage()
    assert not any("resumed" in r.getMessage() for r in ours)
