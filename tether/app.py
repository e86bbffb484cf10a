"""The composition root of the web app: core plumbing plus every capability's router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from pydantic_settings import BaseSettings

from tether import __version__
from tether.capabilities import CAPABILITIES, migration_components
from tether.core.api import core_router, install_error_handlers
from tether.core.bootstrap import open_runtime
from tether.core.settings import Settings


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    overrides: Sequence[BaseSettings] = (),
    migrate: bool = True,
) -> FastAPI:
    """The FastAPI app; migrations run (unless ``migrate`` is off) and services start in its
    lifespan. Each capability's service is ``app.state.<capability attribute>``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                open_runtime(
                    settings,
                    database_url=database_url,
                    migrate=migration_components() if migrate else (),
                    overrides=overrides,
                )
            )
            app.state.runtime = runtime
            for capability in CAPABILITIES:
                service = await stack.enter_async_context(capability.build(runtime))
                setattr(app.state, capability.attribute, service)
            yield

    app = FastAPI(
        title="tether",
        version=__version__,
        description="Local, always-true copies of externally mastered data.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(core_router())
    for capability in CAPABILITIES:
        if capability.router is not None:
            app.include_router(capability.router)
    return app
