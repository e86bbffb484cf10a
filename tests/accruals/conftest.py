"""The accruals API over ASGI, on the requesting test module's own ``world``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.accruals.run_fixtures import RUN_SETTINGS, api_client
from tether.core.settings import Settings


@pytest.fixture
async def http(
    world: str, settings: Settings, pool: AsyncConnectionPool[Any], auth_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(world, settings, pool, auth_headers, RUN_SETTINGS) as client:
        yield client
