"""Every entrypoint's loop is uvloop, and simulators parse HTTP with httptools."""

from __future__ import annotations

import asyncio

import uvicorn
import uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tether.core import loop


def test_run_uses_uvloop_and_returns_the_result() -> None:
    async def which() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert loop.run(which()) is uvloop.Loop


def test_uvicorn_picks_httptools() -> None:
    config = uvicorn.Config(FastAPI(), lifespan="off")
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
