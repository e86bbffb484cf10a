"""Server-side sign-in sessions of the pages: ``/logout`` ends a session for every copy of its
cookie, not only in the browser that sent it.

The cookie carries a random 256-bit session id; the table (core migration 0006) keeps only its
SHA-256 (the id is unguessable, so a slow hash would buy nothing) with the subject, scopes and
expiry the cookie itself carried before. Bearer credentials never touch this table.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.core.sql import load_queries

Q = load_queries("tether.core", "sessions.sql")
PURGE_BATCH = 1000  # rows a login deletes at most: far more than one login adds, so none pile up


@dataclass(frozen=True, kw_only=True)
class Session:
    """A live session: who signed in, and with which scopes now."""

    subject: str
    scopes: frozenset[str]


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


async def start(
    pool: AsyncConnectionPool[Any],
    *,
    subject: str,
    key_id: str | None,
    scopes: frozenset[str],
    expires_at: float,
) -> str:
    """Store a new session until ``expires_at`` (epoch seconds); return its id (never stored).

    Also purges a bounded batch of long-expired sessions: logins are what add rows.
    """
    session_id = secrets.token_urlsafe(32)
    async with pool.connection() as conn:
        await conn.execute(Q["purge_sessions"], {"batch": PURGE_BATCH})
        await conn.execute(
            Q["insert_session"],
            {
                "id_hash": _digest(session_id),
                "subject": subject,
                "key_id": key_id,
                "scopes": sorted(scopes),
                "expires_at": datetime.fromtimestamp(expires_at, UTC),
            },
        )
        await conn.commit()
    return session_id


async def live(pool: AsyncConnectionPool[Any], session_id: str) -> Session | None:
    """The session if it exists, is not revoked nor expired, and its API key (if any) is active."""
    if not session_id.isascii():
        return None
    async with pool.connection() as conn:
        cur = await conn.execute(Q["live_session"], {"id_hash": _digest(session_id)})
        row = await cur.fetchone()
        await conn.rollback()
    if row is None:
        return None
    scopes = frozenset(row["scopes"])
    if row["key_id"] is not None:
        if row["key_scopes"] is None:
            return None
        scopes &= frozenset(row["key_scopes"])
    return Session(subject=row["subject"], scopes=scopes)


async def revoke(pool: AsyncConnectionPool[Any], session_id: str) -> None:
    """End the session for every copy of its cookie (unknown ids are ignored)."""
    if not session_id.isascii():
        return
    async with pool.connection() as conn:
        await conn.execute(Q["revoke_session"], {"id_hash": _digest(session_id)})
        await conn.commit()
