"""PostgreSQL cost of merging adapter answers: one AP per call versus a batch per call.

No HTTP and no worker: answers come from the simulator's in-process ``Datahub``, are parsed and
validated by the real client code (``parse_accounting_point``), and are merged with
``ap.apply_sync`` (one transaction per AP) or ``ap.apply_sync_batch`` (one transaction per
batch) from one connection. This isolates the database's share of a sync, which the
end-to-end benchmark (``bench.ap_sync_throughput``) cannot separate from HTTP and Python.

Two rounds per mode on a fresh database: the first sync of every AP (inserts) and a re-sync after
``Datahub.mutate`` changed 10 % of them (mostly no-op merges, as a daily re-sync is).

"backend CPU" is the CPU time of the PostgreSQL backend that ran the merges, read from
``/proc`` (a server on this machine, Linux): on a shared, busy machine it moves much less than
the wall clock does. It is blank when the server's process cannot be read.

Run: ``uv run python -m bench.ap_apply_cost [--aps N] [--server-url URL]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from bench.common import postgres, scratch_database
from tether.accountingpoints.client import parse_accounting_point, to_sync_payload
from tether.accountingpoints.simulator import ChangeKind, Datahub

TZ = "Europe/Oslo"


def payloads(hub: Datahub) -> list[tuple[str, dict[str, Any]]]:
    tz = ZoneInfo(TZ)
    since = datetime(2020, 1, 1, tzinfo=tz)
    out = []
    for gsrn in hub.gsrns:
        answer = hub.answer(gsrn, since, None)
        out.append((gsrn, to_sync_payload(parse_accounting_point(answer, gsrn=gsrn, tz=tz))))
    return out


def seed(conn: psycopg.Connection[Any]) -> None:
    """Reference data, with the service's own statements."""
    from tether.accountingpoints import reference
    from tether.accountingpoints.repository import queries

    for name, catalogue in (
        ("upsert_grid_areas", reference.GRID_AREAS),
        ("upsert_energy_suppliers", reference.ENERGY_SUPPLIERS),
    ):
        conn.execute(
            queries[name],
            {"business_ids": list(catalogue), "names": list(catalogue.values())},
        )
    conn.commit()


def backend_cpu_s(conn: psycopg.Connection[Any]) -> float | None:
    """CPU seconds (user + system) the connection's backend has used so far, if readable."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def apply_each(conn: psycopg.Connection[Any], items: list[tuple[str, dict[str, Any]]]) -> float:
    start = time.perf_counter()
    for gsrn, data in items:
        conn.execute("SELECT ap.apply_sync(%s, %s, NULL, '23 hours', 'bench')", (gsrn, Jsonb(data)))
        conn.commit()
    return time.perf_counter() - start


def apply_batches(
    conn: psycopg.Connection[Any], items: list[tuple[str, dict[str, Any]]], size: int
) -> float:
    start = time.perf_counter()
    for at in range(0, len(items), size):
        chunk = [{"gsrn": g, "started_at": None, "data": d} for g, d in items[at : at + size]]
        rows = conn.execute(
            "SELECT outcome FROM ap.apply_sync_batch(%s, '23 hours', 'bench')", (Jsonb(chunk),)
        ).fetchall()
        if any(r[0] != "ok" for r in rows):
            raise RuntimeError(f"batch rejected items: {rows}")
        conn.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=2000)
    parser.add_argument("--server-url", help="PostgreSQL server (default: embedded)")
    args = parser.parse_args()

    hub = Datahub.generate(args.aps, tz=TZ)
    first = payloads(hub)
    for gsrn in hub.gsrns[::10]:
        hub.mutate(gsrn, ChangeKind.SUPPLIER_SWITCH)
    second = payloads(hub)

    with postgres(args.server_url) as server_url:
        with psycopg.connect(server_url) as probe:
            version = probe.info.server_version
        print(f"# {datetime.now():%Y-%m-%d}, PostgreSQL {version}, {platform.python_version()}")
        print("| mode | round | APs | seconds | ms per AP | APs/s | backend CPU ms per AP |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for label, size in (
            ("one AP per transaction", 1),
            ("batch of 100", 100),
            ("batch of 500", 500),
        ):
            with (
                scratch_database(server_url, "bench_apply", migrate=True) as url,
                psycopg.connect(url) as conn,
            ):
                seed(conn)
                for round_name, items in (("first sync", first), ("re-sync", second)):
                    cpu_before = backend_cpu_s(conn)
                    took = (
                        apply_each(conn, items) if size == 1 else apply_batches(conn, items, size)
                    )
                    cpu_after = backend_cpu_s(conn)
                    n = len(items)
                    cpu = (
                        f"{1000 * (cpu_after - cpu_before) / n:.3f}"
                        if cpu_before is not None and cpu_after is not None
                        else ""
                    )
                    print(
                        f"| {label} | {round_name} | {n} | {took:.2f} | "
                        f"{1000 * took / n:.3f} | {n / took:.0f} | {cpu} |"
                    )


if __name__ == "__main__":
    main()
