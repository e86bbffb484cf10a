"""Our NEM12 parser vs nemreader, side by side on the same generated file: values/s, peak memory.

Each parser runs in its own child process, so the peak resident memory it reports is its own.
    uv run python -m bench.accruals_parser --accounts 1000 --months 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench.common import write_section

REPEAT = 3  # runs of each parser in its process; the best wall and CPU time are reported


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _measure(run: Callable[[], int]) -> dict[str, float]:
    """Values, wall and CPU seconds, and the peak resident memory of ``run`` alone.

    The peak is reset first (``clear_refs``), so what the parent held before starting this
    child, or the imports, do not count.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    base = _status_kb("VmRSS")
    times = []
    for _ in range(REPEAT):  # the best of a few: on a shared machine one run is a lottery
        start, cpu = time.perf_counter(), time.process_time()
        values = run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    peak = _status_kb("VmHWM")
    seconds, cpu_s = min(t[0] for t in times), min(t[1] for t in times)
    return {"values": values, "seconds": seconds, "cpu": cpu_s, "base_kb": base, "peak_kb": peak}


def _ours(path: str) -> dict[str, float]:
    from tether.accruals.nem import ChannelDays, NemFile

    def run() -> int:
        nem = NemFile(path)
        values = sum(b.values.size for b in nem.batches() if isinstance(b, ChannelDays))
        assert nem.rejected is None and not nem.errors
        return values

    return _measure(run)


def _nemreader(path: str) -> dict[str, float]:
    import nemreader

    def run() -> int:
        data = nemreader.read_nem_file(path)
        return sum(len(r) for channels in data.readings.values() for r in channels.values())

    return _measure(run)


def _child(which: str, path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.accruals_parser", "--child", which, path],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000, help="accounts (~57%% interval)")
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.child:
        which, path = args.child
        print(json.dumps((_ours if which == "ours" else _nemreader)(path)))
        return
    from tether.accruals.generator import generate

    with tempfile.TemporaryDirectory(prefix="nem-bench-") as tmp:
        result = generate(args.accounts, args.months, Path(tmp), args.seed)
        path = str(max(result.nem12_files, key=lambda p: p.stat().st_size))  # one whole file
        size_mb = Path(path).stat().st_size / 1e6
        load = os.getloadavg()[0]
        ours, theirs = _child("ours", path), _child("nemreader", path)
    assert ours["values"] == theirs["values"], (ours, theirs)
    rows = []
    for name, r in (("tether.accruals.nem", ours), ("nemreader 0.9.2", theirs)):
        rows.append(
            f"| {name} | {int(r['values']):,} | {r['seconds']:.2f} | {r['cpu']:.2f} | "
            f"{r['values'] / r['seconds']:,.0f} | {r['values'] / r['cpu']:,.0f} | "
            f"{(r['peak_kb'] - r['base_kb']) / 1024:,.1f} |"
        )
    wall_x = (ours["values"] / ours["seconds"]) / (theirs["values"] / theirs["seconds"])
    cpu_x = (ours["values"] / ours["cpu"]) / (theirs["values"] / theirs["cpu"])
    table = "\n".join([
        "| parser | values | wall s | CPU s | values/s (wall) | values/CPU-s | peak memory MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])  # fmt: skip
    heading = "## accruals: NEM12 parser vs nemreader"
    section = (
        f"{heading} ({date.today().isoformat()})\n\n"
        f"Same generated NEM12 file ({size_mb:.1f} MB: one month of up to 1,000 interval meters, "
        f"5/15/30-min mix, from --accounts {args.accounts}), each parser in its own process on "
        f"this 2-core machine, shared with other work (load average {load:.1f} at the start): "
        f"wall times include waiting for a core, CPU seconds are each parser's own work; each "
        f"parser parses the file {REPEAT} times and the best wall and CPU times count. Peak "
        f"memory = growth of the resident set while parsing (VmHWM after clear_refs). Ours "
        f"streams numpy batches of 4,096 channel-days; nemreader builds one Reading object per "
        f"interval.\n\n{table}\n\n"
        f"Speed-up: **{cpu_x:.1f}x** per CPU second, {wall_x:.1f}x wall clock (target >= 20x).\n"
    )
    print(section)
    if not args.no_write:
        write_section(heading, section)


if __name__ == "__main__":
    main()
