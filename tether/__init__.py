"""tether: keeps local PostgreSQL copies of externally mastered data true."""

import sys

__version__ = "0.1.0"

# ``import httpx`` imports its command line client (click, rich, pygments: 0.1 s of CPU in every
# worker process) unless that import fails, which httpx handles (encode/httpx#3547). tether never
# runs httpx's CLI; a process that imported httpx before tether keeps it as it is.
if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
