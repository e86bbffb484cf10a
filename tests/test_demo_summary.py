"""The demo's closing lines when the database went away under it (``tether db stop`` while it
ran): each capability's summary failed with a PoolTimeout traceback at the very end."""

from __future__ import annotations

import pytest
from psycopg_pool import PoolTimeout

from tether.core.capability import DemoPart
from tether.demo import _summary


async def test_a_summary_without_its_database_is_one_line_saying_so() -> None:
    async def gone(service: object) -> str:
        raise PoolTimeout("couldn't get a connection after 2.00 sec")

    line = await _summary("payments", DemoPart(summary=gone), object())
    assert line == (
        "payments: no summary, the database did not answer "
        "(PoolTimeout: couldn't get a connection after 2.00 sec)"
    )


async def test_a_bug_in_a_summary_is_not_hidden() -> None:
    async def broken(service: object) -> str:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await _summary("payments", DemoPart(summary=broken), object())
