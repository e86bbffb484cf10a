"""An outage's repeated warnings, through tether's real logging configuration: the first of a
kind as it is, then a count, not one line (often a traceback) per retry of every library loop."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator

import psycopg
import pytest

from tether.core import logging as tether_logging
from tether.core.logging import configure_logging


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """tether's logging (text lines) into a buffer, repeats counted over 0.3 s; the loggers it
    touched are restored after."""
    monkeypatch.setattr(tether_logging, "REPEAT_WINDOW_S", 0.3)
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "psycopg.pool", "httpx")
    ours = ("dbos", "tether.x", "tether.access")  # as the process would have them
    touched = [logging.getLogger(name) for name in (*names, "httpcore", "pgserver", *ours)]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in touched]
    for lg in touched[-len(ours) :]:  # another test may have launched DBOS or run uvicorn
        lg.handlers[:], lg.propagate, lg.disabled = [], True, False
        lg.setLevel(logging.NOTSET)
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        configure_logging("INFO")
    yield out
    for lg, (handlers, level, propagate, disabled) in zip(touched, saved, strict=True):
        lg.handlers[:], lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)


def launch_failure(why: str = "connection failed: Connection refused") -> Exception:
    try:
        raise psycopg.OperationalError(why)
    except psycopg.OperationalError as exc:
        return exc


def test_repeats_are_counted_and_tracebacks_kept_for_the_first(logs: io.StringIO) -> None:
    pool, dbos = logging.getLogger("psycopg.pool"), logging.getLogger("dbos")
    refused = psycopg.OperationalError("connection failed: Connection refused")
    for _ in range(50):  # psycopg's pool, on every attempt to reconnect
        pool.warning("error connecting in %r: %s", "tether", refused)
    for _ in range(5):  # DBOS on every restart of the job that launches it
        dbos.error("DBOS failed to launch:", exc_info=launch_failure())
    dbos.error("another failure")  # another template: its first line too
    # another error, same template: its own traceback
    dbos.error("DBOS failed to launch:", exc_info=launch_failure("password authentication"))
    for _ in range(3):
        logging.getLogger("tether.access").info("GET /healthz 200")  # below WARNING: all
    lines = logs.getvalue().splitlines()
    assert sum("error connecting in 'tether'" in line for line in lines) == 1
    assert sum("DBOS failed to launch" in line for line in lines) == 2
    assert sum(line.startswith("Traceback") for line in lines) == 2
    assert sum("ERROR dbos another failure" in line for line in lines) == 1
    assert sum("GET /healthz 200" in line for line in lines) == 3

    time.sleep(0.35)  # the windows end: any record has how many were held back said
    logging.getLogger("tether.x").warning("something else")
    later = [line.split(" ", 2)[2] for line in logs.getvalue().splitlines()[len(lines) :]]
    assert later == [
        "WARNING psycopg.pool 49 similar records suppressed in the last 0 s, the last:"
        " error connecting in 'tether': connection failed: Connection refused"
        " action=log_suppressed",
        "ERROR dbos 4 similar records suppressed in the last 0 s, the last: DBOS failed to"
        " launch: action=log_suppressed",
        "WARNING tether.x something else",
    ]

    time.sleep(0.35)  # a quiet window: the next failure is logged, its traceback not again
    dbos.error("DBOS failed to launch:", exc_info=launch_failure())
    last = [line.split(" ", 2)[2] for line in logs.getvalue().splitlines()[len(lines) + 3 :]]
    assert last == [
        "ERROR dbos DBOS failed to launch:"
        " error=OperationalError: connection failed: Connection refused"
    ]


def test_a_summary_shows_the_last_message_held_back_formatted_and_masked(
    logs: io.StringIO,
) -> None:
    """The summary printed the raw template ("job %s still failing for %.0f s ..."); now the
    last repeat's own text, masked like every line."""
    job = logging.getLogger("tether.x")
    for i in range(3):
        job.warning("job %s still failing for %.0f s, %s", "a.b", 10.0 * i, "password=x")
    time.sleep(0.35)
    job.warning("something else")
    lines = [line.split(" ", 2)[2] for line in logs.getvalue().splitlines()]
    assert lines == [
        "WARNING tether.x job a.b still failing for 0 s, password=<HIDDEN>",
        "WARNING tether.x 2 similar records suppressed in the last 0 s, the last:"
        " job a.b still failing for 20 s, password=<HIDDEN> action=log_suppressed",
        "WARNING tether.x something else",
    ]


def test_a_librarys_burst_of_different_messages_is_one_kind_per_exception_type(
    logs: io.StringIO,
) -> None:
    """At an outage's start DBOS' threads (queues, schedules, locks) log dozens of different
    messages with the same error: ~700 lines in a second. A library's kind is its logger, level
    and exception, whatever the message; tether's own loggers keep their kinds by template."""
    dbos = logging.getLogger("dbos")
    for i in range(20):
        dbos.error("queue thread %d: listing queues failed", i, exc_info=launch_failure())
        dbos.error(f"schedule {i} failed", exc_info=launch_failure())
    for port in (5432, 5433):  # another error (digits aside): shown, with its traceback
        dbos.error("background jobs lock", exc_info=launch_failure(f"port {port}: no password"))
    for i in range(3):
        logging.getLogger("tether.x").warning(f"ours {i}")
    lines = logs.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines if " dbos " in line] == [
        "ERROR dbos queue thread 0: listing queues failed",
        "ERROR dbos background jobs lock",
    ]
    assert sum(line.startswith("Traceback") for line in lines) == 2
    assert sum("WARNING tether.x ours" in line for line in lines) == 3
    time.sleep(0.35)
    logging.getLogger("tether.x").warning("later")
    assert "ERROR dbos 39 similar records suppressed in the last 0 s, the last: schedule 19" in (
        logs.getvalue()
    )
