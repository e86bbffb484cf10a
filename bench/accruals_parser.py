"""Our NEM12 parser vs nemreader, side by side on the same generated file: values/s, peak memory.

Each parser runs in its own child process, so the peak resident memory it reports is its own.
    uv run python -m bench.accruals_parser --accounts 1000 --months 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import write_section


def _ours(path: str) -> dict[str, float]:
    from tether.accruals.nem import ChannelDays, NemFile

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    nem = NemFile(path)
    values = sum(b.values.size for b in nem.batches() if isinstance(b, ChannelDays))
    seconds = time.perf_counter() - start
    assert nem.rejected is None and not nem.errors
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"values": values, "seconds": seconds, "base_kb": base, "peak_kb": peak}


def _nemreader(path: str) -> dict[str, float]:
    import nemreader

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    data = nemreader.read_nem_file(path)
    values = sum(len(r) for channels in data.readings.values() for r in channels.values())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"values": values, "seconds": seconds, "base_kb": base, "peak_kb": peak}


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
        ours, theirs = _child("ours", path), _child("nemreader", path)
    assert ours["values"] == theirs["values"], (ours, theirs)
    rows = []
    for name, r in (("tether.accruals.nem", ours), ("nemreader 0.9.2", theirs)):
        rate = r["values"] / r["seconds"]
        peak_mb = (r["peak_kb"] - r["base_kb"]) / 1024
        rows.append(
            f"| {name} | {int(r['values']):,} | {r['seconds']:.2f} | {rate:,.0f} | "
            f"{peak_mb:,.1f} | {r['peak_kb'] / 1024:,.1f} |"
        )
    speedup = (ours["values"] / ours["seconds"]) / (theirs["values"] / theirs["seconds"])
    table = "\n".join([
        "| parser | values | seconds | values/s | peak RSS growth MB | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ])  # fmt: skip
    heading = "## accruals: NEM12 parser vs nemreader"
    section = (
        f"{heading} ({date.today().isoformat()})\n\n"
        f"Same generated NEM12 file ({size_mb:.1f} MB, {args.accounts} accounts' interval meters, "
        f"one month, 5/15/30-min mix), each parser in its own process on this 2-core machine "
        f"shared with other work. Ours streams numpy batches of 4,096 channel-days; nemreader "
        f"builds one Reading object per interval.\n\n{table}\n\n"
        f"Speed-up: **{speedup:.1f}x** (target >= 20x).\n"
    )
    print(section)
    if not args.no_write:
        write_section(heading, section)


if __name__ == "__main__":
    main()
