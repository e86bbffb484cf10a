"""A consumer's stop when the broker went first (Ctrl-C reaches an embedded NATS and tether at
once): the connection is closed, nothing is raised, and a plain drain would have raised."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError

from tether.core import events, loop
from tether.core.events import close_quietly, ensure_stream
from tether.core.natsserver import EmbeddedNats


async def _subscribed(url: str) -> tuple[nats.NATS, object]:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await ensure_stream(js, "STOPTEST", "stoptest.x")
    sub = await js.pull_subscribe("stoptest.x", durable="stoptest", stream="STOPTEST")
    return nc, sub


async def _until_disconnected(nc: nats.NATS) -> None:
    for _ in range(100):
        if not nc.is_connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the client never noticed the broker was gone")


async def test_a_consumer_stops_quietly_when_the_broker_stopped_first(private_dir: Path) -> None:
    server = EmbeddedNats(private_dir / "nats")
    try:
        quiet, quiet_sub = await _subscribed(server.url)
        plain, _ = await _subscribed(server.url)
    finally:
        server.stop()
    await _until_disconnected(quiet)
    await _until_disconnected(plain)
    with pytest.raises(NatsError):  # what a consumer's stop used to raise
        await plain.drain()
    await plain.close()
    await close_quietly(quiet, quiet_sub)
    assert quiet.is_closed


def test_a_stop_with_data_pending_for_a_dropped_broker_closes_quietly(private_dir: Path) -> None:
    """What a publisher wrote while the client was reconnecting is flushed at close into the
    dropped socket, and on tether's loop (uvloop) nats-py raises RuntimeError from the closed
    transport: still a quiet stop, and the client is closed (no reconnect loop left logging)."""

    async def main() -> bool:
        server = EmbeddedNats(private_dir / "nats")
        try:
            nc, sub = await _subscribed(server.url)
        finally:
            server.stop()
        await _until_disconnected(nc)
        await nc.publish("stoptest.x", b"pending while reconnecting")
        await close_quietly(nc, sub)
        return bool(nc.is_closed)

    assert loop.run(main())


class _StuckDrain:
    """A broker client whose drain waits for acknowledgements that never come (nats-py waits
    up to its 30 s drain timeout): the library's side of it, not tether's."""

    def __init__(self) -> None:
        self.closed = False

    async def drain(self) -> None:
        await asyncio.sleep(3600)

    async def close(self) -> None:
        self.closed = True


async def test_a_stop_whose_drain_hangs_is_cut_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulator's stop waited out the whole drain, past its thread's 15 s join: the thread
    lived on with a client reconnecting, and logging, after the session's broker was gone."""
    monkeypatch.setattr(events, "DRAIN_S", 0.05)
    nc = _StuckDrain()
    await asyncio.wait_for(close_quietly(nc), 5)  # returns: the drain is cut
    assert nc.closed
