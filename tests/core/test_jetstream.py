"""``jetstream`` against a real NATS. ``Publisher``: a round is stored in order with an answer
per message; a refusal, a missing stream, a lost answer and a failed write each reach only the
messages they concern; a round given up ignores its late answers.
``Puller``: batches in order, a short batch at once, nothing within the wait a timeout, a
missing consumer an error, a late delivery kept for the next fetch."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest

from tether.core.errors import UpstreamError
from tether.core.events import ensure_stream
from tether.core.jetstream import Publisher, Puller


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"PUB_{tag}", f"pub.{tag}"


def item(n: int, stream: str) -> tuple[bytes, dict[str, str]]:
    return f"m{n}".encode(), {"Nats-Msg-Id": f"id-{n}", "Nats-Expected-Stream": stream}


async def test_a_round_is_stored_in_order_and_each_message_answered(nc: Any) -> None:
    stream, subject = names()
    js = nc.jetstream()
    await ensure_stream(js, stream, subject)
    publisher = Publisher(nc, subject)
    assert await publisher.publish([], timeout_s=1) == []
    items = [item(n, stream) for n in range(30)]
    assert await publisher.publish(items, timeout_s=5) == [None] * 30
    assert await publisher.publish(items[:3], timeout_s=5) == [None] * 3  # repeats: dropped
    assert (await js.stream_info(stream)).state.messages == 30
    assert [(await js.get_msg(stream, n + 1)).data for n in range(30)] == [d for d, _ in items]
    assert publisher.waiting == {}


async def test_a_refusal_concerns_its_message_only(nc: Any) -> None:
    stream, subject = names()
    await ensure_stream(nc.jetstream(), stream, subject)
    items = [item(0, stream), item(1, "NOT_THIS_STREAM"), item(2, stream)]
    first, refused, third = await Publisher(nc, subject).publish(items, timeout_s=5)
    assert first is None and third is None
    assert refused is not None and refused.startswith("APIError")


async def test_a_publisher_with_a_stream_says_so_in_every_message(nc: Any) -> None:
    stream, subject = names()
    await ensure_stream(nc.jetstream(), stream, subject)
    plain = (b"m", {"Nats-Msg-Id": "plain"})
    assert await Publisher(nc, subject, stream=stream).publish([plain], timeout_s=5) == [None]
    (refused,) = await Publisher(nc, subject, stream="NOT_THIS_STREAM").publish(
        [(b"m", {"Nats-Msg-Id": "other"})], timeout_s=5
    )
    assert refused is not None and refused.startswith("APIError")
    assert plain[1] == {"Nats-Msg-Id": "plain"}  # the caller's headers are not changed


async def test_no_stream_and_no_answer_are_errors(nc: Any) -> None:
    stream, subject = names()
    publisher = Publisher(nc, subject)
    (answer,) = await publisher.publish([item(0, stream)], timeout_s=5)
    assert answer is not None and "503" in answer  # no stream takes the subject
    silent = await nc.subscribe(subject)  # a listener that never answers: no 503 either
    (answer,) = await publisher.publish([item(1, stream)], timeout_s=0.2)
    assert answer == "no acknowledgement within 0.2 s"
    await silent.unsubscribe()


async def test_a_late_answer_of_a_round_given_up_counts_for_no_other(nc: Any) -> None:
    stream, subject = names()
    publisher = Publisher(nc, subject)
    listener = await nc.subscribe(subject)
    (answer,) = await publisher.publish([item(0, stream)], timeout_s=0.1)
    assert answer is not None
    late = await listener.next_msg(timeout=1)
    await listener.unsubscribe()
    await ensure_stream(nc.jetstream(), stream, subject)
    await nc.publish(late.reply, b'{"stream": "X", "seq": 1}')  # the first round's answer
    assert await publisher.publish([item(1, stream)], timeout_s=5) == [None]


async def test_a_failed_write_fails_the_rest_of_its_round(nc: Any) -> None:
    stream, subject = names()
    await ensure_stream(nc.jetstream(), stream, subject)
    items = [item(0, stream), (b"x" * (nc.max_payload + 1), {}), item(2, stream)]
    first, *rest = await Publisher(nc, subject).publish(items, timeout_s=5)
    assert first is None
    assert rest[0] == rest[1] and rest[0] is not None and "MaxPayloadError" in rest[0]


async def stream_of(nc: Any, count: int) -> tuple[str, str, Any]:
    """A stream holding ``count`` messages and a durable pull consumer on it."""
    stream, subject = names()
    js = nc.jetstream()
    await ensure_stream(js, stream, subject)
    assert (
        await Publisher(nc, subject).publish([item(n, stream) for n in range(count)], timeout_s=5)
        == [None] * count
    )
    await js.pull_subscribe(subject, durable="d", stream=stream)
    return stream, subject, js


async def test_a_puller_takes_batches_in_order_and_a_short_one_at_once(nc: Any) -> None:
    stream, _, js = await stream_of(nc, 25)
    puller = Puller(nc, stream, "d")
    first = await puller.fetch(10, wait_s=5)
    started = time.monotonic()
    rest = await puller.fetch(100, wait_s=5)
    assert time.monotonic() - started < 1  # what is there, not a full batch
    assert [m.data for m in first + rest] == [f"m{n}".encode() for n in range(25)]
    for msg in first + rest:
        await msg.ack()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await puller.fetch(10, wait_s=0.3)
    assert 0.25 < time.monotonic() - started < 2
    for _ in range(50):  # the acks were written, not awaited
        info = await js.consumer_info(stream, "d")
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.05)
    assert info.num_pending == 0 and info.num_ack_pending == 0


async def test_a_puller_of_no_consumer_is_refused(nc: Any) -> None:
    stream, _, _ = await stream_of(nc, 1)
    with pytest.raises(UpstreamError, match="refused a pull"):
        await Puller(nc, stream, "nobody").fetch(10, wait_s=2)


@dataclass
class Delivered:
    subject: str
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


async def test_a_late_delivery_is_kept_and_another_requests_status_dropped(nc: Any) -> None:
    puller = Puller(nc, "S", "d")
    await puller._delivered(Delivered("late", b"late"))  # after its request was given up
    await puller._delivered(Delivered(f"{puller.inbox}.7", headers={"Status": "503"}))
    assert [m.data for m in await puller.fetch(1, wait_s=0.1)] == [b"late"]
