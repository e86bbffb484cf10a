"""Demo hook: a small generated world (A1's generator), loaded, ingested and run once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path

from tether.accruals import loader, run
from tether.accruals.generator import generate
from tether.accruals.ingest import ingest_files
from tether.accruals.service import AccrualsService
from tether.core.bootstrap import Runtime
from tether.core.capability import DemoContext, DemoPart

PERIOD_END = date(2026, 11, 30)


@asynccontextmanager
async def demo(ctx: DemoContext) -> AsyncIterator[DemoPart]:
    """The accruals share of ``tether demo``: 150 accounts, 4 months, one run. Its export
    folder is the data dir's (in demo.env): the guide's re-run writes there, not into
    whatever folder the user runs it from."""
    exports = (ctx.core.data_dir / "accruals-exports").resolve()
    folder = ctx.folder("accruals")

    async def seed_demo(runtime: Runtime, svc: object) -> list[str]:
        assert isinstance(svc, AccrualsService)
        return await seed(runtime, svc, folder, ctx.api_url)

    try:
        settings = {"min_contributors": 5, "chunk_size": 50, "export_dir": exports}
        yield DemoPart(settings=settings, seed=seed_demo)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def seed(runtime: Runtime, svc: AccrualsService, folder: Path, api: str) -> list[str]:
    """Generate, load, ingest, run; the lines of the guide."""
    made = await asyncio.to_thread(generate, 150, 4, folder, 1, end=PERIOD_END)
    for kind in loader.KINDS:
        result = await asyncio.to_thread(loader.load, svc.url, kind, folder / f"{kind}.csv")
        if result.status != "loaded":
            raise RuntimeError(f"demo {kind} did not load: {result.errors[:3]}")
    await ingest_files(runtime.pool, [*made.nem12_files, *made.nem13_files])
    # never a future as-at (a re-run could see data this run did not): the default, or now if
    # the default has not come yet; stored with the run, so the guide's re-run takes it again
    now = datetime.now(run.AEST).replace(microsecond=0)
    as_at = min(run.default_as_at(PERIOD_END, svc.settings), now)
    totals = await asyncio.to_thread(run.run_inline, svc.url, PERIOD_END, as_at, svc.settings)
    pe = PERIOD_END.isoformat()
    return [
        f"Accruals: {totals['accounts']} accounts to {pe}, ex-GST {totals['amount_ex_gst']}, "
        f"estimated share {totals['estimated_share']}",
        f"  run page: {api}/accruals/runs/{pe}",
        f"  files: {api}/api/v1/accruals/runs/{pe}/exports/BUAAccountSummary.csv",
        f"  re-run (same bytes: it takes the run's stored as-at and settings):"
        f" tether accruals run --period-end {pe}",
        f"  with the CLI settings it writes the files into {svc.settings.export_dir / pe}",
    ]
