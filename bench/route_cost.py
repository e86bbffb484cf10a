"""CPU per request of the whole app in process, FastAPI's own routing against ``RouteTable``.

One app, its lifespan running, called directly as an ASGI app (no sockets, no HTTP parsing),
so the figures are the app's own CPU: a 404, ``GET /healthz``, an authenticated payments status
read and the hot payments intake POST. The two routings are swapped on the same app between
blocks of ``--requests`` requests, A B A B for ``--rounds`` rounds, and each gets the median of
its blocks. ``--profile CASE`` prints cProfile's top functions of one block of each routing.

Run: ``uv run python -m bench.route_cost [--requests N] [--rounds N] [--server-url URL]``
(under ``flock /work/notes/bench.lock`` like every benchmark); the table goes to
bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import platform
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from bench.common import postgres, scratch_database, write_section
from bench.payments_throughput import make_message
from tether.app import create_app
from tether.core import keys
from tether.core.routetable import RouteTable
from tether.core.settings import Settings

Call = Callable[[], Awaitable[int]]


async def request(app: Any, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    """One request straight into the app; its status code."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def cases(app: Any, token: str) -> dict[str, tuple[Call, int]]:
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    keys_ = (f"bench-{n}" for n in itertools.count())

    async def intake() -> int:
        headers = {**auth, "Transaction-ID": next(keys_), "Content-Type": "application/json"}
        return await request(app, "POST", "/api/v1/payments/dagpenger", headers, MESSAGE)

    def get(path: str) -> Call:
        return lambda: request(app, "GET", path, auth, b"")

    return {
        "404": (get("/no/such/page"), 404),
        "healthz": (get("/healthz"), 200),
        "status": (get("/api/v1/payments/status/bench-status"), 200),
        "intake": (intake, 202),
    }


MESSAGE = make_message("bench-sak", 500)
HEADING = "## Routing cost per request (FastAPI's included routers against core/routetable.py)"
HEAD = (
    "| request | FastAPI routing µs CPU (min-max) | route table µs | saved µs |\n"
    "|---|---|---|---|\n"
)
NOTE = (
    "`/healthz` opens its own database connection, which is most of its cost; the intake is "
    "`@hot` (core/hotpath.py) and never reaches the router, so its two columns differ by noise "
    "only.\n"
)


async def block(call: Call, expected: int, n: int) -> float:
    """CPU microseconds per request over ``n`` requests."""
    start = time.process_time()
    for _ in range(n):
        status = await call()
        if status != expected:
            raise RuntimeError(f"answered {status}, expected {expected}")
    return (time.process_time() - start) * 1e6 / n


async def run(args: argparse.Namespace, url: str, token: str) -> list[str]:
    app = create_app(Settings(database_url=url, data_dir=Path(tempfile.mkdtemp())), migrate=False)
    table = app.router.middleware_stack
    assert isinstance(table, RouteTable)
    routings = {"fastapi": app.router.app, "table": table}
    async with app.router.lifespan_context(app):
        calls = cases(app, token)
        headers = {"Authorization": f"Bearer {token}", "Transaction-ID": "bench-status"}
        await request(app, "POST", "/api/v1/payments/dagpenger", headers, MESSAGE)
        for call, expected in calls.values():  # warm up both routings
            for routing in routings.values():
                app.router.middleware_stack = routing
                await block(call, expected, 20)
        if args.profile:
            call, expected = calls[args.profile]
            for name, routing in routings.items():
                app.router.middleware_stack = routing
                profiler = cProfile.Profile()
                profiler.enable()
                await block(call, expected, args.requests)
                profiler.disable()
                print(f"--- {args.profile}, {name} routing")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
            return []
        rows = []
        for case, (call, expected) in calls.items():
            samples: dict[str, list[float]] = {name: [] for name in routings}
            for _ in range(args.rounds):
                for name, routing in routings.items():
                    app.router.middleware_stack = routing
                    samples[name].append(await block(call, expected, args.requests))
            medians = {name: statistics.median(s) for name, s in samples.items()}
            spread = {name: f"{min(s):.0f}-{max(s):.0f}" for name, s in samples.items()}
            rows.append(
                f"| {case} | {medians['fastapi']:.0f} ({spread['fastapi']}) | "
                f"{medians['table']:.0f} ({spread['table']}) | "
                f"{medians['fastapi'] - medians['table']:.0f} |"
            )
            print(rows[-1], flush=True)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per block")
    parser.add_argument("--rounds", type=int, default=6, help="A B blocks per case")
    parser.add_argument("--profile", choices=["404", "healthz", "status", "intake"])
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    parser.add_argument("--server-url", default=os.environ.get("TETHER_TEST_DATABASE_URL"))
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    with (
        postgres(args.server_url) as server,
        scratch_database(server, "tether_bench_route", migrate=True) as url,
    ):
        _, token = keys.create(url, "bench", ["admin"])
        load = os.getloadavg()[0]
        print(HEAD, end="")
        rows = asyncio.run(run(args, url, token))
    if rows and not args.no_write:
        summary = (
            f"{HEADING}\n\n{date.today()} · {platform.machine()}, {os.cpu_count()} cores shared "
            f"with other work (load {load:.1f} at the start) · {args.requests} requests a block, "
            f"{args.rounds} blocks of each routing alternated; CPU of the app in process (no "
            f"sockets), median of the blocks\n\n{HEAD}" + "\n".join(rows) + "\n\n" + NOTE
        )
        write_section(HEADING, summary)


if __name__ == "__main__":
    main()
