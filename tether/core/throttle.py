"""Failed sign-ins counted per client address: ``/login`` stops trying credentials for an address
that failed too often, so the form is not an unlimited guessing (or database-load) endpoint.

In the process's memory, bounded: at most ``max_clients`` addresses are remembered; past that the
one that failed least recently is forgotten (a flood of addresses costs no scan). An address is
blocked only by its own failures, so a user at another address signs in as usual. A success does
not clear the count (failures leave with their window): else a guesser holding any valid
credential, an events-only token say, signed in now and then and never reached the limit.

The address is whatever uvicorn made ``request.client`` (from ``X-Forwarded-For`` when the peer
is a trusted proxy): ``client_key`` counts only a valid IP (IPv6 by its /64, which one host
commonly holds whole), so an arbitrary header value is neither a fresh address per request nor a
large key in memory.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

INVALID = "invalid"  # the one key of every client address that is not an IP


def client_key(host: str) -> str:
    """The key ``host`` is counted under: its IPv4 address, its IPv6 /64, else ``INVALID``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return INVALID
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class LoginThrottle:
    """``max_failures`` failed sign-ins within ``window_s`` of an address's first block it until
    that window ends (``max_failures`` 0: never)."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        entry = self._failures.get(client)
        if entry is None or entry[1] < self.max_failures or self.max_failures <= 0:
            return 0
        left = entry[0] + self.window_s - self.clock()
        if left <= 0:
            del self._failures[client]
            return 0
        return max(1, math.ceil(left))

    def failed(self, client: str) -> None:
        """Count one failed sign-in of ``client``."""
        if self.max_failures <= 0:
            return
        now = self.clock()
        start, count = self._failures.pop(client, (now, 0))
        if now - start >= self.window_s:
            start, count = now, 0
        while len(self._failures) >= self.max_clients:  # the address that failed least recently
            del self._failures[next(iter(self._failures))]
        self._failures[client] = (start, count + 1)  # last in the order: the newest

    def __len__(self) -> int:
        return len(self._failures)
