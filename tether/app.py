"""The composition root of the web app: core plumbing plus every capability's router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from pydantic_settings import BaseSettings

from tether import __version__
from tether.capabilities import CAPABILITIES, migration_components
from tether.core import db, health
from tether.core.api import core_router, install_error_handlers
from tether.core.bootstrap import open_runtime
from tether.core.console import PanelProvider, console_router
from tether.core.hotpath import install_hot_routes
from tether.core.logging import configure_logging
from tether.core.loop import startup_frozen
from tether.core.routetable import install_route_table
from tether.core.security import install_security
from tether.core.settings import Settings, load_settings

# FastAPI's native OpenTelemetry off, by its own switch: tether installs no OpenTelemetry SDK, so
# it never had a provider to report to, yet asked OpenTelemetry for its three global providers on
# every request (three failed lookups of environment variables): 27,000 instructions of the
# intake's 2.55 million.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: Settings,
    *,
    database_url: str | None = None,
    overrides: Sequence[BaseSettings] = (),
    migrate: bool = True,
) -> FastAPI:
    """The FastAPI app; migrations run (unless ``migrate`` is off) and services start in its
    lifespan. Each capability's service is ``app.state.<capability attribute>``. Without
    ``database_url`` it starts (or joins) the embedded server: a server runs until stopped."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                open_runtime(
                    settings,
                    database_url=database_url or db.resolve_database_url(settings),
                    migrate=migration_components() if migrate and settings.migrate else (),
                    overrides=overrides,
                )
            )
            app.state.runtime = runtime
            app.state.auth.start()  # the API key cache listens for revocations from now on
            stack.push_async_callback(app.state.auth.close)
            app.state.panels = [PanelProvider(name=health.TITLE, panel=health.panel, service=None)]
            for capability in CAPABILITIES:
                service = await stack.enter_async_context(capability.build(runtime))
                setattr(app.state, capability.attribute, service)
                if capability.panel is not None:
                    app.state.panels.append(
                        PanelProvider(name=capability.name, panel=capability.panel, service=service)
                    )
            with startup_frozen():  # what startup built lives as long as the process
                yield

    app = FastAPIOffline(  # /docs and /redoc from assets installed with the package, no CDN
        title="tether",
        version=__version__,
        description="Local, always-true copies of externally mastered data.",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    install_security(app, settings)
    install_error_handlers(app)  # after security's JSON handlers: it adds pages for browsers
    app.include_router(core_router())
    app.include_router(console_router())
    for capability in CAPABILITIES:
        if capability.router is not None:
            app.include_router(capability.router.load())
    install_hot_routes(app)  # the @hot routes (a hot event intake) skip FastAPI's routing
    install_route_table(app)  # every other route: one flat table, not a walk of the routers
    return app


def app_from_env() -> FastAPI:
    """The app of each ``tether serve --workers N`` process: settings from the environment,
    migrations already applied by the parent."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings, migrate=False)
