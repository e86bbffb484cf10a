"""Streams tether creates are bounded by age (a consumed message stays in a JetStream stream
until a limit removes it); a stream that exists keeps its operator's configuration."""

from __future__ import annotations

import uuid
from typing import Any

from tether.core.events import STREAM_MAX_AGE_S, ensure_stream


def _name() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"LIMITS_{tag}", f"limits.{tag}"


async def test_a_new_stream_keeps_messages_seven_days_by_default(js: Any) -> None:
    stream, subject = _name()
    await ensure_stream(js, stream, subject)
    info = await js.stream_info(stream)
    assert info.config.max_age == STREAM_MAX_AGE_S == 7 * 24 * 3600
    assert info.config.subjects == [subject]


async def test_zero_means_no_age_limit(js: Any) -> None:
    stream, subject = _name()
    await ensure_stream(js, stream, subject, max_age_s=0)
    assert not (await js.stream_info(stream)).config.max_age


async def test_an_existing_stream_keeps_its_own_limits(js: Any) -> None:
    stream, subject = _name()
    await js.add_stream(name=stream, subjects=[subject], max_age=60.0, max_msgs=10)
    await ensure_stream(js, stream, subject, max_age_s=3600)
    config = (await js.stream_info(stream)).config
    assert (config.max_age, config.max_msgs) == (60.0, 10)
