"""Accounting point event intake: thin change events POSTed to ``tether serve``.

A fresh migrated database with N accounting points (one controllable unit each). Each server
runs as its own process in turn: the reference (``bench/ap_event_reference.py``: the same
uvicorn, a bare ASGI app doing only the necessary work), ``tether serve`` of this checkout, and
``tether serve`` of any ``--before DIR`` checkout (another worktree, run from its source with
this environment), so before, after and the reference are measured in one run. Phases, each for
``--seconds``: single-event POSTs from 1 client, single-event POSTs from 16 concurrent clients
(keep-alive), and batches of 1000 events from 4 clients; the clients (``bench/http_load.py``)
run in this process, on the same machine. Events name random held APs. Then ``tether worker
--once`` syncs against a simulator process, and the coalescing ratio is the events accepted per
adapter call it made.

Run: ``flock /work/notes/bench.lock uv run python -m bench.ap_event_intake [--server-url URL]
[--before /work/main]``. Results are written to bench/RESULTS.md (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psutil
import psycopg

from bench import http_load
from bench.ap_sync_throughput import TOKEN, _free_port, _stop, _wait_listening, seed, simulator
from bench.common import postgres, scratch_database, write_section
from tether.accountingpoints.domain import make_gsrn
from tether.accountingpoints.simulator import EVENT_TYPE
from tether.core import loop

HEADING = "## Accounting point event intake"
BATCH = 1000
PHASES = [
    ("single-event POSTs", 1, 1),
    ("single-event POSTs", 16, 1),
    (f"batches of {BATCH}", 4, BATCH),
]


def _event(gsrn: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/bench",
        "type": EVENT_TYPE,
        "subject": gsrn,
        "data": {"gsrn": gsrn},
    }


def _requests(port: int, token: str, gsrns: list[str], batch: int) -> Callable[[], bytes]:
    def make() -> bytes:
        picked = [_event(random.choice(gsrns)) for _ in range(batch)]
        body = json.dumps(picked[0] if batch == 1 else picked).encode()
        return http_load.request_bytes("127.0.0.1", port, "/api/v1/events", token, body)

    return make


def _git_head(directory: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(directory), "log", "-1", "--format=%h"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def _servers(opts: argparse.Namespace, port: int, token: str) -> list[tuple[str, list[str], str]]:
    """(label, command, PYTHONPATH prefix) of every server measured, the reference first."""
    here = Path(__file__).resolve().parents[1]
    tether = [sys.executable, "-m", "tether", "serve", "--port", str(port), "--no-migrate"]
    reference = [sys.executable, "-m", "bench.ap_event_reference", "--port", str(port)]
    reference += ["--token", token, "--database-url"]  # the URL is appended per run
    servers = [
        ("reference (bare ASGI, same uvicorn)", reference, ""),
        (f"tether serve, {_git_head(here)} (this checkout)", tether, ""),
    ]
    for before in opts.before or []:
        source = Path(before).resolve()
        servers.append((f"tether serve, {_git_head(source)} ({source})", tether, str(source)))
    return servers


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=1000, help="held APs (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    parser.add_argument("--server-url", default=None, help="a PostgreSQL server (else embedded)")
    parser.add_argument(
        "--before",
        action="append",
        help="another checkout whose tether serve is measured too (repeatable)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


def bench(server_url: str, opts: argparse.Namespace, log: Path) -> list[str]:
    token = secrets.token_urlsafe(24)
    gsrns = [make_gsrn("70705750", n) for n in range(1, opts.aps + 1)]
    rows = []
    total = 0
    with scratch_database(server_url, "bench_ev", migrate=True) as url:
        seed(url, opts.aps)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "DATABASE_URL": url,
            "TETHER_EVENTS_TOKEN": token,
            "TETHER_LOG_LEVEL": "WARNING",
        }
        port = _free_port()
        for label, command, source in _servers(opts, port, token):
            run_env = dict(env)
            if source:
                run_env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [source, env.get("PYTHONPATH")])
                )
            argv = [*command, url] if command[-1] == "--database-url" else command
            with log.open("ab") as out:  # from the source's folder: `-m` puts the cwd first
                proc = subprocess.Popen(
                    argv, env=run_env, cwd=source or None, stdout=out, stderr=subprocess.STDOUT
                )
            try:
                _wait_listening(port, proc)
                server = psutil.Process(proc.pid)
                for name, clients, batch in PHASES:
                    before_cpu = server.cpu_times()
                    tally = loop.run(
                        http_load.run(
                            "127.0.0.1",
                            port,
                            _requests(port, token, gsrns, batch),
                            clients=clients,
                            seconds=opts.seconds,
                            expect=202,
                        )
                    )
                    after_cpu = server.cpu_times()
                    cpu = (after_cpu.user - before_cpu.user) + (
                        after_cpu.system - before_cpu.system
                    )
                    events = tally.ok * batch
                    total += events
                    rows.append(
                        f"| {label} | {name} | {clients} | {events} | {tally.seconds:.1f} "
                        f"| {events / tally.seconds:,.0f} | {cpu:.1f} | {tally.failed} |"
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
        f"| coalescing: {total} events (all servers), then {calls} adapter calls | | | | "
        f"| {ratio:,.1f} events per call | | |"
    )
    return rows


def main() -> None:
    opts = _parse()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "processes.log"
        with postgres(opts.server_url) as server_url:
            rows = bench(server_url, opts, log)
    after = os.getloadavg()
    command = "uv run python -m bench.ap_event_intake " + " ".join(sys.argv[1:])
    section = "\n".join(
        [
            HEADING,
            "",
            f"{date.today().isoformat()}, {os.cpu_count()} cores, load average before the run "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after it {after[0]:.2f} {after[1]:.2f} "
            f"{after[2]:.2f} (the machine is shared); each server one process, the clients "
            f"(`bench/http_load.py`) in one process on the same machine, {opts.aps} held APs "
            f"(`{command.strip()}`).",
            "",
            "| server | phase | clients | events accepted | s | events/s | server CPU s "
            "| failed requests |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(section)
    if not opts.no_write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
