"""Read latency of the e-licensing refresh-on-read wrapper.

Three cases, each measured over many reads of one invoice through ``ElicensingService``:
a fresh hit (inside the freshness window: no upstream call), a forced refresh with the simulator
answering after 50 ms, and e-licensing down with the circuit open (answered from the local copy).

Run: ``uv run python -m bench.elicensing_read_latency``. Results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tether.core import loop, migrations
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings
from tether.elicensing.demo import seed_ledger
from tether.elicensing.models import StaleReason
from tether.elicensing.service import ElicensingService, build
from tether.elicensing.simulator import make_simulator

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## E-licensing read latency"
CALL = "GET /client/{id}/invoice"


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(service: ElicensingService, version: int, n: int, force: bool) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await service.read_invoice(version, force=force)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _run(url: str) -> list[tuple[str, int, float, float, str]]:
    sim = make_simulator(clients=3).start_in_thread()
    settings = Settings(database_url=url, elicensing_url=sim.url)  # type: ignore[call-arg]
    rows = []
    try:
        async with open_runtime(settings) as runtime, build(runtime) as service:
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
    return statistics.median(samples), _pct(samples, 0.99)


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


def _write(section: str) -> None:
    """Replace our section of RESULTS.md (or add it); other sections stay as they are."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> None:
    import pgserver

    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(str(Path(tmp) / "pg"), cleanup_mode="stop")
        try:
            base = server.get_uri()
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute('CREATE DATABASE "bench_elicensing"')
            params = conninfo_to_dict(base)
            params["dbname"] = "bench_elicensing"
            url = make_conninfo(**params)  # type: ignore[arg-type]
            migrations.upgrade(url)
            rows = loop.run(_run(url))  # the loop the service runs on in production
        finally:
            server.cleanup()
    section = _report(rows)
    print(section)
    _write(section)


if __name__ == "__main__":
    main()
