"""Read latency of the e-licensing refresh-on-read wrapper.

Three cases, each measured over many reads of one invoice through ``ElicensingService``:
a fresh hit (inside the freshness window: no upstream call), a forced refresh with the simulator
answering after 50 ms, and e-licensing down with the circuit open (answered from the local copy).

Run: ``uv run python -m bench.elicensing_read_latency``; it rewrites its section of RESULTS.md.
"""

from __future__ import annotations

import platform
import statistics
import time
from datetime import date

from bench.common import percentile, postgres, scratch_database, write_section
from tether.core import loop
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings
from tether.elicensing.demo import seed_ledger
from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.settings import ElicensingSettings
from tether.elicensing.simulator import make_simulator

HEADING = "## E-licensing read latency"
CALL = "GET /client/{id}/invoice"


async def _measure(service: ElicensingService, version: int, n: int, force: bool) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await service.read_invoice(version, force=force)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _run(url: str) -> list[tuple[str, int, float, float, str]]:
    sim = make_simulator(clients=3).start_in_thread()
    settings = Settings(database_url=url)  # type: ignore[call-arg]
    overrides = [ElicensingSettings(url=sim.url)]
    rows = []
    try:
        async with (
            open_runtime(settings, overrides=overrides) as runtime,
            build(runtime) as service,
        ):
            versions = await seed_ledger(runtime, sim)
            version = versions[0]
            await service.read_invoice(version)
            calls = sim.state.calls[CALL]
            fresh = await _measure(service, version, 1000, force=False)
            assert sim.state.calls[CALL] == calls, "a fresh hit called e-licensing"
            rows.append(("fresh hit (no upstream call)", len(fresh), *_stats(fresh), "0 calls"))

            sim.set_mode("none", latency_ms=0)
            base = await _measure(service, version, 100, force=True)
            rows.append(("refresh, simulator at 0 ms", len(base), *_stats(base), "100 calls"))
            calls = sim.state.calls[CALL]

            sim.set_mode("none", latency_ms=50)
            refresh = await _measure(service, version, 100, force=True)
            made = sim.state.calls[CALL] - calls
            rows.append(
                ("refresh, simulator at 50 ms", len(refresh), *_stats(refresh), f"{made} calls")
            )

            sim.set_mode("down", latency_ms=0)
            while (await service.breaker.state()).state != "open":
                await service.read_invoice(version, force=True)
            read = await service.read_invoice(version, force=True)
            assert read.stale_reason is StaleReason.CIRCUIT_OPEN
            down = await _measure(service, version, 1000, force=True)
            rows.append(("upstream down, circuit open", len(down), *_stats(down), "stale, served"))
    finally:
        sim.stop()
    return rows


def _stats(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 0.99)


def _report(rows: list[tuple[str, int, float, float, str]]) -> str:
    lines = [
        HEADING,
        "",
        f"{date.today().isoformat()}, {platform.python_implementation()} "
        f"{platform.python_version()}, embedded PostgreSQL, simulator on localhost "
        "(`uv run python -m bench.elicensing_read_latency`).",
        "",
        "Targets: fresh hit p99 < 10 ms, circuit open p99 < 20 ms, a refresh adds at most the",
        "round trip + 10 ms. The fresh-hit and circuit-open rows make no upstream call: they are",
        "tether's own cost (service, breaker, PostgreSQL), measured through ElicensingService.",
        "",
        "| case | reads | p50 ms | p99 ms | upstream |",
        "|---|---:|---:|---:|---|",
        *(f"| {c} | {n} | {p50:.2f} | {p99:.2f} | {note} |" for c, n, p50, p99, note in rows),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    with (
        postgres(None) as server_url,
        scratch_database(server_url, "bench_elicensing", migrate=True) as url,
    ):
        rows = loop.run(_run(url))  # the loop the service runs on in production
    section = _report(rows)
    print(section)
    write_section(HEADING, section)


if __name__ == "__main__":
    main()
