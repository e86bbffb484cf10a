"""Read latency and throughput of the e-licensing refresh-on-read wrapper, with concurrency.

Three cases through ``ElicensingService``, each at 1, 10 and 100 concurrent readers, reading
distinct report versions (reader i reads version i) and all reading one version:

- fresh hit: inside the freshness window, no upstream call (the reference of every row);
- refresh: every read forced, the simulator answering after ``RTT_MS``;
- circuit open: e-licensing down and the shared circuit open, answered from the local copy.

Each reader reads in a closed loop. The simulator runs in its own process
(``tether simulate elicensing``), as the real e-licensing would, so its CPU is not the service's.
Run: ``uv run python -m bench.elicensing_read_latency``; it rewrites its section of RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from bench.common import percentile, postgres, scratch_database, write_section
from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings
from tether.elicensing.demo import seed_ledger
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import make_simulator

HEADING = "## E-licensing reads under concurrency"
CALL = "GET /client/{id}/invoice"
CLIENTS = 100
SEED = 42
RTT_MS = 50
LEVELS = (1, 10, 100)
READS = {"fresh hit": 3000, "refresh": 300, "circuit open": 3000}  # per level


@dataclass
class Row:
    case: str
    target: str
    readers: int
    reads: int = 0
    seconds: float = 0.0
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    calls: int = 0

    @property
    def rate(self) -> float:
        return self.reads / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Upstream:
    """``tether simulate elicensing`` in a process of its own, steered over its control port."""

    def __init__(self) -> None:
        self.port, self.control_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.control = f"http://127.0.0.1:{self.control_port}"
        args = ["--port", str(self.port), "--control-port", str(self.control_port)]
        args += ["--clients", str(CLIENTS), "--seed", str(SEED)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "simulate", "elicensing", *args],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "TETHER_LOG_LEVEL": "WARNING"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.control}/faults", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)

    async def mode(self, mode: str, latency_ms: float = 0) -> None:
        async with httpx.AsyncClient() as http:
            body = {"mode": mode, "latency_ms": latency_ms}
            (await http.put(f"{self.control}/faults", json=body)).raise_for_status()

    async def calls(self) -> int:
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{self.control}/stats")).json()
        return int(stats["calls"].get(CALL, 0))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _level(
    service: ElicensingService,
    upstream: Upstream,
    row: Row,
    versions: list[int],
    force: bool,
) -> Row:
    per_reader = max(1, READS[row.case] // row.readers)
    before = await upstream.calls()

    async def reader(i: int) -> None:
        version = versions[i % len(versions)] if row.target == "distinct" else versions[0]
        for _ in range(per_reader):
            start = time.perf_counter()
            try:
                read = await service.read_invoice(version, force=force)
                row.reasons[read.stale_reason.value if read.stale_reason else "fresh"] += 1
            except Exception as exc:  # counted, and named in the table: the target is none
                row.errors += 1
                row.reasons[type(exc).__name__] += 1
            row.samples.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(reader(i) for i in range(row.readers)))
    row.seconds = time.perf_counter() - start
    row.reads = len(row.samples)
    row.calls = await upstream.calls() - before
    return row


async def _run(url: str, upstream: Upstream) -> list[Row]:
    settings = Settings(database_url=url)  # type: ignore[call-arg]
    overrides = [ElicensingSettings(url=upstream.url, breaker_open_s=3600)]
    twin = make_simulator(clients=CLIENTS, seed=SEED)  # same seed: the same ledger, not started
    rows: list[Row] = []
    async with open_runtime(settings, overrides=overrides) as runtime, build(runtime) as service:
        versions = await seed_ledger(runtime, twin)
        for version in versions:
            await service.read_invoice(version)
        plan = [("fresh hit", False), ("refresh", True)]
        for case, force in plan:
            if case == "refresh":
                await upstream.mode("none", RTT_MS)
            for target in ("distinct", "one"):
                for readers in LEVELS:
                    row = Row(case, target, readers)
                    rows.append(await _level(service, upstream, row, versions, force))
        await upstream.mode("down")
        while (await service.breaker.state()).state != "open":
            await service.read_invoice(versions[0], force=True)
        for target in ("distinct", "one"):
            for readers in LEVELS:
                row = Row("circuit open", target, readers)
                rows.append(await _level(service, upstream, row, versions, force=True))
    return rows


def _report(rows: list[Row], pool_max: int, slots: int) -> str:
    reference = {(r.target, r.readers): r for r in rows if r.case == "fresh hit"}
    lines = [
        HEADING,
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, uvloop, PostgreSQL on localhost, request pool "
        f"{pool_max}, refresh_concurrency {slots}, simulator in its "
        f"own process at {RTT_MS} ms for the refresh rows (`uv run python -m "
        "bench.elicensing_read_latency`). One run on a 2-core machine shared with other work.",
        "",
        "Readers read in a closed loop; *distinct*: reader i reads report version i, *one*: all "
        "read the same version. vs ref: this row against the fresh-hit row of the same readers "
        "and target, from the same run.",
        "",
        "| case | versions | readers | reads | reads/s | p50 ms | p99 ms | vs ref rate | "
        "vs ref p99 | errors | upstream calls | answers |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ref = reference[(r.target, r.readers)]
        answers = ", ".join(f"{k} {v}" for k, v in r.reasons.most_common())
        lines.append(
            f"| {r.case} | {r.target} | {r.readers} | {r.reads} | {r.rate:,.0f} | {r.p50:.2f} | "
            f"{r.p99:.2f} | {r.rate / ref.rate:.0%} | {r.p99 - ref.p99:+.1f} ms | {r.errors} | "
            f"{r.calls} | {answers} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    upstream = Upstream()
    try:
        with (
            postgres(os.environ.get("TETHER_BENCH_DATABASE_URL")) as server_url,
            scratch_database(server_url, "bench_elicensing", migrate=True) as url,
        ):
            rows = loop.run(_run(url, upstream))  # the loop the service runs on in production
    finally:
        upstream.stop()
    defaults = ElicensingSettings()
    section = _report(rows, Settings().db_pool_max, defaults.refresh_concurrency)
    print(section)
    write_section(HEADING, section)


if __name__ == "__main__":
    main()
