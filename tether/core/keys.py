"""API keys: ``tth_<id>_<secret>`` bearer credentials with scopes, stored as SHA-256 of the secret.

Why SHA-256 and not argon2/scrypt: the secret is 256 random bits, so there is nothing to guess
by brute force and a slow hash would only cost CPU on every request. The id part finds the row
(no scan over hashes); the hash is compared with ``hmac.compare_digest``.

A process keeps the keys it verified in a ``KeyCache`` (TETHER_API_KEY_CACHE_S): a database
trigger notifies every listening process when a key is revoked, changed or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tether.core.errors import InvalidInput, NotFound
from tether.core.sql import load_queries

SCOPES = ("read", "write", "events", "admin")
PREFIX = "tth_"
_KEY = re.compile(r"^tth_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
Q = load_queries("tether.core", "keys.sql")
CHANNEL = "tether_api_key_changed"  # NOTIFY of the api_key trigger (core migration 0005)
ACK = "tether_api_key_ack"  # a cache confirms it emptied: "<key id> <listener pid>"
LISTENER = "tether api key cache"  # application_name of the caches' listener connections
logger = logging.getLogger(__name__)
Verified = tuple[str, frozenset[str]]  # (key id, scopes)


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(
            id=row["id"],
            name=row["name"],
            scopes=tuple(row["scopes"]),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated and in canonical order; unknown ones are an error."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown or not given:
        raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)} (got {unknown or 'none'})")
    return [s for s in SCOPES if s in given]


def parse(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key-shaped token, else ``None``."""
    match = _KEY.fullmatch(token)
    return (match["id"], match["secret"]) if match else None


def create(url: str, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Store a new key; return it and its full secret token (shown once, never stored)."""
    wanted = check_scopes(scopes)
    if not 1 <= len(name) <= 200:
        raise InvalidInput("a key name has 1 to 200 characters")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(
            Q["insert_key"],
            {"id": key_id, "name": name, "hash": _digest(secret), "scopes": wanted},
        ).fetchone()
    assert row is not None
    return ApiKey.from_row(row), f"{PREFIX}{key_id}_{secret}"


def list_all(url: str) -> list[ApiKey]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return [ApiKey.from_row(r) for r in conn.execute(Q["list_keys"]).fetchall()]


def revoke(url: str, key_id: str, *, wait_s: float = 5.0) -> tuple[ApiKey, bool]:
    """Revoke a key at once: the next request with it gets 401. Returns the key and whether
    it was revoked before (its first revocation time is kept), so the caller can say so.

    Returns once every API process whose key cache listened at the commit confirmed it emptied
    its cache; one that does not within ``wait_s`` has its listener cut, so it stops caching.
    A key revoked before is in no cache: nothing to wait for.
    """
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        conn.execute(f"LISTEN {ACK}")
        with conn.transaction():
            row = conn.execute(Q["revoke_key"], {"id": key_id}).fetchone()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        if not row["already_revoked"]:
            _wait_for_caches(conn, key_id, wait_s)
    return ApiKey.from_row(row), bool(row["already_revoked"])


def _wait_for_caches(conn: psycopg.Connection[Any], key_id: str, wait_s: float) -> None:
    pending = {r["pid"] for r in conn.execute(Q["cache_listeners"]).fetchall()}
    deadline = time.monotonic() + wait_s
    while pending and (left := deadline - time.monotonic()) > 0:
        for note in conn.notifies(timeout=left, stop_after=1):
            acked, _, pid = note.payload.partition(" ")
            if acked == key_id and pid.isdigit():
                pending.discard(int(pid))
    for pid in pending:
        logger.warning("API key cache of backend %s did not confirm in time: cut", pid)
        try:
            conn.execute(Q["cut_listener"], {"pid": pid})
        except psycopg.Error as exc:  # not allowed to signal it: its TTL is the bound then
            logger.warning("cannot cut the API key cache listener %s: %s", pid, exc)


async def verify(
    pool: AsyncConnectionPool[Any], token: str, cache: KeyCache | None = None
) -> Verified | None:
    """``(key id, scopes)`` when ``token`` is an active key, else ``None``.

    With ``cache``, a key verified before is answered from it (no database); a miss reads the
    key and remembers it unless an invalidation came in meanwhile. ``last_used_at`` is then
    touched on misses only: at least once per cache lifetime of a key in use.
    """
    parsed = parse(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    digest = hashlib.sha256(token.encode("ascii")).digest()
    generation = -1
    if cache is not None:
        hit = cache.get(digest)
        if hit is not None:
            return hit
        generation = cache.generation
    async with pool.connection() as conn:
        cur = await conn.execute(Q["active_key"], {"id": key_id})
        row = await cur.fetchone()
        if row is None or not hmac.compare_digest(row["hash"], _digest(secret)):
            await conn.rollback()
            return None
        if row["needs_touch"]:
            await conn.execute(Q["touch_key"], {"id": key_id})
        await conn.commit()
    found = key_id, frozenset(row["scopes"])
    if cache is not None:
        cache.put(digest, found, generation)
    return found


def verify_blocking(url: str, token: str) -> Verified | None:
    """``verify`` for a thread without an event loop (the worker's metrics port): no cache, no
    ``last_used_at`` touch."""
    parsed = parse(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        row = conn.execute(Q["active_key"], {"id": key_id}).fetchone()
    if row is None or not hmac.compare_digest(row["hash"], _digest(secret)):
        return None
    return key_id, frozenset(row["scopes"])


def grants(scopes: frozenset[str], scope: str) -> bool:
    """Whether a credential with ``scopes`` may act in ``scope`` (``admin`` implies all)."""
    return scope in scopes or "admin" in scopes


def header_allows(url: str, authorization: str, *, scope: str) -> bool:
    """Whether an ``Authorization: Bearer <API key>`` header names an active key with ``scope``."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    found = verify_blocking(url, token.strip())
    return found is not None and grants(found[1], scope)


class KeyCache:
    """Keys this process verified: SHA-256 of the token -> (key id, scopes), for ``ttl_s``.

    It serves only while its listener connection is up and LISTENing on ``CHANNEL``: any
    notification (a key revoked, changed or deleted by any process) empties it, and so does a
    lost listener, retried every second meanwhile. The listener is read by the event loop when
    its socket turns readable (a notification, or the end of a lost connection), in the loop's
    poll, before any request task that poll woke runs; a hit only reads the dict. Reading it
    again before every hit (a ``recv`` each) cost 2.5 % of the API's CPU at 1,000 requests/s.
    Once emptied it confirms on ``ACK``, so a process that confirmed serves the revoked key no
    more; ``revoke`` waits for every listening process to confirm (and cuts one that does not).
    ``generation`` moves on each emptying: a lookup that started before one does not store what
    it read.
    """

    def __init__(self, ttl_s: float, pool: Callable[[], AsyncConnectionPool[Any]]) -> None:
        self.ttl_s = ttl_s
        self._pool = pool
        self._entries: dict[bytes, tuple[Verified, float]] = {}
        self.generation = 0
        self._conn: psycopg.AsyncConnection[Any] | None = None  # the listener, while live
        self._fd = -1  # its socket, watched by the loop
        self._lost: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._acks: set[asyncio.Task[None]] = set()

    @property
    def live(self) -> bool:
        return self._conn is not None

    def get(self, digest: bytes) -> Verified | None:
        # no listener read here: entries exist only while the listener is live (``_down``
        # empties them), and the loop drains it as soon as it is readable
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._entries[digest]
            return None
        return entry[0]

    def known(self, token: str) -> Verified | None:
        """``get`` by the whole token, before it is parsed: only a token that parsed as a key
        and verified is ever stored, so a hit needs no parse (its regex was 0.2 % of the
        intake's CPU, twice a request)."""
        if not self._entries or not token.isascii():
            return None
        return self.get(hashlib.sha256(token.encode("ascii")).digest())

    def __contains__(self, digest: object) -> bool:
        """Whether an entry is stored (no listener read: safe from another thread)."""
        return digest in self._entries

    def put(self, digest: bytes, found: Verified, generation: int) -> None:
        if self.live and generation == self.generation:
            self._entries[digest] = (found, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1

    def _drain(self) -> None:
        """Read what the listener received (the loop calls it when its socket is readable)."""
        conn = self._conn
        if conn is None:
            return
        pgconn = conn.pgconn
        with contextlib.suppress(psycopg.OperationalError):  # the status says what it means
            pgconn.consume_input()
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            self._down()
            self._lost.set()
            return
        changed = []
        while (note := pgconn.notifies()) is not None:
            changed.append(note.extra.decode())
        if changed:
            self.clear()
            acks = [f"{key_id} {pgconn.backend_pid}" for key_id in changed]
            self._acks.add(asyncio.create_task(self._ack(acks)))

    async def _ack(self, payloads: list[str]) -> None:
        """Tell a waiting ``revoke`` that this cache is empty (after it was emptied)."""
        try:
            async with self._pool().connection() as conn:
                for payload in payloads:
                    await conn.execute(Q["ack_key_change"], {"payload": payload})
                await conn.commit()
        except Exception as exc:  # the revoker then cuts this listener: safe either way
            logger.warning("API key cache could not confirm a change: %s", exc)
        finally:
            self._acks.discard(asyncio.current_task())

    def start(self) -> None:
        """Start the listener (once; a TTL of 0 disables the cache and starts nothing)."""
        if self.ttl_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="api-key-cache-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _down(self) -> None:
        if self._conn is not None and self._fd >= 0:  # the fd: a lost pgconn has no socket
            with contextlib.suppress(OSError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._fd)
        self._conn, self._fd = None, -1
        self.clear()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conninfo = self._pool().conninfo
                assert isinstance(conninfo, str), "the pool is made from a URL (db.make_pool)"
                conn = await psycopg.AsyncConnection.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=LISTENER,
                )
                await conn.execute(f"LISTEN {CHANNEL}")
                self._lost.clear()
                self.clear()  # whatever was revoked while nobody listened
                self._conn, self._fd = conn, conn.pgconn.socket
                loop.add_reader(self._fd, self._drain)
                await self._lost.wait()
                logger.warning("API key cache listener lost; cache off until it is back")
            except psycopg.Error as exc:
                logger.warning("API key cache listener cannot connect (%s); cache off", exc)
            finally:
                self._down()
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
            await asyncio.sleep(1.0)
