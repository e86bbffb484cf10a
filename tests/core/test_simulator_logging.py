"""A simulator served in tether's own process (demo, tests) leaves logging to tether: uvicorn's
own config gave its loggers handlers past tether's masking formatter, so the demo's log had
unmasked uvicorn lines for the API served in the same process."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from tether.core.simulator import SimulatorServer, SimulatorState


def test_a_simulator_in_this_process_does_not_reconfigure_logging() -> None:
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    for name in names:  # as tether's configure_logging leaves them: to the root's handlers
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    server = SimulatorServer(FastAPI(), FastAPI(), SimulatorState()).start_in_thread()
    try:
        for name in names:
            assert logging.getLogger(name).handlers == [], name
        for name in names[:2]:  # (uvicorn.access stops at itself: the access log is off)
            assert logging.getLogger(name).propagate, name
    finally:
        server.stop()
