"""Accounting point event intake: thin change events POSTed to ``tether serve``.

A fresh migrated database with N accounting points (one controllable unit each) and ``tether
serve`` as its own process. Phases, each for ``--seconds``: single-event POSTs from 1 client,
single-event POSTs from 16 concurrent clients (keep-alive), and batches of 1000 events from 4
clients. Events name random held APs. Then ``tether worker --once`` syncs against a simulator
process, and the coalescing ratio is the events accepted per adapter call it made.

Run: ``flock /work/notes/bench.lock uv run python -m bench.ap_event_intake [--server-url URL]``.
Results are written to bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import httpx
import psycopg

from bench.ap_sync_throughput import TOKEN, _free_port, _stop, _wait_listening, seed, simulator
from bench.common import postgres, scratch_database, write_section
from tether.accountingpoints.domain import make_gsrn
from tether.accountingpoints.simulator import EVENT_TYPE

HEADING = "## Accounting point event intake"
BATCH = 1000


def _event(gsrn: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/bench",
        "type": EVENT_TYPE,
        "subject": gsrn,
        "data": {"gsrn": gsrn},
    }


async def _phase(
    url: str, token: str, gsrns: list[str], *, clients: int, batch: int, seconds: float
) -> tuple[int, float, int]:
    """(events accepted, seconds, failed requests) of ``clients`` posting for ``seconds``."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    done = failed = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def client() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                picked = [_event(random.choice(gsrns)) for _ in range(batch)]
                body = picked[0] if batch == 1 else picked
                response = await http.post("/api/v1/events", json=body)
                if response.status_code == 202:
                    done += batch
                else:
                    failed += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        return done, time.perf_counter() - start, failed


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=1000, help="held APs (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    parser.add_argument("--server-url", default=None, help="a PostgreSQL server (else embedded)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


def bench(server_url: str, opts: argparse.Namespace, log: Path) -> list[str]:
    token = secrets.token_urlsafe(24)
    gsrns = [make_gsrn("70705750", n) for n in range(1, opts.aps + 1)]
    rows = []
    with scratch_database(server_url, "bench_ev", migrate=True) as url:
        seed(url, opts.aps)
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "DATABASE_URL": url,
            "TETHER_EVENTS_TOKEN": token,
            "TETHER_LOG_LEVEL": "WARNING",
        }
        serve = [sys.executable, "-m", "tether", "serve", "--port", str(port), "--no-migrate"]
        with log.open("ab") as out:
            proc = subprocess.Popen(serve, env=env, stdout=out, stderr=subprocess.STDOUT)
        total = 0
        try:
            _wait_listening(port, proc)
            api = f"http://127.0.0.1:{port}"
            for name, clients, batch in [
                ("single-event POSTs", 1, 1),
                ("single-event POSTs", 16, 1),
                (f"batches of {BATCH}", 4, BATCH),
            ]:
                events, secs, failed = asyncio.run(
                    _phase(api, token, gsrns, clients=clients, batch=batch, seconds=opts.seconds)
                )
                total += events
                rows.append(
                    f"| {name} | {clients} | {events} | {secs:.1f} | {events / secs:,.0f} "
                    f"| {failed} |"
                )
                print(rows[-1], flush=True)
        finally:
            _stop(proc)
        with simulator(opts.aps, 0, log) as adapter_url:
            worker_env = {
                **env,
                "TETHER_AP_ADAPTER_URL": adapter_url,
                "TETHER_AP_ADAPTER_TOKEN": TOKEN,
            }
            worker = [sys.executable, "-m", "tether", "worker", "--once"]
            worker += ["--only", "accounting-points"]
            with log.open("ab") as out:
                subprocess.run(worker, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT sum(version) FROM ap.accounting_point_sync").fetchone()
        calls = int(row[0] or 0) if row else 0
    ratio = total / calls if calls else 0.0
    rows.append(
        f"| coalescing: {total} events, then {calls} adapter calls | | | | {ratio:,.1f} "
        "events per call | |"
    )
    return rows


def main() -> None:
    opts = _parse()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "processes.log"
        with postgres(opts.server_url) as server_url:
            rows = bench(server_url, opts, log)
    command = "uv run python -m bench.ap_event_intake " + " ".join(sys.argv[1:])
    section = "\n".join(
        [
            HEADING,
            "",
            f"{date.today().isoformat()}, {os.cpu_count()} cores, load average before the run "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; `tether serve` (one process), clients "
            f"in one process on the same machine, {opts.aps} held APs (`{command.strip()}`).",
            "",
            "| phase | clients | events accepted | s | events/s | failed requests |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(section)
    if not opts.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
