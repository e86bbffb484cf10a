"""The payments benchmark's ``--timeline``: latency per second of due time, and how late the
publishers were (a harness helper; the benchmark itself runs outside the suite)."""

from __future__ import annotations

from bench.payments_throughput import latency_timeline


def test_the_timeline_buckets_by_due_second_and_shows_publisher_lateness() -> None:
    t0 = 1_000.0
    started = {"a": t0, "b": t0 + 0.5, "c": t0 + 1.2, "lost": t0 + 1.3}
    sent = {"a": t0 + 0.001, "b": t0 + 0.52, "c": t0 + 1.2, "lost": t0 + 1.3}
    logged = {"a": t0 + 0.010, "b": t0 + 0.530, "c": t0 + 1.300}  # "lost" never logged
    lines = latency_timeline(started, sent, logged).splitlines()
    assert "00:16:40.000000 UTC (epoch 1000.000)" in lines[0]  # second 0's wall time, for logs
    assert lines[1].split("|")[0].strip() == "second"
    rows = [[cell.strip() for cell in line.split("|")] for line in lines[2:]]
    assert [r[0] for r in rows] == ["0", "1"]
    assert [r[1] for r in rows] == ["2", "1"]  # a message not logged is left out
    assert float(rows[0][4]) == 30.0  # b: due at 0.5 s, logged 30 ms later
    assert float(rows[0][5]) == 20.0  # b's publisher started 20 ms after its due time
    assert float(rows[1][4]) == 100.0
