"""Publishing to JetStream in rounds, each message's acknowledgement counted, not awaited; and
fetching from a pull consumer without a task per message.

nats-py's ``publish`` makes a request per message (a new reply token, a future and a timer) and
its ``publish_async`` a future, a random token (a system call), a done callback and a decoded
``PubAck`` per message: with the round trips, most of what publishing a message costs a process
whose work is moving messages. A ``Publisher`` writes a round's messages in order, each with a
reply subject of the round's own plus its place, and one subscription files JetStream's answers
by that place.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

from tether.core.errors import UpstreamError

Item = tuple[bytes, dict[str, str]]  # payload, headers


class Publisher:
    """Rounds of messages to one subject, on one connection (its own reply subscription). With
    ``stream``, each message says which stream must store it (``Nats-Expected-Stream``, as
    nats-py's ``publish(stream=...)``): another stream taking the subject refuses it."""

    def __init__(self, nc: Any, subject: str, *, stream: str | None = None) -> None:
        self.nc = nc
        self.subject = subject
        self.expected = {} if stream is None else {"Nats-Expected-Stream": stream}
        self.inbox = nc.new_inbox()
        self.rounds = itertools.count()
        self.waiting: dict[str, _Round] = {}
        self.sub: Any = None

    async def publish(self, items: Sequence[Item], *, timeout_s: float) -> list[str | None]:
        """Publish ``items`` in order and wait up to ``timeout_s`` for JetStream's answers: per
        item None once it was stored, else why not (its error answer, none in time, or the
        failed write of it or of one before it)."""
        if not items:
            return []
        if self.sub is None:
            try:
                self.sub = await self.nc.subscribe(f"{self.inbox}.*.*", cb=self._answered)
            except Exception as exc:  # the connection's, nats-py's own: nothing can be sent
                return [f"{type(exc).__name__}: {exc}"] * len(items)
        prefix = f"{self.inbox}.{next(self.rounds)}"
        done = self.waiting[prefix] = _Round(len(items), timeout_s)
        try:
            for n, (data, headers) in enumerate(items):
                try:
                    await self.nc.publish(
                        self.subject,
                        data,
                        reply=f"{prefix}.{n}",
                        headers={**headers, **self.expected},
                    )
                except Exception as exc:  # the connection's, nats-py's own: none of the rest left
                    done.unsent(n, f"{type(exc).__name__}: {exc}")
                    break
            if done.left:
                await asyncio.wait({done.future}, timeout=timeout_s)
        finally:
            del self.waiting[prefix]
        return done.answers

    async def _answered(self, msg: Any) -> None:
        prefix, _, place = msg.subject.rpartition(".")
        done = self.waiting.get(prefix)
        if done is not None:  # else a round given up
            done.answer(int(place), _error(msg))


class _Round:
    """A round's answers, and the future set once every item has one."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self.answers: list[str | None] = [f"no acknowledgement within {timeout_s:g} s"] * size
        self.pending = [True] * size
        self.left = size
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer(self, n: int, error: str | None) -> None:
        if self.pending[n]:  # the first answer counts
            self.pending[n] = False
            self.answers[n] = error
            self.left -= 1
            if not self.left:
                self.future.set_result(None)

    def unsent(self, first: int, error: str) -> None:
        for n in range(first, len(self.answers)):
            self.answer(n, error)


def _error(msg: Any) -> str | None:
    """Why JetStream's answer is no acknowledgement (None: stored), as nats-py reads one: a 503
    status (no stream takes the subject), an error, or no ``PubAck``. The usual answer is read
    without decoding it (``json.loads`` of it cost 20k instructions, a fifth of a message): the
    server writes an error first (``{"error":...``), a ``PubAck`` as ``{"stream":..,"seq":..``;
    anything else is decoded."""
    data = msg.data
    if data.startswith(b'{"stream":') and b'"seq":' in data and b'"error":' not in data:
        return None
    if msg.headers and msg.headers.get("Status") == "503":
        return "NoStreamResponseError: no stream takes the subject (503)"
    try:
        answer = json.loads(msg.data)
    except ValueError:
        return f"not an acknowledgement: {msg.data[:200]!r}"
    if isinstance(answer, dict) and "error" in answer:
        return f"APIError: {answer['error']}"[:300]
    if not isinstance(answer, dict) or "seq" not in answer:
        return f"not an acknowledgement: {msg.data[:200]!r}"
    return None


READY_WAIT_S = 0.005  # how long a fetch lingers for more once it has one
_ENDS = frozenset({"404", "408", "409"})  # no messages, expired, a conflict: the request is over


class Puller:
    """Fetches from a durable pull consumer without waiting for a full batch: the first message
    is awaited up to ``wait_s``, then what comes within ``READY_WAIT_S`` is taken, up to a batch
    (nats-py's ``fetch(n)`` instead waits, when nothing was ready at first, until n messages came
    or the timeout passed: a few messages in flight then wait the whole timeout). One
    subscription files every delivery: nats-py's ``fetch`` awaits each message of a batch as a
    task of its own, named by a ``uuid4`` (a system call), about as much CPU as the rest of
    taking the message. A message delivered after its request was given up is kept for the next
    fetch, as nats-py keeps it; a status answering another request is dropped. The durable
    consumer is made beforehand (``js.pull_subscribe``)."""

    def __init__(self, nc: Any, stream: str, durable: str) -> None:
        self.nc = nc
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self.requests = itertools.count()
        self.sub: Any = None
        self.ready: list[Any] = []  # delivered, not fetched yet
        self.reply = ""  # the request being waited on
        self.wanted = 0  # ready messages that end the wait
        self.over: asyncio.Future[None] | None = None

    async def fetch(self, batch: int, wait_s: float) -> list[Any]:
        """Up to ``batch`` messages; ``TimeoutError`` when none came within ``wait_s``."""
        if self.sub is None:
            self.sub = await self.nc.subscribe(f"{self.inbox}.*", cb=self._delivered)
        if not self.ready:
            await self._pull(1, wait_s, {"batch": 1, "expires": _ns(wait_s)})
            if not self.ready:
                raise TimeoutError("no message")
        if len(self.ready) < batch:
            more: dict[str, Any] = {"batch": batch - len(self.ready), "no_wait": True}
            if len(self.ready) == 1:  # none waiting beyond the first: linger (as nats-py)
                more["expires"] = _ns(READY_WAIT_S)
            await self._pull(batch, READY_WAIT_S, more)
        taken, self.ready = self.ready[:batch], self.ready[batch:]
        return taken

    async def _pull(self, wanted: int, wait_s: float, request: dict[str, Any]) -> None:
        self.reply = f"{self.inbox}.{next(self.requests)}"
        self.wanted = wanted
        over = self.over = asyncio.get_running_loop().create_future()
        try:
            await self.nc.publish(self.next_subject, json.dumps(request).encode(), self.reply)
            await asyncio.wait({over}, timeout=wait_s)
        finally:
            self.reply, self.over = "", None
        if over.done():
            over.result()  # a refusal raises

    async def _delivered(self, msg: Any) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        over = self.over
        if status is None:
            self.ready.append(msg)
            if over is not None and not over.done() and len(self.ready) >= self.wanted:
                over.set_result(None)
        elif msg.subject != self.reply or over is None or over.done() or status == "100":
            return  # another request's, or a heartbeat
        elif status in _ENDS:
            over.set_result(None)
        else:  # the consumer or the stream is gone, a bad request: as nats-py, an error
            why = msg.headers.get("Description", "")
            over.set_exception(UpstreamError(f"JetStream refused a pull: {status} {why}"))


def _ns(seconds: float) -> int:
    """A request's expiry: a tenth of a millisecond short of the wait (as nats-py's fetch)."""
    return int(seconds * 1_000_000_000) - 100_000
