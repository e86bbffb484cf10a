"""The embedded broker (demo, tests) admits only the clients given its URL: it is a route into
tether like the API (a publish to the payments subject is an intake), and loopback alone admits
every process of the machine."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from nats.errors import Error as NatsError

from tether.core import loop
from tether.core.natsserver import EmbeddedNats


def test_the_embedded_broker_wants_the_token_its_url_carries(private_dir: Path) -> None:
    server = EmbeddedNats(private_dir / "nats")
    try:
        parts = urlsplit(server.url)
        assert parts.username and len(parts.username) >= 32  # the token, in the URL only

        async def connect(url: str) -> bool:
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
            connected = bool(nc.is_connected)
            await nc.close()
            return connected

        assert loop.run(connect(server.url))
        with pytest.raises(NatsError, match="Authorization Violation"):
            loop.run(connect(f"nats://127.0.0.1:{server.port}"))
        config = server.store / "nats-server.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # not on the command line either
        assert parts.username not in " ".join(server.proc.args)  # type: ignore[arg-type]
    finally:
        server.stop()
