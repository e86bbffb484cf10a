"""The database gateway: its URL (the embedded server's, ``embedded``), the pool, and three verbs
over psycopg 3.

``execute`` returns nothing, ``fetch_one`` returns a dict row or raises ``NotFound``, ``fetch_all``
returns dict rows. Each takes a connection so a use case can run several calls in one transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic_core import to_json

from tether.core import demorun, embedded
from tether.core.errors import Busy, ConfigurationError, DataRejected, NotFound
from tether.core.logging import hide_passwords
from tether.core.settings import Settings

logger = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[DictRow]
Params = Mapping[str, Any] | None


def with_dbname(url: str, dbname: str) -> str:
    """``url`` with its database replaced by ``dbname`` (same server, user and options), in
    the form it came in: a ``postgresql://`` URL stays one (``tether db url`` prints a URL,
    the demo's database too), a ``key=value`` conninfo stays one."""
    if "://" not in url:
        params = psycopg.conninfo.conninfo_to_dict(url)
        params["dbname"] = dbname
        return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dbname"]
    return urlunsplit(
        parts._replace(
            path="/" + quote(dbname, safe=""), query=urlencode(query, safe="/", quote_via=quote)
        )
    )


def with_application_name(url: str, name: str) -> str:
    """``url`` naming its sessions ``name`` in ``pg_stat_activity``, unless it names them."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params.setdefault("application_name", name)
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


@contextmanager
def connect_errors_explained(url: str) -> Iterator[None]:
    """A database that cannot be reached becomes a ``ConfigurationError`` saying what to do."""
    try:
        yield
    except psycopg.OperationalError as exc:
        info = psycopg.conninfo.conninfo_to_dict(url)
        where = f"{info.get('host', 'local socket')}:{info.get('port', 5432)}"
        raise ConfigurationError(
            f"cannot connect to PostgreSQL at {where} ({libpq_reason(exc)}). "
            "Check DATABASE_URL, or unset it to use the embedded PostgreSQL."
        ) from exc


def libpq_reason(exc: Exception) -> str:
    """libpq's reason ("Connection refused", "FATAL: password authentication failed ..."), not
    its hint line ("Is the server running on that host ...") nor the address said again. A
    missing socket file is a server not running: libpq says "No such file or directory"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and (gone := _NO_SOCKET.search(lines[0])):
        return f"server not running (no socket at {gone['dir']})"
    return " ".join(lines[0].rsplit("failed: ", 1)[-1].split()) if lines else type(exc).__name__


_NO_SOCKET = re.compile(r'on socket "(?P<dir>.*)/\.s\.PGSQL\.\d+" failed: No such file or dir')


def check_url(url: str) -> str:
    """``url`` if it parses as a PostgreSQL URL; a ``ConfigurationError`` saying why otherwise."""
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme is not None and scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"DATABASE_URL must start with postgresql:// (it starts with {scheme}://); "
            "e.g. postgresql://user:password@host:5432/dbname"
        )
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
        ports = str(params.get("port", "5432")).split(",")
        if not all(p.isdigit() for p in ports):
            raise psycopg.ProgrammingError(f"port {params.get('port')!r} is not a number")
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"DATABASE_URL is malformed ({hide_passwords(str(exc).strip())}); "
            "e.g. postgresql://user:password@host:5432/dbname"
        ) from None
    return url


def resolve_database_url(settings: Settings) -> str:
    """The configured ``DATABASE_URL``, or the URL of the embedded server, started when it is
    not running: its database of a running demo when one is running (``TETHER_DATA_DIR`` is
    shared), else its default one. Only for what runs until stopped (``serve``, ``worker``,
    ``demo``) and ``db start``: any other command uses ``url_in_use``."""
    if settings.database_url:
        return check_url(settings.database_url)
    try:
        url = embedded.start_embedded_postgres(settings.data_dir)
    except Exception as exc:  # pgserver raises plain exceptions with useful text
        raise ConfigurationError(
            f"could not start the embedded PostgreSQL in {settings.data_dir}: {exc}. "
            "Set DATABASE_URL to use an existing server instead."
        ) from exc
    return _active_database(settings.data_dir, url)


def _active_database(data_dir: Path, url: str) -> str:
    """``url`` naming the database a running demo uses, when one runs on this server (a
    killed demo's marker is removed, not followed)."""
    dbname = demorun.active_database(data_dir)
    if dbname is not None:
        logger.info("using database %s of the running demo", dbname)
        return with_dbname(url, dbname)
    return url


def running_embedded_url(data_dir: Path) -> str | None:
    """The URL ``resolve_database_url`` would give when the embedded server of ``data_dir`` is
    running; None when it is not. Starts nothing: ``tether db url`` and ``db status`` report,
    and a server they started as a side effect would outlive them unnoticed."""
    info = embedded.running_server(data_dir)
    return None if info is None else _active_database(data_dir, info.get_uri())


NOT_RUNNING = (
    "no embedded PostgreSQL is running in {where}: start it with `tether db start` "
    "(or set DATABASE_URL to use a server of your own)"
)


def url_in_use(settings: Settings) -> str:
    """``DATABASE_URL``, else the running embedded server's URL; starts nothing. For every
    one-shot command (reports, sends, migrations, keys): a server it started would outlive it
    unnoticed, in whatever folder it ran from. ``ConfigurationError`` says how to start one."""
    if settings.database_url:
        return check_url(settings.database_url)
    found = running_embedded_url(settings.data_dir)
    if found is None:
        raise ConfigurationError(NOT_RUNNING.format(where=settings.data_dir.resolve()))
    return found


async def _configure(conn: Connection) -> None:
    """Every pooled session in UTC and without JIT compilation. The pools run short statements,
    for which compiling costs tens of milliseconds of CPU and saves next to nothing; the server
    decides by estimated cost, and a table that grew faster than its statistics pushed the
    estimate of a receipt batch past ``jit_above_cost`` (50-90 ms a batch, measured)."""
    await conn.execute(  # one round trip for both
        "SELECT set_config('TimeZone', 'UTC', false), set_config('jit', 'off', false)"
    )
    await conn.commit()


RECONNECT_S = 5.0
"""How long the pool retries a lost connection (1, then 2 s apart) before it gives up; the
next request that finds no connection then connects at once. psycopg_pool's default (300 s,
the delay doubling) slept through up to half an outage: after a 97 s one, /healthz said ready
while requests failed for 18-40 s more."""


def make_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
) -> AsyncConnectionPool[Any]:
    """An unopened async pool of dict-row connections; a caller waits ``timeout`` s at most."""
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        reconnect_timeout=RECONNECT_S,
        open=False,
        kwargs={"row_factory": dict_row, "autocommit": False},
        configure=_configure,
        name="tether",
    )


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool[Any]) -> AsyncIterator[Connection]:
    """One connection in one transaction: commit at the end, roll back on any error."""
    async with pool.connection() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def autocommit(pool: AsyncConnectionPool[Any]) -> AsyncIterator[Connection]:
    """One connection outside any transaction, for a single statement (atomic by itself): no
    BEGIN and no COMMIT round trips (a hot path pays for three round trips otherwise). A caller
    may open a transaction itself with a ``BEGIN`` pipelined with its first statement and end it
    with a ``COMMIT`` pipelined with its last (``pipelined``: two round trips, not four);
    whatever it leaves open is rolled back on the way out."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await _as_lent(conn)


@asynccontextmanager
async def pipelined(
    conn: Connection, *, begin: bool = False, commit: bool = False
) -> AsyncIterator[Connection]:
    """The statements of the block sent in one round trip with a ``BEGIN`` before them and/or a
    ``COMMIT`` after them (``conn`` from ``autocommit``: a transaction in two round trips, or
    one when the block is the whole of it). Neither: the block runs as it is. A block that
    raises sends no ``COMMIT``; ``autocommit`` rolls back what it left open."""
    if not (begin or commit):
        yield conn
        return
    async with conn.pipeline():
        if begin:
            await conn.execute(b"BEGIN")
        yield conn
        if commit:
            await conn.execute(b"COMMIT")


async def _as_lent(conn: Connection) -> None:
    """Back to how the pool lends a connection: no transaction (one a caller left open, or that
    failed midway, rolled back), autocommit off. One that cannot be (a statement still running
    when its caller was cancelled) is closed, and the pool replaces it."""
    if conn.closed:
        return
    try:
        if conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await conn.execute(b"ROLLBACK")
        await conn.set_autocommit(False)
    except Exception:
        logger.warning("a pooled connection could not be reset; closed", exc_info=True)
        await conn.close()


def json_text(value: object) -> str:
    """JSON text of plain data for a ``::jsonb`` parameter (a batch's rows as one array).
    pydantic's encoder: a third of ``json.dumps``'s time on the intake and refresh paths; the
    database reads the same values either way."""
    return to_json(value).decode()


def json_param(value: object) -> Jsonb:
    """``value`` as a jsonb parameter whose JSON (pydantic's encoder, as ``json_text``) goes to
    the server as the encoder's bytes: ``json_text``'s str is decoded from them only for psycopg
    to encode it again, a character at a time once it holds a non-ASCII one (an order's
    ``beløp``): 40k instructions of an intake message's 2M."""
    return Jsonb(value, dumps=to_json)


async def execute(
    conn: Connection, query: LiteralString, params: Params = None, *, prepare: bool | None = None
) -> int:
    """Run a statement; return the affected row count. ``prepare=False``: see ``fetch_all``."""
    cur = await conn.execute(query, params, prepare=prepare)
    return cur.rowcount


async def fetch_one(conn: Connection, query: LiteralString, params: Params = None) -> DictRow:
    """First row of a query, or ``NotFound``."""
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        raise NotFound()
    return row


async def fetch_optional(
    conn: Connection, query: LiteralString, params: Params = None
) -> DictRow | None:
    """First row of a query, or ``None``."""
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def fetch_all(
    conn: Connection, query: LiteralString, params: Params = None, *, prepare: bool | None = None
) -> list[DictRow]:
    """All rows of a query. ``prepare=False`` plans it anew for each call's parameters and the
    tables' sizes of now: for a batch statement over tables that fill fast, which a plan cached
    while they were small (psycopg prepares a statement after five runs) would scan whole."""
    cur = await conn.execute(query, params, prepare=prepare)
    return await cur.fetchall()


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn the database's refusals by our own rules into ``DataRejected`` / ``Busy``.

    Only errors that PL/pgSQL raised on purpose (``RAISE ... USING HINT = '<reason>'``) and lock
    timeouts are translated; any other database error is a bug and propagates as it is.
    """
    try:
        yield
    except psycopg.errors.RaiseException as exc:
        raise DataRejected(
            exc.diag.message_primary, reason=exc.diag.message_hint or "data_rejected"
        ) from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise Busy() from exc
