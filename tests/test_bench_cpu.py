"""The benchmarks' CPU accounting (a harness helper): the hypervisor's share of the cores'
time, and per-message CPU that leaves out what is not CPU used here (steal, wall time)."""

from __future__ import annotations

import psutil

from bench import cpu


def test_steal_is_a_share_of_every_core_over_the_interval() -> None:
    cores = psutil.cpu_count() or 1
    before = {"steal": 10.0, "wall": 100.0}
    after = {"steal": 10.0 + 0.5 * cores, "wall": 102.0}  # half a core-second a second per core
    assert cpu.steal_share(before, after) == 0.25


def test_per_message_cpu_leaves_out_steal_and_wall_time() -> None:
    before = {"workers": 1.0, "machine": 5.0, "steal": 1.0, "wall": 10.0}
    after = {"workers": 3.0, "machine": 9.0, "steal": 2.0, "wall": 20.0}
    assert cpu.per_message_ms(before, after, 1000) == {"workers": 2.0, "machine": 4.0}
