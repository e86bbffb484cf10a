"""CPU seconds per component of a benchmark (process trees, and PostgreSQL backends of one
database), so a figure can say where a machine's cores went."""

from __future__ import annotations

import contextlib
import subprocess
import time

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def postgres_backends(dbname: str) -> list[psutil.Process]:
    """The server processes serving ``dbname`` (their title names it), plus the WAL writer."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or ())
        if title.startswith("postgres:") and (f" {dbname} " in title or "walwriter" in title):
            found.append(proc)
    return found


def snapshot(groups: dict[str, subprocess.Popen[bytes]], dbname: str) -> dict[str, float]:
    """CPU seconds used so far by each group's process tree, ``postgres`` and this process; and
    by the whole machine, with what the hypervisor took (``steal``): the machine's figure holds
    what no process tree shows (autovacuum workers come and go, the checkpointer, the kernel)."""
    out = {name: _cpu(_tree(proc.pid)) for name, proc in groups.items()}
    out["postgres"] = _cpu(postgres_backends(dbname))
    out["loadgen"] = time.process_time()
    machine = psutil.cpu_times()
    out["machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
    out["steal"] = machine.steal
    out["wall"] = time.monotonic()
    return out


def steal_share(before: dict[str, float], after: dict[str, float]) -> float:
    """The share of the cores' time the hypervisor gave to others between two snapshots."""
    cores = psutil.cpu_count() or 1
    return (after["steal"] - before["steal"]) / ((after["wall"] - before["wall"]) * cores)


def per_message_ms(
    before: dict[str, float], after: dict[str, float], messages: int
) -> dict[str, float]:
    times = (k for k in after if k not in ("steal", "wall"))  # not CPU used by anything here
    return {k: (after[k] - before.get(k, 0.0)) * 1000 / messages for k in times}


def python_loop_s(n: int = 5_000_000) -> float:
    """Seconds one core takes for ``n`` additions in pure Python: a yardstick that tells a slow
    machine from a slow change when figures of different sessions are compared."""
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start
