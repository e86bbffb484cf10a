"""Durable workflows on our PostgreSQL (DBOS Transact), behind one small interface.

The only module that imports ``dbos``. Workflows and steps are declared with ``workflow`` and
``step`` at import time; a process becomes an executor with ``launch`` (the worker, or a CLI run)
and from then on runs its share of queued work. State lives in the schema ``tether_dbos`` of the
application database; inputs and outputs are JSON (portable serializer), never pickles.

Each executor has its own id and writes a heartbeat; ``recover_dead`` (called by every live
worker) re-enqueues the pending workflows of executors silent for too long, so a workflow whose
process was killed is resumed by a surviving worker; a restarted executor resumes its own at once.
A clean stop (``shutdown``) removes the executor's heartbeat row unless it leaves workflows
pending, so the next start has nothing to resume and says so only when it does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import psycopg
from dbos import (
    DBOS,
    DBOSClient,
    DBOSConfig,
    DBOSPortableJSONSerializer,
    EnqueueOptions,
    SetWorkflowID,
    WorkflowHandle,
)

from tether.core.sql import load_queries

logger = logging.getLogger(__name__)
Q = load_queries("tether.core", "workflows.sql")
logging.getLogger("dbos").setLevel(logging.WARNING)  # its INFO lines are per connection/launch

SCHEMA = "tether_dbos"
APP_VERSION = "tether-1"  # shared by every executor, so any of them may recover any workflow

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    name: str
    worker_concurrency: int
    global_concurrency: int
    polling_interval_s: float = 0.5  # an idle executor's wait for the queue's next item


def workflow(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a durable workflow: a deterministic function that calls steps."""
    return DBOS.workflow(name=name)


def step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a step: its result is recorded; a resumed workflow skips finished steps."""
    return DBOS.step(name=name)


def _sqlalchemy_url(url: str) -> str:
    """Our libpq URL or keyword string as the URL form DBOS (SQLAlchemy) wants.

    A Unix-socket host (a folder, as the embedded server uses) goes in the query string: in the
    authority part it would be read as a host name and the library would fall back to the
    default socket, i.e. another server.
    """
    from sqlalchemy.engine import URL

    info = psycopg.conninfo.conninfo_to_dict(url)
    host = str(info.get("host", "127.0.0.1"))
    port = int(str(info.get("port") or 5432))
    on_socket = host.startswith("/")
    built = URL.create(
        "postgresql",
        username=str(info.get("user", "postgres")),
        password=None if info.get("password") is None else str(info["password"]),
        host=None if on_socket else host,
        port=None if on_socket else port,
        database=str(info.get("dbname", "postgres")),
        query={"host": host, "port": str(port)} if on_socket else {},
    )
    return built.render_as_string(hide_password=False)


# A fresh event per launch: clearing a shared one could revive the previous launch's thread.
_heartbeat_stop = threading.Event()


@dataclass(frozen=True)
class _Executor:
    """What ``shutdown`` needs of the launched executor."""

    database_url: str
    executor_id: str
    heartbeat: threading.Thread


_launched: _Executor | None = None


def migrate(database_url: str) -> None:
    """Create or upgrade the workflow library's schema (``tether db upgrade``, as the owner)."""
    DBOS.migrate(_sqlalchemy_url(database_url), schema=SCHEMA)


def _installed(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.workflow_status",)).fetchone()
    return found is not None and found[0] is not None


def launch(
    database_url: str,
    *,
    executor_id: str,
    queues: Sequence[QueueSpec] = (),
    migrate: bool = True,
) -> None:
    """Make this process an executor: recover its own pending workflows, serve the queues.

    ``migrate=False`` (``--no-migrate``, a data-only role) only checks the library's schema;
    the owner creates it with ``tether db upgrade``.
    """
    config: DBOSConfig = {
        "name": "tether",
        "system_database_url": _sqlalchemy_url(database_url),
        "dbos_system_schema": SCHEMA,
        "executor_id": executor_id,
        "application_version": APP_VERSION,
        "serializer": DBOSPortableJSONSerializer(),
        "sys_db_pool_size": 4,
        "log_level": "WARNING",
        "run_migrations": migrate,
    }
    DBOS(config=config)
    _log_through_ours()
    try:
        DBOS.launch()
        for q in queues:
            DBOS.register_queue(q.name, **_limits(q), on_conflict="always_update")
    except BaseException:
        # DBOS marks itself launched before it connects: kept, the instance would make every
        # later launch a no-op ("already launched") with no queue threads, so a worker would
        # never recover from a database outage. Discarded, the next launch starts afresh.
        _discard()
        raise
    global _heartbeat_stop, _launched
    _heartbeat_stop = stop = threading.Event()
    heartbeat = threading.Thread(
        target=_beat, args=(database_url, executor_id, stop), daemon=True, name="dbos-heartbeat"
    )
    heartbeat.start()
    _launched = _Executor(database_url, executor_id, heartbeat)


def _beat(database_url: str, executor_id: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(Q["beat_executor"], {"executor_id": executor_id})
        except psycopg.Error as exc:
            logger.warning("heartbeat failed: %s", exc)
        stop.wait(2.0)


def _log_through_ours() -> None:
    """DBOS gives its logger a console handler and stops propagation: its lines would skip
    our formatter (JSON when asked, personal ids masked). Hand them back to the root's."""
    dbos_log = logging.getLogger("dbos")
    for handler in list(dbos_log.handlers):
        if isinstance(handler, logging.StreamHandler):
            dbos_log.removeHandler(handler)
    dbos_log.propagate = True


def _discard() -> None:
    """Drop a half-launched DBOS; a failure here must not hide the launch's own error."""
    try:
        DBOS.destroy(destroy_registry=False)
    except Exception:
        logger.exception("could not discard a failed workflow executor")


def shutdown() -> None:
    """Stop being an executor (pending work stays recorded for whoever resumes it)."""
    global _launched
    launched, _launched = _launched, None
    _heartbeat_stop.set()
    DBOS.destroy(destroy_registry=False)
    if launched is not None:
        launched.heartbeat.join(timeout=10)  # no beat may re-insert the row released below
        _release(launched.database_url, launched.executor_id)


def _release(database_url: str, executor_id: str) -> int:
    """Remove a stopped executor's heartbeat row unless it left workflows pending: kept, the
    row goes silent and a live worker resumes them (``recover_dead``). How many are pending."""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                Q["release_executor"], {"executor_id": executor_id, "app_version": APP_VERSION}
            ).fetchone()
    except psycopg.Error as exc:  # the database down: the row expires, nothing to resume
        logger.warning("could not release workflow executor %s: %s", executor_id, exc)
        return 0
    pending = int(row[0]) if row else 0
    if pending:
        logger.info(
            "executor %s stopped with %d pending workflow(s); a live worker resumes them",
            executor_id,
            pending,
        )
    return pending


def recover_dead(database_url: str, dead_after_s: float) -> list[str]:
    """Re-enqueue the pending workflows of executors silent for ``dead_after_s``; their ids."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(Q["forget_dead_executors"], {"dead_after_s": dead_after_s}).fetchall()
    dead = [r[0] for r in rows]
    if dead:
        resumed = DBOS._recover_pending_workflows(dead)
        if resumed:  # a silent executor with nothing pending (an old clean stop) is no news
            logger.warning(
                "resumed %d pending workflow(s) of dead executor(s) %s", len(resumed), dead
            )
        else:
            logger.info("forgot silent executor(s) %s: nothing of theirs to resume", dead)
    return dead


def start(workflow_id: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> str:
    """Start ``fn`` as workflow ``workflow_id`` (idempotent: a known id is not started twice)."""
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(fn, *args, **kwargs)
    return workflow_id


def enqueue(
    queue: str, workflow_id: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> WorkflowHandle[R]:
    """Put ``fn`` on ``queue`` as workflow ``workflow_id``; any executor may run it. Inside a
    workflow, wait with the handle's ``get_result()`` (recorded as a step)."""
    with SetWorkflowID(workflow_id):
        return DBOS.enqueue_workflow(queue, fn, *args, **kwargs)


def result(workflow_id: str) -> Any:
    """Wait for a workflow and return its result (raises what it raised); outside workflows."""
    return DBOS.retrieve_workflow(workflow_id).get_result()


def status(database_url: str, workflow_id: str) -> str | None:
    """PENDING, ENQUEUED, SUCCESS, ERROR, ... or None when unknown (no executor needed)."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.workflow_status",)).fetchone() == (
            None,
        ):
            return None
        row = conn.execute(
            f"SELECT status FROM {SCHEMA}.workflow_status WHERE workflow_uuid = %s",
            (workflow_id,),
        ).fetchone()
    return None if row is None else str(row[0])


def schedule(name: str, cron: str, fn: Callable[[datetime, Any], None]) -> None:
    """Run workflow ``fn(scheduled_time, None)`` on ``cron`` (UTC); replaces a same-named one.

    One upsert (``apply_schedules``): every worker process registers the same schedules as it
    starts, and a look-delete-create of its own lost to a concurrent one ("already exists")."""
    DBOS.apply_schedules([{"schedule_name": name, "workflow_fn": fn, "schedule": cron}])


def current_id() -> str:
    """Id of the workflow this code runs in (inside a workflow or step only)."""
    found = DBOS.workflow_id
    if found is None:
        raise RuntimeError("not inside a workflow")
    return found


def pending(prefix: str) -> list[str]:
    """Ids of unfinished (enqueued or running) workflows whose id starts with ``prefix``."""
    found = DBOS.list_workflows(workflow_id_prefix=prefix, status=["PENDING", "ENQUEUED"])
    return [w.workflow_id for w in found]


_migrated: set[str] = set()


def _client(database_url: str) -> DBOSClient:
    """A client on our schema, created first if no executor ever ran on this database."""
    url = _sqlalchemy_url(database_url)
    if url not in _migrated:
        if not _installed(database_url):  # no DDL when it exists: a data-only role may submit
            DBOS.migrate(url, schema=SCHEMA)
        _migrated.add(url)
    return DBOSClient(
        system_database_url=url,
        dbos_system_schema=SCHEMA,
        serializer=DBOSPortableJSONSerializer(),
        application_name="tether",
    )


def submit(database_url: str, queue: str, name: str, workflow_id: str, *args: Any) -> str:
    """Enqueue workflow ``name`` from any process (no executor needed): a worker runs it. An id
    already in use attaches to that workflow instead of starting another."""
    client = _client(database_url)
    try:
        options: EnqueueOptions = {
            "queue_name": queue,
            "workflow_name": name,
            "workflow_id": workflow_id,
            "app_version": APP_VERSION,
        }
        client.enqueue(options, *args)
    finally:
        client.destroy()
    return workflow_id


def _limits(q: QueueSpec) -> dict[str, Any]:
    """A queue's limits as the library's ``register_queue`` takes them."""
    return {
        "worker_concurrency": q.worker_concurrency,
        "global_concurrency": q.global_concurrency,
        "polling_interval_sec": q.polling_interval_s,
    }


def register_queues(database_url: str, queues: Sequence[QueueSpec]) -> None:
    """Declare queues without being an executor (so a submit before any worker works)."""
    client = _client(database_url)
    try:
        for q in queues:
            client.register_queue(q.name, **_limits(q))
    finally:
        client.destroy()
