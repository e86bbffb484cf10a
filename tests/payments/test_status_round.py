"""The statuses of a round go out all or none: one not stored raises, so none is marked and the
round goes out again (``core.jetstream.Publisher`` against a real NATS)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from tether.core.errors import UpstreamError
from tether.core.events import ensure_stream
from tether.core.jetstream import Publisher
from tether.payments import statuses


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


def item(n: int, stream: str) -> tuple[bytes, dict[str, str]]:
    return f"m{n}".encode(), {"Nats-Msg-Id": f"id-{n}", "Nats-Expected-Stream": stream}


async def test_statuses_go_out_all_or_none(nc: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"ST_{tag}", f"st.{tag}"
    await ensure_stream(nc.jetstream(), stream, subject)
    publisher = Publisher(nc, subject)
    await statuses._publish_all(publisher, [item(0, stream), item(1, stream)])
    with pytest.raises(UpstreamError, match="1 of 2 statuses not stored"):
        await statuses._publish_all(publisher, [item(2, stream), item(3, "ELSEWHERE")])
