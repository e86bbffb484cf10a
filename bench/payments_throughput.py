"""Payments throughput: HTTP intake to ``MOTTATT`` and end to end to ``OK``, on real processes.

Processes (all on this machine, sharing its cores): a private ``nats-server`` with JetStream,
the Oppdrag simulator (``tether simulate oppdrag``), the API (``tether serve``) and
``tether worker --only payments --processes W``. Two intake paths (``--intake``):
- ``http``: the load generator posts dagpenger messages to ``POST /api/v1/payments/dagpenger``
  from C concurrent clients (each waits for its 202);
- ``nats``: it publishes them to JetStream (``payments.dagpenger.v1``, key in
  ``Transaction-ID``) from C concurrent publishers (each waits for JetStream's ack); the
  workers' intake consumer takes each fetched batch in one transaction. Intake time = first
  publish until every message is logged; latency = publish to its logging (``received_at``,
  the clock at its INSERT; the batch commits one round trip later).

Scenarios, each at concurrency 1, 10 and 100:
- ``cases``: N cases, one message each (each becomes a first order, ``NY``).
- ``hot``: 10 cases, M messages each, every message changing the amount: each case's messages
  take turns behind its order at the payment system, so this measures the per-case round trip.
- ``mixed``: N messages, every tenth to one of 2 hot cases (a new amount each time), the others
  each a case of its own: a few queueing cases among many quiet ones (the worker's pauses
  follow whether messages wait behind a case, `payments/rounds.py`).

Open loop (``--rate R``): on either path the n-th message is due at n / R seconds and leaves
then, whatever the earlier ones are doing, and its latency runs from its due time (a server that
falls behind shows in the latency, instead of slowing the offered load as closed-loop clients
do); the reference probes go at the same rate. Use a rate below saturation to read p99.

Reference, measured in the same run at the same concurrency on the same API process: an
authenticated ``GET /api/v1/payments/status/<unknown key>`` (the same credential check, one
indexed SELECT on the same pool, a 404): what this API answers per second when a request does
next to nothing, so the intake figures can be read against the machine's state at the time.

Every request carries an API key with scopes ``read`` and ``write`` (``tether.core.keys.create``).

Reported: intake messages/s (POST answered 202: the message is logged and, unless its case waits
for a receipt, planned with ``MOTTATT`` in the same transaction), p50/p99 intake latency,
end-to-end messages/s until every message of the run is ``OK``/``FEILET``, and the peak RSS
(VmHWM) of the largest worker process.

Also reported: the WAL the server wrote per message (its WAL position), and CPU milliseconds
per message of each component (process trees; PostgreSQL =
the backends of the benchmark's database plus the WAL writer), from the first POST of a row
until its last message is final. Run: ``uv run python -m bench.payments_throughput --help``.
Results go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg

from bench import cpu, http_load
from bench.common import percentile, postgres, scratch_database, write_section
from tether.core import keys, loop

HEADING = "## Payments throughput"
RUN_TIMEOUT_S = 600.0
API_PATH = "/api/v1/payments/dagpenger"
INTAKE_STREAM = "PAYMENTS"  # the defaults of TETHER_PAYMENTS_INTAKE_STREAM / _SUBJECT
INTAKE_SUBJECT = "payments.dagpenger.v1"
STATUS_PATH = "/api/v1/payments/status"


@dataclass(frozen=True, kw_only=True)
class Run:
    scenario: str
    path: str
    concurrency: int
    messages: int
    intake_s: float
    e2e_s: float
    p50_ms: float
    p99_ms: float
    failed: int
    ref_per_s: float
    ref_p99_ms: float
    load: float
    steal: float  # the share of the cores' time the hypervisor took during the row
    wal_kb: float  # the server's WAL written per message, intake start to all final
    cpu: dict[str, float]  # CPU ms per message by component, intake start to all final
    cycle: str = ""  # hot: a case's round trip from its orders' own timestamps
    timeline: str = ""  # --timeline: the intake latency second by second (open loop)

    def row(self) -> str:
        return (
            f"| {self.path} | {self.scenario} | {self.concurrency} | {self.messages} | "
            f"{self.messages / self.intake_s:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | "
            f"{self.messages / self.e2e_s:,.0f} | {self.failed} | "
            f"{self.ref_per_s:,.0f} | {self.ref_p99_ms:.1f} | {self.load:.1f} | "
            f"{self.steal * 100:.0f} | {self.wal_kb:.1f} | "
            + " / ".join(f"{self.cpu[k]:.2f}" for k in CPU_PARTS)
            + " |"
        )


CPU_PARTS = ("api", "workers", "postgres", "sim", "nats", "loadgen", "machine")


HEADER = (
    "| intake | scenario | clients | messages | intake msg/s | p50 ms | p99 ms | end-to-end msg/s |"
    " FEILET | reference req/s | reference p99 ms | load avg | steal % | WAL KB/msg |"
    " CPU ms/msg: API / workers / PostgreSQL / simulator / NATS / load generator / machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.args!r} did not listen on {port}")


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, port: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own group, stopped with SIGTERM (SIGKILL after 20 s)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if port is not None:
            _wait_listening(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def _weekdays(first: date, count: int) -> list[date]:
    out: list[date] = []
    day = first
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def make_message(sak_id: str, amount: int) -> bytes:
    """Two reporting periods of ten weekdays each, paying ``amount`` a day."""
    days = _weekdays(date(2024, 6, 3), 20)
    utbetalinger = [
        {
            "meldeperiode": f"mp{i // 10 + 1}",
            "dato": d.isoformat(),
            "sats": amount,
            "utbetaltBeløp": amount,
            "utbetalingstype": "Dagpenger",
        }
        for i, d in enumerate(days)
    ]
    body = {
        "sakId": sak_id,
        "behandlingId": f"b{amount}",
        "ident": "12345678910",
        "vedtakstidspunktet": "2024-06-20T10:00:00",
        "utbetalinger": utbetalinger,
    }
    return json.dumps(body).encode()


async def post_all(
    api: str,
    items: list[tuple[str, bytes]],
    concurrency: int,
    token: str,
    *,
    reference: bool = False,
    rate: float = 0.0,
    timeline: tuple[dict[str, float], dict[str, float], dict[str, float]] | None = None,
) -> tuple[float, list[float]]:
    """Post every (key, body) from ``concurrency`` keep-alive connections (``http_load``'s raw
    client: aiohttp took 0.19 ms of CPU a request at 1,000/s, a tenth of the machine's CPU a
    message, from the cores the system under test shares; httpx more).

    With ``rate`` (open loop): the n-th request is due at n / rate seconds and is sent then by
    the next free client, whatever the earlier ones are doing (one that waits for a free client
    waits on the clock), and its latency runs from when it was due, so a server falling behind
    shows in the latency instead of slowing the offered load. ``timeline`` collects each key's
    due, sent and answered times for ``latency_timeline``. (Not one task per request: creating
    20,000 of them at once made the first second's requests leave up to 250 ms late.)"""
    latencies: list[float] = []
    address = urlsplit(api)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    expected = 404 if reference else 202
    marks: tuple[dict[str, float], dict[str, float], dict[str, float]] = timeline or ({}, {}, {})

    def request(key: str, body: bytes) -> bytes:
        if reference:  # the same credential check and one indexed SELECT: a 404
            return http_load.request_bytes(host, port, f"{STATUS_PATH}/{key}", token, method="GET")
        return http_load.request_bytes(
            host, port, API_PATH, token, body, headers={"Transaction-ID": key}
        )

    numbered = enumerate(items)  # shared by the clients, each taking the next
    connections = [http_load.Connection(host, port) for _ in range(concurrency)]

    async def client(connection: http_load.Connection) -> None:
        for n, (key, body) in numbered:
            at = start + n / rate if rate else time.perf_counter()  # when it is due
            if at > time.perf_counter():
                await asyncio.sleep(at - time.perf_counter())
            sent = time.perf_counter()
            # a post on a dropped connection is sent again: its key makes that safe
            status, text = await connection.ask(request(key, body))
            answered = time.perf_counter()
            latencies.append(answered - at)
            marks[0][key], marks[1][key], marks[2][key] = (  # epoch s: due, sent, answered
                epoch + at - start,
                epoch + sent - start,
                epoch + answered - start,
            )
            if status != expected:
                raise RuntimeError(f"{key}: answered {status}: {text[:200]!r}")

    start, epoch = time.perf_counter(), time.time()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    retries = sum(c.retries for c in connections)
    if retries:
        print(f"  {retries} post(s) retried after a dropped connection", flush=True)
    return time.perf_counter() - start, latencies


async def publish_all(
    nats_url: str, items: list[tuple[str, bytes]], concurrency: int, rate: float = 0.0
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Publish every (key, body) to the intake subject from ``concurrency`` publishers, each
    awaiting JetStream's acknowledgement (stored) before its next, together at most ``rate``
    messages/s (0: as fast as they go); returns the time taken, each key's publish start (its
    due time in the open loop) and when it was really published (epoch seconds)."""
    import nats

    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    started: dict[str, float] = {}
    sent: dict[str, float] = {}
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        with contextlib.suppress(Exception):  # the worker creates it too
            await js.add_stream(name=INTAKE_STREAM, subjects=[INTAKE_SUBJECT])

        async def publisher() -> None:
            while not queue.empty():
                key, body = queue.get_nowait()
                if rate:  # the n-th message is due at n / rate seconds; latency from then
                    late = start + len(started) / rate - time.perf_counter()
                    started[key] = time.time() + late  # its place is taken: the due time
                    if late > 0:
                        await asyncio.sleep(late)
                else:
                    started[key] = time.time()
                sent[key] = time.time()
                await js.publish(INTAKE_SUBJECT, body, headers={"Transaction-ID": key})

        start = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        return time.perf_counter() - start, started, sent
    finally:
        await nc.drain()


def latency_timeline(
    started: dict[str, float], sent: dict[str, float], logged: dict[str, float]
) -> str:
    """The intake latency second by second of the messages' due times: whether a p99 comes from
    a few stalls or from queueing all along, and how late the publishers themselves were (a
    late publisher means the load generator, not tether, was short of CPU; over HTTP a request
    also waits for one of the clients' connections)."""
    first = min(started.values())
    buckets: dict[int, list[tuple[float, float]]] = {}
    for key, due in started.items():
        if key in logged:
            buckets.setdefault(int(due - first), []).append(
                (max(0.0, logged[key] - due), sent[key] - due)
            )
    out = [
        f"  second 0 = {datetime.fromtimestamp(first, UTC):%H:%M:%S.%f} UTC (epoch {first:.3f}):"
        " to compare with the server's and the processes' logs",
        "  second | messages | p50 ms | p99 ms | max ms | publisher late, max ms",
    ]
    for second, rows in sorted(buckets.items()):
        lat = [r[0] for r in rows]
        out.append(
            f"  {second:6d} | {len(rows):8d} | {percentile(lat, 0.5) * 1000:6.1f} | "
            f"{percentile(lat, 0.99) * 1000:6.1f} | {max(lat) * 1000:6.1f} | "
            f"{max(r[1] for r in rows) * 1000:.1f}"
        )
    return "\n".join(out)


def _pause(least_s: float, query_s: float) -> None:
    """Sleep between two polls of the harness: at least ``least_s``, and 20 times what the last
    poll's query took, so that counting a long run's rows (the count grows with the run) never
    takes more than a twentieth of a core from the system being measured."""
    time.sleep(max(least_s, 20 * query_s))


def last_inbound_seq(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM pay.inbound").fetchone()
    return int(row[0]) if row else 0


def wait_logged(db_url: str, expected: int, after_seq: int) -> tuple[float, dict[str, float]]:
    """Block until every published message is logged (MOTTATT, or waiting behind its case's
    order); returns when (epoch seconds) and each key's logging time (``received_at``: the
    clock at its INSERT, the commit one round trip later).

    Polls the highest sequence number (one index probe) and counts the run's rows only once it
    says they may all be there: counting at every poll grew with the row to 12 ms of the
    database's CPU per poll, taken from the system under test."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            asked = time.monotonic()
            top = conn.execute("SELECT coalesce(max(seq), 0) FROM pay.inbound").fetchone()
            assert top is not None
            row = (0,)
            if top[0] - after_seq >= expected:  # a gap (a rolled-back batch) may remain
                row = conn.execute(
                    "SELECT count(*) FROM pay.inbound WHERE seq > %s", (after_seq,)
                ).fetchone() or (0,)
            if row[0] >= expected:
                done = time.time()
                rows = conn.execute(
                    "SELECT original_key, extract(epoch FROM received_at)::float8"
                    " FROM pay.inbound WHERE seq > %s",
                    (after_seq,),
                ).fetchall()
                return done, dict(rows)
            _pause(0.01, time.monotonic() - asked)
    raise RuntimeError(f"intake of {expected} messages did not finish within {RUN_TIMEOUT_S} s")


def wal_bytes(db_url: str) -> int:
    """The server's WAL position in bytes (exact; ``pg_stat_wal`` lags by up to its flush
    interval, a second, too long for a short row): on the benchmark's own embedded
    server only its rows write any; on a shared ``--server-url``, others' writes count too. The
    volume decides how often a commit must open a new WAL segment (bench/RESULTS.md, session
    26: a new segment zero-filled inside a commit was the intake's p99)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
    return int(row[0]) if row else 0


def last_status_id(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM pay.status").fetchone()
    return int(row[0]) if row else 0


def wait_final(db_url: str, prefix: str, expected: int, after_id: int) -> int:
    """Block until every message of the run has a final status; returns how many FEILET.

    Reads only the statuses stored since the run began (a primary-key range, not the whole
    table), so the harness adds little to the database's work while it waits."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            asked = time.monotonic()
            row = conn.execute(
                "SELECT count(DISTINCT original_key) FILTER (WHERE status IN ('OK', 'FEILET')),"
                " count(DISTINCT original_key) FILTER (WHERE status = 'FEILET')"
                " FROM pay.status WHERE id > %s AND original_key LIKE %s",
                (after_id, prefix + "%"),
            ).fetchone()
            assert row is not None
            if row[0] >= expected:
                return int(row[1])
            _pause(0.05, time.monotonic() - asked)
    raise RuntimeError(f"run {prefix} did not finish within {RUN_TIMEOUT_S} s")


def hot_cycle(db_url: str, prefix: str) -> str:
    """A hot case's cycle, from its orders' own clocks: ``created_at`` of one order to the next
    (each is stored by the transaction that booked the previous one's receipt, so this is the
    whole round trip), split at ``sent_at`` (the sender's bookkeeping after JetStream took the
    order) into stored -> sent and sent -> receipt booked (``receipt_at``, its transaction's
    start). The first and last tenth of the run are left out (ramp-up, tail)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT sak_id, extract(epoch FROM created_at)::float8,"
            " extract(epoch FROM sent_at)::float8, extract(epoch FROM receipt_at)::float8"
            " FROM pay.oppdrag WHERE original_key LIKE %s ORDER BY sak_id, created_at",
            (prefix + "%",),
        ).fetchall()
    if len(rows) < 20:
        return ""
    times = sorted(r[1] for r in rows)
    first, last = times[len(times) // 10], times[len(times) * 9 // 10]
    cycle, to_sent, to_receipt = [], [], []
    for prev, row in itertools.pairwise(rows):
        if prev[0] == row[0] and first <= prev[1] <= last and None not in prev:
            cycle.append(row[1] - prev[1])
            to_sent.append(prev[2] - prev[1])
            to_receipt.append(prev[3] - prev[2])
    if not cycle:
        return ""
    return (
        f"cycle p50 {percentile(cycle, 0.5) * 1000:.1f} ms, p90 "
        f"{percentile(cycle, 0.9) * 1000:.1f} ms (p50 stored -> sent "
        f"{percentile(to_sent, 0.5) * 1000:.1f} ms, sent -> receipt booked "
        f"{percentile(to_receipt, 0.5) * 1000:.1f} ms)"
    )


def scenario_items(
    scenario: str, prefix: str, cases: int, hot_messages: int
) -> list[tuple[str, bytes]]:
    if scenario == "cases":
        return [(f"{prefix}{i}", make_message(f"{prefix}s{i}"[:30], 500)) for i in range(cases)]
    if scenario == "mixed":  # every tenth message to one of 2 hot cases, the rest each its own
        return [
            (f"{prefix}{i}", make_message(f"{prefix}h{i // 10 % 2}"[:30], 100 + i // 20))
            if i % 10 == 9
            else (f"{prefix}{i}", make_message(f"{prefix}s{i}"[:30], 500))
            for i in range(cases)
        ]
    # round-robin over 10 cases: each client's consecutive posts hit different cases
    return [
        (f"{prefix}{m}-{c}", make_message(f"{prefix}h{c}"[:30], 100 + m))
        for m in range(hot_messages)
        for c in range(10)
    ]


def worker_peak_kb(proc: subprocess.Popen[bytes]) -> int:
    peak = 0
    with contextlib.suppress(psutil.Error):
        for child in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            with contextlib.suppress(OSError, psutil.Error):
                for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
    return peak


def one_run(
    args: argparse.Namespace,
    api: str,
    token: str,
    db_url: str,
    groups: dict[str, subprocess.Popen[bytes]],
    path: str,
    scenario: str,
    concurrency: int,
) -> Run:
    """One row: the reference probe, then the scenario's messages over ``path`` (http / nats)."""
    prefix = f"{path[0]}{scenario[0]}{concurrency}-{uuid.uuid4().hex[:6]}-"
    rate = float(args.rate)
    label = f"{path} at {rate:.0f}/s" if rate else path
    items = scenario_items(scenario, prefix, args.cases, args.hot_messages)
    probes = [(f"{prefix}ref{i}", b"") for i in range(min(len(items), 500))]
    ref_s, ref_lat = loop.run(post_all(api, probes, concurrency, token, reference=True, rate=rate))
    after_id = last_status_id(db_url)
    after_seq = last_inbound_seq(db_url)
    dbname = str(psycopg.conninfo.conninfo_to_dict(db_url)["dbname"])
    before = cpu.snapshot(groups, dbname)
    wal_before = wal_bytes(db_url)
    start = time.perf_counter()
    timeline = ""
    if path == "http":
        marks: tuple[dict[str, float], dict[str, float], dict[str, float]] = ({}, {}, {})
        intake_s, latencies = loop.run(
            post_all(api, items, concurrency, token, rate=rate, timeline=marks)
        )
        if args.timeline and rate:
            timeline = latency_timeline(*marks)
    else:
        first = time.time()
        _, started, sent = loop.run(publish_all(args.nats_url, items, concurrency, rate))
        logged_at, logged = wait_logged(db_url, len(items), after_seq)
        latencies = [max(0.0, at - started[key]) for key, at in logged.items() if key in started]
        if args.timeline:
            timeline = latency_timeline(started, sent, logged)
        intake_s = logged_at - first
    failed = wait_final(db_url, prefix, len(items), after_id)
    e2e_s = time.perf_counter() - start
    after = cpu.snapshot(groups, dbname)
    wal_kb = (wal_bytes(db_url) - wal_before) / len(items) / 1000
    used = cpu.per_message_ms(before, after, len(items))
    return Run(
        scenario=scenario,
        path=label,
        concurrency=concurrency,
        messages=len(items),
        intake_s=intake_s,
        e2e_s=e2e_s,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        failed=failed,
        ref_per_s=len(probes) / ref_s,
        ref_p99_ms=percentile(ref_lat, 0.99) * 1000,
        load=os.getloadavg()[0],
        steal=cpu.steal_share(before, after),
        wal_kb=wal_kb,
        cpu=used,
        cycle=hot_cycle(db_url, prefix) if scenario == "hot" else "",
        timeline=timeline,
    )


def warm_up(args: argparse.Namespace, api: str, token: str, db_url: str) -> None:
    """A few messages over each path, until final, before the first row: the worker processes
    import their job modules when their jobs start (seconds of CPU: compiling what has no
    bytecode yet), which would otherwise be counted against the first row."""
    for path in args.intake.split(","):
        prefix = f"warm-{path}-{uuid.uuid4().hex[:6]}-"
        items = scenario_items("cases", prefix, 50, 0)
        after_id = last_status_id(db_url)
        if path == "http":
            loop.run(post_all(api, items, 10, token))
        else:
            loop.run(publish_all(args.nats_url, items, 10))
        wait_final(db_url, prefix, len(items), after_id)


def run_all(args: argparse.Namespace, server_url: str, tmp: Path) -> tuple[list[Run], int]:
    nats_port, sim_port, sim_control, api_port = (_free_port() for _ in range(4))
    nats_bin = str(Path(sys.executable).parent / "nats-server")
    runs: list[Run] = []
    with scratch_database(server_url, "bench_pay", migrate=True) as db_url:
        _key, token = keys.create(db_url, "bench", ["read", "write"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        env.update(
            DATABASE_URL=db_url,
            TETHER_NATS_URL=f"nats://127.0.0.1:{nats_port}",
            TETHER_LOG_LEVEL="WARNING",
            TETHER_PAYMENTS_OPPDRAG_URL=f"http://127.0.0.1:{sim_port}",
        )
        for name in (
            "round_linger_s",
            "round_idle_linger_s",
            "intake_linger_s",
            "intake_linger_below",
        ):
            if getattr(args, name) is not None:
                env[f"TETHER_PAYMENTS_{name.upper()}"] = str(getattr(args, name))
        if args.deferred_nice is not None:
            env["TETHER_WORKER_DEFERRED_NICE"] = str(args.deferred_nice)
        tether = [sys.executable, "-m", "tether"]
        serve_args = ["--workers", str(args.api_workers)] if args.api_workers > 1 else []
        with (
            process(
                [
                    nats_bin,
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(nats_port),
                    "-sd",
                    str(tmp / "nats"),
                ],
                env,
                tmp / "nats.log",
                nats_port,
            ) as nats,
            process(
                [
                    *tether,
                    "simulate",
                    "oppdrag",
                    "--nats-url",
                    env["TETHER_NATS_URL"],
                    "--port",
                    str(sim_port),
                    "--control-port",
                    str(sim_control),
                ],
                env,
                tmp / "sim.log",
                sim_port,
            ) as sim,
            process(
                [*tether, "serve", "--port", str(api_port), *serve_args],
                env,
                tmp / "api.log",
                api_port,
            ) as api_proc,
            process(
                [*tether, "worker", "--only", "payments", "--processes", str(args.workers)],
                env,
                tmp / "worker.log",
            ) as workers,
        ):
            api = f"http://127.0.0.1:{api_port}"
            groups = {"api": api_proc, "workers": workers, "sim": sim, "nats": nats}
            args.nats_url = env["TETHER_NATS_URL"]
            warm_up(args, api, token, db_url)
            print(HEADER, flush=True)
            for path in args.intake.split(","):
                for scenario in args.scenarios.split(","):
                    for concurrency in (int(c) for c in args.clients.split(",")):
                        run = one_run(args, api, token, db_url, groups, path, scenario, concurrency)
                        print(run.row(), flush=True)
                        if run.cycle:
                            print(f"  hot {run.concurrency} clients: {run.cycle}", flush=True)
                        if run.timeline:
                            print(run.timeline, flush=True)
                        runs.append(run)
            peak = worker_peak_kb(workers)
    return runs, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--hot-messages", type=int, default=100, help="messages per hot case")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="tether worker --processes (default 1, the command's own: one intake process and one"
        " for the deferred jobs; on 2 cores 2 gave a higher p99 and more CPU a message)",
    )
    parser.add_argument("--api-workers", type=int, default=1, help="tether serve --workers")
    parser.add_argument(
        "--scenarios",
        default="cases,hot",
        help="comma-separated: cases, hot, mixed (default cases,hot)",
    )
    parser.add_argument(
        "--round-linger-s",
        type=float,
        default=None,
        help="TETHER_PAYMENTS_ROUND_LINGER_S for the workers (default: the setting's default)",
    )
    parser.add_argument(
        "--round-idle-linger-s",
        type=float,
        default=None,
        help="TETHER_PAYMENTS_ROUND_IDLE_LINGER_S for the workers (default: the setting's default)",
    )
    parser.add_argument(
        "--intake-linger-s",
        type=float,
        default=None,
        help="TETHER_PAYMENTS_INTAKE_LINGER_S for the API (default: the setting's default)",
    )
    parser.add_argument(
        "--intake-linger-below",
        type=int,
        default=None,
        help="TETHER_PAYMENTS_INTAKE_LINGER_BELOW for the API (default: the setting's default)",
    )
    parser.add_argument(
        "--deferred-nice",
        type=int,
        default=None,
        help="TETHER_WORKER_DEFERRED_NICE for the workers (0: every job in every process at one"
        " priority; default: the setting's default)",
    )
    parser.add_argument(
        "--rate",
        "--nats-rate",
        type=float,
        default=0.0,
        help="open loop: messages/s offered on every path, latency from each message's due time"
        " (default 0: closed loop, each client as fast as it goes)",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print each open-loop row's intake latency second by second (p50, p99, max, and how"
        " late the publishers were; over HTTP a client also waits for a free connection):"
        " stalls or queueing",
    )
    parser.add_argument(
        "--intake",
        default="http,nats",
        help="comma-separated intake paths: http (POST), nats (JetStream publish; default both)",
    )
    parser.add_argument(
        "--clients", default="1,10,100", help="comma-separated concurrencies (default 1,10,100)"
    )
    parser.add_argument("--server-url", default=os.environ.get("TETHER_TEST_DATABASE_URL"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    loop_s = cpu.python_loop_s()
    with postgres(args.server_url) as server_url, tempfile.TemporaryDirectory() as tmp:
        runs, peak_kb = run_all(args, server_url, Path(tmp))
    lines = [
        HEADING,
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{args.workers} worker processes, {args.api_workers} API process(es); API, workers, "
        "simulator, NATS and PostgreSQL on one machine. Intake http = POST answered 202 (logged, "
        "and MOTTATT unless the case waits); nats = JetStream publish until logged. "
        "Reference = an authenticated GET answered 404 after one indexed SELECT, same API, same "
        "clients, measured just before each row. Load avg = 1-minute load at the row's end "
        f"(at the start: {start_load:.1f}). Steal = the share of the cores' time the hypervisor "
        "gave to other guests during the row; WAL = what the server wrote to its write-ahead "
        "log per message, from the row's first message until its last is final; machine = "
        "every process's CPU, autovacuum and the kernel's included, per message. Machine "
        f"yardstick: 5 million additions in pure Python took {loop_s:.2f} s at the start.",
        "",
        HEADER,
        *(r.row() for r in runs),
        "",
        f"Peak worker RSS (VmHWM): {peak_kb / 1024:.0f} MiB.",
        "",
        *(f"- {r.path} hot, {r.concurrency} clients: {r.cycle}" for r in runs if r.cycle),
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(HEADING, "\n".join(lines))


if __name__ == "__main__":
    main()
