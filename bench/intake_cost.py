"""Instructions (or CPU) per payments intake request of the app in process: new cases, then
updates of the same cases once confirmed.

One app, its lifespan running, called as an ASGI app (no sockets, as ``route_cost``); one
client by default, so each request is a group-commit batch of one (``intake_one``), or
``--clients N`` at once, sharing batches. ``--requests N`` new cases (``make_message``), each
case's order then confirmed by a ``00`` receipt booked straight into the service, then N
updates of those cases (another amount: two new lines each). With
``--callgrind``, under ``valgrind --tool=callgrind --instr-atstart=no``, collection is on only
around each block (``callgrind_control -i``) and each block is dumped to its own file, whose
``totals:`` line is the block's instructions (``--read`` prints them per request).

Run: ``valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p
python -m bench.intake_cost --callgrind --requests 300``, then ``python -m bench.intake_cost
--read /tmp/cg.PID --requests 300``. Without valgrind it prints CPU µs a request;
``--profile new|update`` prints cProfile's view of one block. Instruction counts vary by
1-2 % between runs (the event loop's wake-ups, garbage collections): alternate old and new.
Note that valgrind hides SHA-NI: the request's sha256 hashes (body, order XML, line ids) are
counted in software, some 150k instructions a request that cost far less on the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import glob
import os
import pstats
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import postgres, scratch_database
from bench.payments_throughput import make_message
from bench.route_cost import request
from tether.app import create_app
from tether.core import keys
from tether.core.settings import Settings
from tether.payments import codec
from tether.payments.models import Receipt as ModelReceipt

PATH = "/api/v1/payments/dagpenger"


def callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


CLIENTS = 1  # concurrent clients (--clients): more share each group-commit batch


async def block(
    app: Any, token: str, items: list[tuple[str, bytes]], under: bool, profile: bool = False
) -> float:
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    if under:
        callgrind("-z")
        callgrind("-i", "on")
    start = time.process_time()
    queue = iter(items)

    async def client() -> None:
        for key, body in queue:
            headers = {
                "Authorization": f"Bearer {token}",
                "Transaction-ID": key,
                "Content-Type": "application/json",
            }
            status = await request(app, "POST", PATH, headers, body)
            if status != 202:
                raise RuntimeError(f"{key}: answered {status}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    spent = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(45)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
    if under:
        callgrind("-i", "off")
        callgrind("-d")
    return spent * 1e6 / len(items)


async def confirm(service: Any, saks: list[str]) -> None:
    """A 00 receipt for each case's order, booked as the receipt consumer books it."""
    batch = []
    for sak in saks:
        (order,) = await service.orders(sak)
        source = ModelReceipt(
            alvorlighetsgrad="00",
            kode_melding=None,
            beskr_melding=None,
            fagsystem_id=sak,
            nokkel_avstemming=order.id.hex,
        )
        batch.append((codec.Receipt(order_id=order.id, code="00", source=source), ""))
    for i in range(0, len(batch), 50):
        outcomes = await service.apply_receipts(batch[i : i + 50])
        assert set(outcomes) == {"ok"}, outcomes


async def run(args: argparse.Namespace, url: str, token: str) -> None:
    app = create_app(Settings(database_url=url, data_dir=Path(tempfile.mkdtemp())), migrate=False)
    async with app.router.lifespan_context(app):
        warm = [(f"warm-{n}", make_message(f"warm-{n}", 500)) for n in range(30)]
        await block(app, token, warm, False)
        await confirm(app.state.payments, [f"warm-{n}" for n in range(30)])
        await block(
            app, token, [(f"warmu-{n}", make_message(f"warm-{n}", 600)) for n in range(30)], False
        )
        saks = [f"sak-{n}" for n in range(args.requests)]
        new = await block(
            app,
            token,
            [(f"new-{s}", make_message(s, 500)) for s in saks],
            args.callgrind,
            args.profile == "new",
        )
        await confirm(app.state.payments, saks)
        upd = await block(
            app,
            token,
            [(f"upd-{s}", make_message(s, 600)) for s in saks],
            args.callgrind,
            args.profile == "update",
        )
        print(f"cpu µs/request: new {new:.0f}, update {upd:.0f}", flush=True)


def read(prefix: str, requests: int) -> None:
    """The totals of a run's dumps, per request: the first block new, the second update."""
    totals = []
    for name in sorted(glob.glob(f"{prefix}.*"), key=lambda p: int(p.rsplit(".", 1)[1])):
        for line in Path(name).read_text().splitlines():
            if line.startswith("totals:"):
                totals.append(int(line.split()[1]))
                break
    print(totals)
    labels = ["new", "update"]
    for label, total in zip(labels, [t for t in totals if t > 0], strict=False):
        print(f"{label}: {total / requests:,.0f} instructions a request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per block")
    parser.add_argument("--callgrind", action="store_true", help="toggle callgrind per block")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients")
    parser.add_argument("--read", help="print the per-request totals of a callgrind run")
    parser.add_argument("--profile", choices=["new", "update"], help="cProfile one block")
    parser.add_argument("--server-url", default=os.environ.get("TETHER_TEST_DATABASE_URL"))
    args = parser.parse_args()
    global CLIENTS
    CLIENTS = args.clients
    if args.read:
        read(args.read, args.requests)
        return
    with (
        postgres(args.server_url) as server,
        scratch_database(server, "apicost_bench", migrate=True) as url,
    ):
        _, token = keys.create(url, "bench", ["admin"])
        asyncio.run(run(args, url, token))


if __name__ == "__main__":
    main()
