"""The worker job shuts the executor down also when starting it failed, so its restart can
launch again (a half-launched workflow library refused every later launch)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tether.accruals import flow, tasks
from tether.core import workflows


async def test_a_failed_start_is_shut_down(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fail(*_: Any, **__: Any) -> None:
        calls.append("start")
        raise OSError("database down")

    monkeypatch.setattr(flow, "start_executor", fail)
    monkeypatch.setattr(workflows, "shutdown", lambda: calls.append("shutdown"))
    ctx: Any = SimpleNamespace(
        service=SimpleNamespace(url="postgresql://x", settings=SimpleNamespace()),
        runtime=SimpleNamespace(settings=SimpleNamespace(migrate=True)),
        stop=asyncio.Event(),
        once=True,
        worker_id="1",
    )
    with pytest.raises(OSError, match="database down"):
        await tasks.executor_job(ctx)
    assert calls == ["start", "shutdown"]
