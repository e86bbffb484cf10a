"""Thin change events: the CloudEvents envelope, a durable NATS JetStream consumer, and the
emitter simulators use to send events to a webhook and/or NATS.

An event only says "object X changed"; the receiver fetches X itself. So events may be
duplicated, reordered or coalesced without losing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.core.errors import InvalidInput
from tether.core.jetstream import Puller
from tether.core.settings import Settings
from tether.core.wire import first_error

logger = logging.getLogger(__name__)

_DEFAULTS = Settings.model_fields


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode."""

    model_config = ConfigDict(extra="allow")

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = "application/json"
    data: dict[str, Any] | None = None


def make_event(*, type_: str, source: str, subject: str, data: dict[str, Any]) -> CloudEvent:
    """A new event with a random id and the current time."""
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=type_,
        subject=subject,
        time=datetime.now(UTC),
        data=data,
    )


def parse_event(raw: bytes) -> CloudEvent:
    """Decode one event; anything malformed is ``InvalidInput`` with the reason."""
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(f"not a CloudEvent: {first_error(exc)}") from exc


STREAM_MAX_AGE_S = 7 * 24 * 3600.0  # what a stream tether creates keeps, unless told otherwise


async def ensure_stream(
    js: Any, stream: str, subject: str, *, max_age_s: float = STREAM_MAX_AGE_S
) -> None:
    """Create the JetStream stream for ``subject`` if it does not exist yet, keeping each message
    at most ``max_age_s`` (0: for ever). A consumed message stays in a stream until a limit
    removes it: with none, a stream grows until the broker's disk is full. A stream that exists
    is left as its operator configured it."""
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        try:
            await js.add_stream(name=stream, subjects=[subject], max_age=max_age_s or None)
        except BadRequestError:
            # a publisher and a consumer starting together race to create it: fine if it exists
            await js.stream_info(stream)


async def connect_nats(url: str) -> Any:
    """A NATS connection whose errors are one warning line each: nats-py's default logs a
    traceback per failed reconnect attempt (a page of them when the broker stops first)."""
    import nats

    async def on_error(exc: Exception) -> None:
        logger.warning("NATS: %s", str(exc) or type(exc).__name__, extra={"action": "nats_error"})

    return await nats.connect(url, error_cb=on_error)


def _gone() -> tuple[type[Exception], ...]:
    from nats.errors import Error as NatsError

    # RuntimeError: on uvloop, nats-py flushes what is pending into the dropped socket and the
    # closed transport raises it; its reconnect task is cancelled by then, so close() still ends
    # the connection
    return (NatsError, OSError, RuntimeError)


DRAIN_S = 5.0  # how long a stop waits for a connection's drain before it closes it


async def close_quietly(nc: Any, sub: Any = None) -> None:
    """Unsubscribe ``sub`` and drain ``nc``. A connection the broker already dropped is closed,
    not raised: a stop must not fail because NATS stopped first (Ctrl-C reaches an embedded
    broker and tether alike). Unsubscribing first matters: draining a pull subscription waits
    out the drain timeout (30 s) for the answer to a pull request that never comes."""
    gone = _gone()  # what stopping a connection the broker dropped may raise
    try:
        if sub is not None:
            await sub.unsubscribe()
        # bounded: a drain waits for every pending publish acknowledgement, up to nats-py's 30 s
        # drain timeout, and a stop that outlived its caller left a client reconnecting (and
        # logging) after its broker was gone
        await asyncio.wait_for(nc.drain(), DRAIN_S)
    except TimeoutError:
        cut = {"action": "nats_drain_cut"}
        logger.info("NATS drain took over %s s; closed", DRAIN_S, extra=cut)
        with contextlib.suppress(*gone):
            await nc.close()
    except gone as exc:
        logger.info(
            "NATS connection already gone at stop (%s)",
            type(exc).__name__,
            extra={"action": "nats_gone_at_stop"},
        )
        with contextlib.suppress(*gone):
            await nc.close()


async def publish_nats(url: str, stream: str, subject: str, events: list[CloudEvent]) -> None:
    """Publish events to a JetStream subject (the simulator and tests use this)."""

    nc = await connect_nats(url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, subject)
        for event in events:
            await js.publish(subject, event.model_dump_json(exclude_none=True).encode())
    finally:
        await close_quietly(nc)


async def consume_nats(
    *,
    url: str,
    stream: str,
    subject: str,
    durable: str,
    handle: Callable[[list[CloudEvent]], Awaitable[None]],
    stop: asyncio.Event,
    batch: int = 100,
) -> None:
    """Pull events with a durable consumer until ``stop`` is set.

    A batch is acknowledged only after ``handle`` returned, so a crash redelivers it. Malformed
    messages are acknowledged and logged: redelivering them would never succeed.
    """
    nc = await connect_nats(url)
    sub = None
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, subject)
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream)  # the consumer
        puller = Puller(nc, stream, durable)
        while not stop.is_set():
            try:
                msgs = await puller.fetch(batch, wait_s=0.5)
            except TimeoutError:  # nothing came
                continue
            good: list[CloudEvent] = []
            for msg in msgs:
                try:
                    good.append(parse_event(msg.data))
                except InvalidInput as exc:
                    logger.warning(
                        "dropped malformed event: %s",
                        exc.message,
                        extra={"action": "event_malformed"},
                    )
            if good:
                await handle(good)
            for msg in msgs:
                await msg.ack()
    finally:
        await close_quietly(nc, sub)


class EventEmitter:
    """Sends CloudEvents to a webhook and/or NATS JetStream; a failed delivery is only logged."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        nats_url: str | None = None,
        nats_stream: str = "",
        nats_subject: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        default_token = _DEFAULTS["events_token"].default.get_secret_value()
        self.webhook_url = webhook_url
        self.webhook_token = webhook_token or default_token
        self.nats_url = nats_url
        self.nats_stream = nats_stream
        self.nats_subject = nats_subject
        self.transport = transport
        self.sent: list[CloudEvent] = []

    async def emit(self, events: list[CloudEvent]) -> dict[str, Any]:
        """Deliver ``events``; report per target: ``sent``, ``failed`` or ``off``."""
        outcome: dict[str, Any] = {"events": len(events), "webhook": "off", "nats": "off"}
        if not events:
            return outcome
        if self.webhook_url:
            outcome["webhook"] = await self._guard("webhook", self._post(events))
        if self.nats_url:
            sending = publish_nats(self.nats_url, self.nats_stream, self.nats_subject, events)
            outcome["nats"] = await self._guard("nats", sending)
        self.sent.extend(events)
        return outcome

    async def _guard(self, target: str, sending: Awaitable[None]) -> str:
        try:
            await sending
        except Exception as exc:  # any failure to deliver is the receiver's problem, not ours
            logger.warning(
                "emitting events to %s failed: %r",
                target,
                exc,
                extra={"action": "event_emit_failed"},
            )
            return "failed"
        return "sent"

    async def _post(self, events: list[CloudEvent]) -> None:
        assert self.webhook_url is not None
        if len(events) == 1:
            content = events[0].model_dump_json(exclude_none=True)
            media = "application/cloudevents+json"
        else:
            dumped = ",".join(e.model_dump_json(exclude_none=True) for e in events)
            content, media = f"[{dumped}]", "application/cloudevents-batch+json"
        headers = {"Content-Type": media, "Authorization": f"Bearer {self.webhook_token}"}
        async with httpx.AsyncClient(timeout=5.0, transport=self.transport) as http:
            response = await http.post(self.webhook_url, content=content, headers=headers)
            response.raise_for_status()
