"""The composition root of the web app: core plumbing plus every capability's router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from tether import __version__
from tether.capabilities import CAPABILITIES
from tether.core.api import core_router, install_error_handlers
from tether.core.bootstrap import open_runtime
from tether.core.security import install_security
from tether.core.settings import Settings


def create_app(settings: Settings, *, database_url: str | None = None) -> FastAPI:
    """The FastAPI app; migrations run and services start in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                open_runtime(settings, upgrade=settings.migrate, database_url=database_url)
            )
            app.state.runtime = runtime
            for capability in CAPABILITIES:
                service = await stack.enter_async_context(capability.build(runtime))
                setattr(app.state, capability.name, service)
            yield

    app = FastAPI(
        title="tether",
        version=__version__,
        description="Local, always-true copies of externally mastered data.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_security(app, settings)
    app.include_router(core_router())
    for capability in CAPABILITIES:
        app.include_router(capability.router)
    return app
