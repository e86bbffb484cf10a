"""A credential the payment system refuses is named, with the next step, on every HTTP call:
the sender's chase of a lost receipt logged a bare "HTTP 401" and went on asking for ever."""

from __future__ import annotations

import uuid

import pytest

from tether.core.errors import UpstreamRejected
from tether.payments.client import OppdragClient
from tether.payments.simulator import start_simulator

from .conftest import unique_settings, unique_topology


async def test_a_refused_lookup_names_the_token_setting_and_the_next_step(nats_url: str) -> None:
    sim = start_simulator(nats_url, topology=unique_topology(), token="the-demos-random-token-7")
    try:
        async with OppdragClient.from_settings(unique_settings(sim.url)) as wrong:
            with pytest.raises(UpstreamRejected) as refused:
                await wrong.lookup_order(uuid.uuid4())
        right_settings = unique_settings(sim.url, oppdrag_token="the-demos-random-token-7")
        async with OppdragClient.from_settings(right_settings) as right:
            assert await right.lookup_order(uuid.uuid4()) is None  # the same call, admitted
    finally:
        sim.stop()
    said = str(refused.value)
    assert refused.value.http_status == 401 and "HTTP 401" in said
    assert "TETHER_PAYMENTS_OPPDRAG_TOKEN carries the credential" in said
    assert f"TETHER_PAYMENTS_OPPDRAG_URL={sim.url}" in said
    assert "restart `tether worker`: it asks again about every order still waiting" in said
    assert "dry-run" not in said  # the dry run's next step is not this call's
