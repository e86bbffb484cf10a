"""API keys: ``tth_<id>_<secret>`` bearer credentials with scopes, stored as SHA-256 of the secret.

Why SHA-256 and not argon2/scrypt: the secret is 256 random bits, so there is nothing to guess
by brute force and a slow hash would only cost CPU on every request. The id part finds the row
(no scan over hashes); the hash is compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
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
    match = _KEY.match(token)
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


def revoke(url: str, key_id: str) -> ApiKey:
    """Revoke a key at once: the next request with it gets 401."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(Q["revoke_key"], {"id": key_id}).fetchone()
    if row is None:
        raise NotFound(f"no API key with id {key_id!r}")
    return ApiKey.from_row(row)


async def verify(pool: AsyncConnectionPool[Any], token: str) -> tuple[str, frozenset[str]] | None:
    """``(key id, scopes)`` when ``token`` is an active key, else ``None``."""
    parsed = parse(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    async with pool.connection() as conn:
        cur = await conn.execute(Q["active_key"], {"id": key_id})
        row = await cur.fetchone()
        if row is None or not hmac.compare_digest(row["hash"], _digest(secret)):
            await conn.rollback()
            return None
        if row["needs_touch"]:
            await conn.execute(Q["touch_key"], {"id": key_id})
        await conn.commit()
    return key_id, frozenset(row["scopes"])


async def is_active(pool: AsyncConnectionPool[Any], key_id: str) -> frozenset[str] | None:
    """Scopes of a key not revoked (a session cookie re-checks its key), else ``None``."""
    async with pool.connection() as conn:
        cur = await conn.execute(Q["active_key"], {"id": key_id})
        row = await cur.fetchone()
        await conn.rollback()
    return None if row is None else frozenset(row["scopes"])
