"""What every simulator shares: a real HTTP server with a separate control port and fault modes.

The data port serves the simulated external system. The control port (``/faults``, ``/stats``,
plus routes a capability adds) switches faults. ``down`` really closes the data port, so clients
see "connection refused", as they would when the real system is down. Every control request
needs ``Authorization: Bearer <control token>``: whoever reaches the port can switch a system off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ParamSpec, Self, TypeVar
from urllib.parse import parse_qsl

import uvicorn
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.core.errors import ConfigurationError
from tether.core.loop import run, startup_frozen
from tether.core.simulator_auth import (
    ControlAuth,
    banner,
    checked_token,
    refuse_weak_data_token,
)
from tether.core.simulator_ports import DataPortTaken, Uncaptured, bind

logger = logging.getLogger(__name__)


class FaultMode(StrEnum):
    """Faults every simulator can play. Capabilities add their own on top."""

    NONE = "none"
    DOWN = "down"  # data port closed: connection refused
    SLOW = "slow"  # answers after `slow_s`, longer than any sane client timeout
    ERROR_500 = "500"  # HTTP 500 with a text body
    GARBAGE = "garbage"  # HTTP 200 with a body that is not JSON


@dataclass
class SimulatorState:
    """Mutable state shared by the data and control apps of one simulator."""

    mode: str = FaultMode.NONE
    latency_s: float = 0.0
    slow_s: float = 15.0
    calls: Counter[str] = field(default_factory=Counter)
    on_mode_change: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)


class FaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is a 422, not ignored

    mode: str = FaultMode.NONE
    latency_ms: float | None = None
    slow_ms: float | None = None


# --- bare ASGI: a data port is the hot path of benchmarks, so it can skip the framework -------

PLAIN_TEXT = b"text/plain; charset=utf-8"
_GARBAGE = b"<html>\x00\xff not json"
Header = tuple[bytes, bytes]
Reply = tuple[int, bytes, bytes, Sequence[Header]]  # status, body, content type, more headers


def text_reply(status: int, message: str, *headers: Header) -> Reply:
    """A text/plain answer, as simulators give errors."""
    return status, message.encode(), PLAIN_TEXT, headers


def json_bytes(body: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what Starlette's ``JSONResponse`` sends."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def header(scope: Scope, name: bytes) -> bytes:
    """The first value of request header ``name`` (lower case), or ``b""``."""
    return next((value for key, value in scope["headers"] if key == name), b"")


def query(scope: Scope) -> dict[str, str]:
    """Query parameters, the last value winning, as Starlette's ``request.query_params``."""
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


async def send_reply(send: Send, reply: Reply) -> None:
    """Send a whole answer in two ASGI messages."""
    status, body, content_type, headers = reply
    start = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class GenericFaults:
    """ASGI middleware: latency, ``slow``, ``500`` and ``garbage`` on every HTTP request.

    Pure ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
    every request through a task group and memory streams, which cost more than the answer.
    A client that gives up first (its timeout during ``slow``: the point of that mode) is one
    info line, not the server's error traceback: the app's body read raises ``ClientDisconnect``.
    """

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        if scope["type"] == "http":
            if state.latency_s:
                await asyncio.sleep(state.latency_s)
            if state.mode == FaultMode.SLOW:
                await asyncio.sleep(state.slow_s)
            if state.mode == FaultMode.ERROR_500:
                return await send_reply(send, text_reply(500, "simulated internal server error"))
            if state.mode == FaultMode.GARBAGE:
                return await send_reply(send, (200, _GARBAGE, b"application/json", ()))
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            path = scope.get("path", "")
            logger.info("client went away before the answer: %s %s", scope.get("method"), path)


def install_generic_faults(app: FastAPI, state: SimulatorState) -> None:
    """Wrap a FastAPI data app in ``GenericFaults`` (outside the middlewares added before)."""
    app.add_middleware(GenericFaults, state=state)


async def switch_mode(
    state: SimulatorState,
    mode: str,
    *,
    latency_ms: float | None = None,
    slow_ms: float | None = None,
) -> None:
    """Set the fault settings and let the hooks follow, all or nothing: when the data port cannot
    come back (``DataPortTaken``), the state stays what it was, so ``GET /faults`` says ``down``
    as long as nothing listens (it said the new mode)."""
    before = (state.mode, state.latency_s, state.slow_s)
    state.mode = mode
    if latency_ms is not None:
        state.latency_s = latency_ms / 1000
    if slow_ms is not None:
        state.slow_s = slow_ms / 1000
    try:
        for hook in state.on_mode_change:
            await hook(mode)
    except DataPortTaken:
        state.mode, state.latency_s, state.slow_s = before
        raise


def control_router(state: SimulatorState, modes: type[StrEnum]) -> APIRouter:
    """``/faults`` and ``/stats`` for the control port."""
    router = APIRouter()
    names = [m.value for m in modes]  # plain values: a list of the members shows their reprs

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return {
            "mode": state.mode,
            "latency_ms": state.latency_s * 1000,
            "slow_ms": state.slow_s * 1000,
            "modes": names,
        }

    @router.put("/faults")
    async def put_faults(body: FaultsIn) -> dict[str, Any]:
        if body.mode not in names:
            detail = f"unknown mode {body.mode!r}; one of: {', '.join(names)}"
            return JSONResponse({"detail": detail}, 422)  # type: ignore[return-value]
        try:
            await switch_mode(state, body.mode, latency_ms=body.latency_ms, slow_ms=body.slow_ms)
        except DataPortTaken as exc:  # a conflict to retry, not a 500 with a traceback
            logger.warning("%s", exc, extra={"action": "simulator_port_taken"})
            return JSONResponse({"detail": str(exc), "mode": state.mode}, 409)  # type: ignore[return-value]
        return await get_faults()

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return {"calls": dict(state.calls), "total": sum(state.calls.values())}

    @router.delete("/stats")
    async def reset_stats() -> dict[str, Any]:
        state.calls.clear()
        return {"calls": {}, "total": 0}

    return router


class SimulatorServer:
    """Runs a data app and a control app on two ports; the data port can go down and up.

    ``control_token`` guards the control port; unset, a random one is made (``.control_token``).
    ``data_token``, the token the data port itself checks, is refused off loopback when weak.
    """

    def __init__(
        self,
        data_app: ASGIApp,
        control_app: ASGIApp,
        state: SimulatorState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        control_token: str | None = None,
        data_token: str | None = None,
    ) -> None:
        if data_token is not None:  # the simulated system's own credential, before binding
            refuse_weak_data_token(data_token, host)
        self.control_token_generated = not control_token
        self.control_token = checked_token(control_token, host)  # before binding anything
        self.data_app = data_app
        self.control_app: ASGIApp = ControlAuth(control_app, self.control_token)
        self.state = state
        self.host = host
        self._data_sock = bind(host, port, "--port")
        try:
            self._control_sock = bind(host, control_port, "--control-port")
        except ConfigurationError:
            self._data_sock.close()
            raise
        self.port: int = self._data_sock.getsockname()[1]
        self.control_port: int = self._control_sock.getsockname()[1]
        self._data_server: uvicorn.Server | None = None
        self._data_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # start_in_thread's
        self._alone = False  # serve_alone: this process's signals stop it (not uvicorn's capture)
        state.on_mode_change.append(self._follow_mode)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.control_port}"

    @property
    def control_headers(self) -> dict[str, str]:
        """What every control-port request sends."""
        return {"Authorization": f"Bearer {self.control_token}"}

    @property
    def shown_control_token(self) -> str:
        """A generated token, to print; a configured one stays out of the output."""
        return self.control_token if self.control_token_generated else "<your control token>"

    def _server(self, app: ASGIApp) -> uvicorn.Server:
        # http="auto" picks httptools (a dependency), several times cheaper than h11.
        # In tether's own process (demo, tests) uvicorn must not apply its logging config: it
        # gives the uvicorn loggers handlers of their own, past tether's masking formatter, for
        # the API served there too. Alone, its own config is the simulator's output.
        own_logging: dict[str, Any] = {} if self._alone else {"log_config": None}
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            **own_logging,
        )
        return Uncaptured(config) if self._alone else uvicorn.Server(config)

    async def _start_data(self) -> None:
        if self._data_sock.fileno() == -1:  # closed by `down`: someone may hold the port now
            try:
                self._data_sock = bind(self.host, self.port, "--port")
            except ConfigurationError:
                raise DataPortTaken(self.host, self.port) from None
        self._data_server = self._server(self.data_app)
        self._data_task = asyncio.create_task(self._data_server.serve(sockets=[self._data_sock]))
        while not self._data_server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.005)

    async def _stop_data(self) -> None:
        if self._data_server is None or self._data_task is None:
            return
        self._data_server.should_exit = True
        self._data_server.force_exit = True
        await self._data_task
        self._data_sock.close()
        self._data_server = None
        self._data_task = None

    async def _follow_mode(self, mode: str) -> None:
        if mode == FaultMode.DOWN:
            await self._stop_data()
        elif self._data_server is None:
            await self._start_data()

    async def serve(self) -> None:
        """Serve until ``stop()``; the control port stays up even while the data port is down."""
        self._loop = asyncio.get_running_loop()
        control = self._server(self.control_app)
        control_task = asyncio.create_task(control.serve(sockets=[self._control_sock]))
        if self.state.mode != FaultMode.DOWN:
            await self._start_data()
        while not control.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.005)
        self.ready.set()
        await self._stopped.wait()
        await self._stop_data()
        control.should_exit = True
        await control_task

    def serve_alone(self) -> None:
        """``tether simulate <name>``: serve as the process's only job until Ctrl-C.

        Once it is up, what startup built is frozen out of the collector (as the API's lifespan
        does): a full collection otherwise walked it in the middle of a burst and held every
        answer for 40-60 ms, a pause of the simulator that showed in tether's latency figures
        (2 of 60 bursts of 100 calls in the e-licensing benchmark; none with it frozen).
        """

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # stop as stop() does: both servers
                loop.add_signal_handler(sig, self._stopped.set)
            serving = asyncio.create_task(self.serve())
            while not self.ready.is_set() and not serving.done():  # noqa: ASYNC110 - a thread's flag
                await asyncio.sleep(0.005)
            with startup_frozen():
                await serving

        self._alone = True
        shown = self.shown_control_token
        print(banner(self.control_url, shown, self.control_token_generated), flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop's handlers
            run(main())

    def stop(self) -> None:
        """Stop from any thread; started by ``start_in_thread``, wait for that thread, so no
        simulator (nor a broker connection of one) outlives its caller."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    def set_mode(self, mode: str, *, latency_ms: float | None = None) -> None:
        """Switch the fault mode from any thread (tests use this instead of the control port)."""
        assert self._loop is not None, "server not started"

        applying = switch_mode(self.state, mode, latency_ms=latency_ms)
        asyncio.run_coroutine_threadsafe(applying, self._loop).result(timeout=10)

    def start_in_thread(self) -> Self:
        """Run the servers on a background thread's own event loop; return once listening."""
        self._thread = threading.Thread(target=run, args=(self.serve(),), daemon=True)
        self._thread.start()
        if not self.ready.wait(timeout=15):
            raise RuntimeError(f"{type(self).__name__} did not start within 15 s")
        return self


P = ParamSpec("P")
T = TypeVar("T")


def serving_in_thread(
    build: Callable[P, tuple[SimulatorServer, T]],
) -> Callable[P, tuple[SimulatorServer, T]]:
    """``build``, then ``start_in_thread`` the server it returns (tests, demo)."""

    def start(*args: P.args, **kwargs: P.kwargs) -> tuple[SimulatorServer, T]:
        server, built = build(*args, **kwargs)
        server.start_in_thread()
        return server, built

    return start
