"""Reference for the event intake benchmark: the least a correct single-event intake does.

The same uvicorn with tether's server options (bounded httptools, limits), a bare ASGI app (no
framework): check the bearer token, read the body, parse the JSON, check the event's type and
GSRN, mark the AP changed with tether's own ``request_syncs`` statement, with concurrent requests
sharing one UPDATE and commit, and answer 202 with what was accepted. No routing table, no
dependency injection, no response model. Measured in the same run as ``tether serve``, it is the
ceiling of this machine for the same work.

Run: ``python -m bench.ap_event_reference --port P --database-url URL --token T``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
from typing import Any

import uvicorn
from psycopg_pool import AsyncConnectionPool

from tether.accountingpoints.simulator import EVENT_TYPE
from tether.core.limits import server_options
from tether.core.settings import Settings
from tether.core.sql import load_queries

REQUEST_SYNCS = load_queries("tether.accountingpoints", "queries.sql")["request_syncs"]


class Reference:
    def __init__(self, url: str, token: str) -> None:
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(url, max_size=4, open=False)
        self.expected = f"Bearer {token}".encode()
        self.pending: list[tuple[list[str], asyncio.Future[set[str]]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def write(self) -> None:
        while self.pending:
            group, self.pending = self.pending, []
            async with self.pool.connection() as conn, conn.transaction():
                wanted = sorted({g for gsrns, _ in group for g in gsrns})
                cur = await conn.execute(REQUEST_SYNCS, {"gsrns": wanted})
                held = {row[0] for row in await cur.fetchall()}
            for _, done in group:
                done.set_result(held)

    async def mark(self, gsrns: list[str]) -> set[str]:
        done: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self.pending.append((gsrns, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self.write())
        return await done

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup
            await self.pool.open()
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await self.pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        status, body = await self.handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def handle(self, scope: Any, receive: Any) -> tuple[int, bytes]:
        if scope["path"] != "/api/v1/events" or scope["method"] != "POST":
            return 404, b'{"error":"NotFound"}'
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(auth, self.expected):
            return 401, b'{"error":"Unauthorized"}'
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            parsed = json.loads(raw)
            events = parsed if isinstance(parsed, list) else [parsed]
            gsrns = [e["data"]["gsrn"] for e in events]
            ok = all(e["type"] == EVENT_TYPE for e in events)
            ok = ok and all(isinstance(g, str) for g in gsrns)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            return 422, b'{"error":"InvalidInput"}'
        held = await self.mark(gsrns)
        answer = {
            "accepted": sorted(held & set(gsrns)),
            "ignored": sorted(set(gsrns) - held),
        }
        return 202, json.dumps(answer).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--database-url", required=True, help="a migrated tether database")
    parser.add_argument("--token", required=True, help="the bearer token to accept")
    args = parser.parse_args()
    uvicorn.run(
        Reference(args.database_url, args.token),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        **server_options(Settings()),  # type: ignore[call-arg]
    )


if __name__ == "__main__":
    main()
