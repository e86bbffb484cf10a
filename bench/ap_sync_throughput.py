"""Accounting point sync throughput: real worker processes against a simulator process.

For each adapter latency (0 and 20 ms), worker process count (1, 4, 8) and mode (claim batch /
merge: ``1/each`` = one claim and one merge transaction per AP; ``100/each`` = claims of 100, each
AP merged in its own transaction as its fetch returns; ``100/batch`` and ``500/batch`` = claims of
100 or 500 merged in one transaction) it takes a fresh database, seeds N accounting points with
one controllable unit each (set-based; the sync rows come from the trigger), and runs
``tether worker --processes W --once`` (with TETHER_AP_CLAIM_BATCH=B and TETHER_AP_BATCH_APPLY)
as a subprocess until every AP has ``last_synced_at``. History is on (it is part of the schema):
each sync's coordinate update writes an ``accounting_point_history`` row.

The simulator (``tether simulate datahub``) runs in its own process, so it does not share a GIL
with the workers, but it does share the machine's cores with them and with PostgreSQL.

Reported per run: wall time from starting the worker command until all N are synced (includes
process start-up), the syncs/s that gives, the steady rate between the first and the last merge,
the CPU time per AP of the worker command and its processes (start-up included) and of the
embedded PostgreSQL server (all its processes; not with ``--server-url``, whose server others may
use), steadier than the rates on a shared machine, and the peak RSS (VmHWM) of the largest worker
process.

Run: ``uv run python -m bench.ap_sync_throughput [--aps N] [--quick] [--server-url URL]``.
Results are written to bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
import psycopg

from bench import ap_reference_loop
from bench.common import postgres, scratch_database, write_section
from tether.accountingpoints.domain import make_gsrn

HEADING = "## Accounting point sync throughput"
TOKEN = "bench-adapter-token"
RUN_TIMEOUT_S = 300.0
DEFAULT_MODES = "1/each,100/each,100/batch"


@dataclass(frozen=True, kw_only=True)
class Run:
    latency_ms: int
    workers: int
    batch: int
    apply: str
    aps: int
    synced: int
    failed: int
    wall_s: float
    steady_per_s: float
    peak_rss_mb: float
    history_rows: int
    worker_cpu_s: float = 0.0
    postgres_cpu_s: float | None = None

    @property
    def per_s(self) -> float:
        return self.synced / self.wall_s if self.wall_s else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after {timeout_s} s") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def simulator(count: int, latency_ms: int, log: Path) -> Iterator[str]:
    """``tether simulate datahub`` in its own process; yields its data URL."""
    port, control = _free_port(), _free_port()
    args = [
        sys.executable,
        "-m",
        "tether",
        "simulate",
        "datahub",
        "--count",
        str(count),
        "--latency-ms",
        str(latency_ms),
        "--port",
        str(port),
        "--control-port",
        str(control),
        "--token",
        TOKEN,
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def seed(url: str, count: int) -> None:
    """``count`` APs (the simulator's GSRNs) with one CU each; the trigger adds the sync rows."""
    gsrns = [make_gsrn("70705750", n) for n in range(1, count + 1)]
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('tether.actor', 'bench-seed', true)")
        conn.execute("INSERT INTO ap.accounting_point (gsrn) SELECT unnest(%s::text[])", (gsrns,))
        conn.execute(
            "INSERT INTO ap.controllable_unit (name, accounting_point_id)"
            " SELECT 'cu ' || a.gsrn, a.id FROM ap.accounting_point a"
        )
        # the seeded versions must be older than the sync's transaction for history to be kept
        conn.execute("UPDATE ap.accounting_point SET recorded_at = now() - interval '1 hour'")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _worker_pids(parent: psutil.Process) -> list[int]:
    """The worker processes, forked or spawned (not the launcher, not multiprocessing's
    resource tracker)."""
    pids = []
    with contextlib.suppress(psutil.Error):
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if not any("resource_tracker" in part for part in child.cmdline()):
                    pids.append(child.pid)
    return pids


def run_once(
    server_url: str,
    template_url: str,
    adapter_url: str,
    *,
    aps: int,
    latency_ms: int,
    workers: int,
    batch: int,
    apply: str,
    log: Path,
    worker_env: list[str],
    own_server: bool = False,
) -> Run:
    with scratch_database(server_url, "bench_ap", template_url=template_url) as url:
        seed(url, aps)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "DATABASE_URL": url,
            "TETHER_AP_ADAPTER_URL": adapter_url,
            "TETHER_AP_ADAPTER_TOKEN": TOKEN,
            "TETHER_AP_CLAIM_BATCH": str(batch),
            "TETHER_AP_BATCH_APPLY": "true" if apply == "batch" else "false",
            "TETHER_LOG_LEVEL": "WARNING",
            **dict(kv.split("=", 1) for kv in worker_env),
        }
        args = [sys.executable, "-m", "tether", "worker", "--processes", str(workers), "--once"]
        args += ["--only", "accounting-points"]
        if apply == "reference":
            ap_reference_loop.prepare(url)
            args = [sys.executable, "-m", "bench.ap_reference_loop", url, adapter_url, TOKEN]
            args.append(str(workers))
        peak_kb: dict[int, int] = {}
        synced = failed = 0
        with psycopg.connect(url, autocommit=True) as conn, log.open("ab") as out:
            server = _postmaster(conn) if own_server else None
            cpu_before, pg_before = _children_cpu_s(), _tree_cpu_s(server)
            start = time.perf_counter()
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
            launcher = psutil.Process(proc.pid)
            try:
                deadline = start + RUN_TIMEOUT_S
                while time.perf_counter() < deadline:
                    for pid in _worker_pids(launcher):
                        peak_kb[pid] = max(peak_kb.get(pid, 0), _hwm_kb(pid))
                    row = conn.execute(
                        "SELECT count(*) FILTER (WHERE last_synced_at IS NOT NULL),"
                        " count(*) FILTER (WHERE last_error IS NOT NULL)"
                        " FROM ap.accounting_point_sync"
                    ).fetchone()
                    assert row is not None
                    synced, failed = row
                    if synced >= aps:
                        break
                    if proc.poll() is not None:  # --once: it stops when nothing is due
                        break
                    time.sleep(0.1)
                wall = time.perf_counter() - start
                proc.wait(timeout=60)
            finally:
                _stop(proc)
            worker_cpu = _children_cpu_s() - cpu_before  # the launcher reaps its processes
            time.sleep(0.5)  # the workers' backends end and are reaped by the postmaster
            pg_cpu = _tree_cpu_s(server)
            span = conn.execute(
                "SELECT extract(epoch FROM max(last_synced_at) - min(last_synced_at)),"
                " (SELECT count(*) FROM ap.accounting_point_history)"
                " FROM ap.accounting_point_sync"
            ).fetchone()
            assert span is not None
        steady = (synced - 1) / float(span[0]) if span[0] else 0.0
        return Run(
            latency_ms=latency_ms,
            workers=workers,
            batch=batch,
            apply=apply,
            aps=aps,
            synced=synced,
            failed=failed,
            wall_s=wall,
            steady_per_s=steady,
            peak_rss_mb=max(peak_kb.values(), default=0) / 1024,
            history_rows=int(span[1]),
            worker_cpu_s=worker_cpu,
            postgres_cpu_s=None if pg_cpu is None or pg_before is None else pg_cpu - pg_before,
        )


def _postmaster(conn: psycopg.Connection[tuple[object, ...]]) -> psutil.Process | None:
    """The server's postmaster, when it runs on this machine as a process we can read."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    with contextlib.suppress(psutil.Error, TypeError):
        return psutil.Process(psutil.Process(int(row[0])).ppid())  # type: ignore[index]
    return None


def _tree_cpu_s(server: psutil.Process | None) -> float | None:
    """CPU seconds of the postmaster, its live processes and those it has reaped."""
    if server is None:
        return None
    try:
        total = sum(server.cpu_times()[:4])  # user, system, children_user, children_system
    except psutil.Error:
        return None
    for child in server.children():
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return float(total)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _table(runs: list[Run]) -> list[str]:
    lines = [
        "| latency | workers | claim batch | merge | synced | wall s | syncs/s | steady syncs/s "
        "| worker CPU ms per AP | PostgreSQL CPU ms per AP | peak worker RSS MB | history rows |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        pg = "" if r.postgres_cpu_s is None else f"{1000 * r.postgres_cpu_s / r.aps:.2f}"
        synced = f"{r.synced}/{r.aps}" + (f" ({r.failed} failed)" if r.failed else "")
        lines.append(
            f"| {r.latency_ms} ms | {r.workers} | {r.batch} | {_MERGE[r.apply]} | {synced} "
            f"| {r.wall_s:.1f} "
            f"| {r.per_s:.0f} | {r.steady_per_s:.0f} | {1000 * r.worker_cpu_s / r.aps:.2f} "
            f"| {pg} | {r.peak_rss_mb:.0f} | {r.history_rows} |"
        )
    return lines


def _ratios(runs: list[Run]) -> list[str]:
    """tether's rate as a share of the reference loop's, same latency and worker count."""
    ref = {(r.latency_ms, r.workers): r for r in runs if r.apply == "reference"}
    lines = [
        f"- {r.latency_ms} ms, {r.workers} worker(s), claim {r.batch} {_MERGE[r.apply]}: "
        f"{r.per_s / ref[k].per_s:.2f} of the reference loop (wall time included)"
        for r in runs
        if r.apply != "reference" and (k := (r.latency_ms, r.workers)) in ref and ref[k].per_s
    ]
    return [*lines, ""] if lines else []


_MERGE = {
    "each": "tx per AP",
    "batch": "tx per batch",
    "reference": "reference loop (JSONB row, no merge)",
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=None, help="APs per run (default 5000)")
    parser.add_argument("--quick", action="store_true", help="1000 APs, batch 100 only")
    parser.add_argument("--server-url", default=None, help="a PostgreSQL server (else embedded)")
    parser.add_argument("--latencies", default="0,20", help="adapter latencies in ms")
    parser.add_argument("--workers", default="1,4,8", help="worker process counts")
    parser.add_argument(
        "--modes",
        default=None,
        help="claim batch/merge pairs: each = one transaction per AP, batch = one per claimed"
        " batch, 100/reference = the reference loop (default 1/each,100/each,100/batch)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the workers, e.g. TETHER_DB_POOL_MAX=2 (repeatable)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def bench(server_url: str, opts: argparse.Namespace, log: Path) -> list[Run]:
    aps = opts.aps or (1000 if opts.quick else 5000)
    modes = [
        (int(size), apply)
        for size, apply in (
            m.split("/")
            for m in (opts.modes or ("100/batch" if opts.quick else DEFAULT_MODES)).split(",")
        )
    ]
    with psycopg.connect(server_url) as conn:
        print("PostgreSQL", conn.info.server_version, flush=True)
    runs: list[Run] = []
    with scratch_database(server_url, "bench_ap_tpl", migrate=True) as template_url:
        for latency in _ints(opts.latencies):
            with simulator(aps, latency, log) as adapter_url:
                for batch, apply in modes:
                    for workers in _ints(opts.workers):
                        run = run_once(
                            server_url,
                            template_url,
                            adapter_url,
                            aps=aps,
                            latency_ms=latency,
                            workers=workers,
                            batch=batch,
                            apply=apply,
                            log=log,
                            worker_env=opts.worker_env,
                            own_server=not opts.server_url,
                        )
                        print(_table([run])[-1], flush=True)
                        runs.append(run)
    return runs


def main() -> None:
    opts = _parse()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "processes.log"
        with postgres(opts.server_url) as server_url:
            runs = bench(server_url, opts, log)
        server_desc = (
            "PostgreSQL server at --server-url"
            if opts.server_url
            else "embedded PostgreSQL (pgserver)"
        )
        errors = [ln for ln in log.read_text(errors="replace").splitlines() if "ERROR" in ln]
    command = "uv run python -m bench.ap_sync_throughput " + " ".join(sys.argv[1:])
    section = "\n".join(
        [
            HEADING,
            "",
            f"{date.today().isoformat()}, {os.cpu_count()} cores,"
            f" {platform.python_implementation()}"
            f" {platform.python_version()}, {server_desc}, simulator and workers as separate"
            f" processes on the same machine (`{command.strip()}`).",
            "",
            *_table(runs),
            "",
            *_ratios(runs),
        ]
    )
    print(section)
    for line in errors[:10]:
        print("worker/simulator log:", line)
    if not opts.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
