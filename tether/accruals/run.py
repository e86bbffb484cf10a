"""The stages of a run, each one transaction over the run date's own rows (so each can be
repeated: a resumed workflow redoes at most the stage it was in, with the same result).

Stages: prepare (snapshot accounts, billed-to dates, chunks) -> profiles -> check (fix + log) ->
scalars -> price (per chunk: energy, estimates, lines) -> export (files, report).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from tether.accruals import energy, estimate, exports, parallel, pricing, retention, tariffs
from tether.accruals.settings import AccrualsSettings
from tether.accruals.sql import Q

logger = logging.getLogger(__name__)
AEST = timezone(timedelta(hours=10))
STEPS = ("prepare", "profiles", "check", "scalars", "price", "export")


def default_as_at(period_end: date, s: AccrualsSettings) -> datetime:
    """Period end + lag days, 00:00 market time: the same snapshot on every re-run."""
    return datetime.combine(period_end + timedelta(days=s.as_at_lag_days), time(), AEST)


def workflow_id(period_end: date, attempt: int) -> str:
    base = f"accruals-run-{period_end.isoformat()}"
    return base if attempt == 1 else f"{base}-r{attempt}"


@contextmanager
def stage(
    url: str, period_end: date, name: str
) -> Iterator[tuple[psycopg.Connection[Any], dict[str, Any]]]:
    """One transaction for the stage's work and its step row (running -> done)."""
    detail: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as log:
        log.execute(
            Q["step_begin"], {"period_end": period_end, "step": name, "ordinal": STEPS.index(name)}
        )
        try:
            with psycopg.connect(url) as conn, conn.transaction():
                yield conn, detail
        except Exception as exc:
            log.execute(
                Q["step_end"],
                {
                    "period_end": period_end,
                    "step": name,
                    "status": "failed",
                    "detail": json.dumps({"error": str(exc)[:500]}),
                },
            )
            log.execute(Q["run_failed"], {"period_end": period_end})
            raise
        log.execute(
            Q["step_end"],
            {
                "period_end": period_end,
                "step": name,
                "status": "done",
                "detail": json.dumps(detail, sort_keys=True),
            },
        )


def prepare(url: str, period_end: date, as_at: datetime, attempt: int, s: AccrualsSettings) -> int:
    """Start the attempt: drop the run date's previous rows, snapshot accounts; chunk count.

    Stores ``s``'s RUN_FIELDS with the run (what its other stages price with). Refused
    (retention.SnapshotPurged) when superseded versions as at ``as_at`` were purged."""
    with psycopg.connect(url) as conn, conn.transaction():
        retention.check_as_at(conn, as_at)
        conn.execute(
            Q["run_begin"],
            {
                "period_end": period_end,
                "as_at": as_at,
                "attempt": attempt,
                "workflow_id": workflow_id(period_end, attempt),
                "settings": json.dumps(s.run_settings(), sort_keys=True),
            },
        )
        conn.execute(Q["run_clear"], {"period_end": period_end})
    with stage(url, period_end, "prepare") as (conn, detail):
        params = {"period_end": period_end, "as_at": as_at, "chunk_size": s.chunk_size}
        taken = conn.execute(Q["snapshot_accounts"], params).fetchone()
        assert taken is not None
        detail["accounts"], detail["no_data"] = taken  # no_data: left out, nothing to accrue
        conn.execute(Q["make_chunks"], params)
        row = conn.execute(Q["run_set_chunks"], params).fetchone()
        detail["chunks"] = chunks = int(row[0]) if row else 0
    return chunks


def profiles(url: str, period_end: date, as_at: datetime, s: AccrualsSettings) -> None:
    with stage(url, period_end, "profiles") as (conn, detail):
        detail["profiles"] = estimate.compute_profiles(conn, url, period_end, as_at, s)


def check(url: str, period_end: date, s: AccrualsSettings) -> None:
    with stage(url, period_end, "check") as (conn, detail):
        detail["fixes"] = estimate.check_and_fix(conn, period_end, s)


def scalars(url: str, period_end: date, as_at: datetime, s: AccrualsSettings) -> None:
    with stage(url, period_end, "scalars") as (conn, detail):
        detail["scalars"] = estimate.compute_scalars(conn, url, period_end, as_at, s)


def chunk_ids(url: str, period_end: date, chunk: int | None) -> list[str]:
    """Accounts of one chunk, or (None) the run's failed accounts."""
    with psycopg.connect(url) as conn:
        if chunk is None:
            return [r[0] for r in conn.execute(Q["failed_ids"], {"period_end": period_end})]
        return [
            r[0] for r in conn.execute(Q["chunk_ids"], {"period_end": period_end, "chunk": chunk})
        ]


def price(
    url: str,
    period_end: date,
    as_at: datetime,
    ids: Sequence[str],
    s: AccrualsSettings,
    chunk: int | None = None,
) -> int:
    """Price ``ids`` and replace their results in one transaction; failed accounts' count.

    A chunk is priced as one batch; if the batch raises, each account is priced alone so one
    bad account fails only itself (recorded in acc.run_failure, resubmittable). Refused
    (retention.SnapshotPurged) when a purge passed ``as_at`` since the run was submitted."""
    with psycopg.connect(url) as conn, conn.transaction():
        retention.check_as_at(conn, as_at)  # holds a purge off until this commits
        acc = estimate.Accounts.load(conn, period_end, ids)
        profs = estimate.Profiles(conn, period_end, s.min_contributors)
        with conn.cursor(row_factory=dict_row) as tcur:
            book = tariffs.build(tcur.execute(Q["tariff_rates"]).fetchall())
        scal = estimate.scalars_of(conn, period_end, acc.ids)
        conn.execute(Q["clear_accounts"], {"period_end": period_end, "ids": acc.ids})
        failures: dict[str, str] = {}
        try:
            with conn.transaction():  # a savepoint: a failed batch leaves nothing behind
                _price(
                    conn,
                    period_end,
                    as_at,
                    acc,
                    list(range(len(acc.ids))),
                    profs,
                    book,
                    scal,
                    failures,
                )
        except Exception:
            logger.exception("chunk failed as a batch; pricing its accounts one by one")
            failures.clear()
            for i in range(len(acc.ids)):
                try:
                    with conn.transaction():
                        _price(conn, period_end, as_at, acc, [i], profs, book, scal, failures)
                except Exception as exc:  # recorded, never lost: resubmit re-prices it
                    failures[acc.ids[i]] = f"{type(exc).__name__}: {exc}"
        with conn.cursor() as cur, cur.copy(Q["copy_failures"]) as copy:
            for account_id in sorted(failures):
                copy.write_row((period_end, account_id, "price", failures[account_id]))
        if chunk is not None:
            conn.execute(
                Q["chunk_done"], {"period_end": period_end, "chunk": chunk, "failed": len(failures)}
            )
    return len(failures)


def _price(
    conn: psycopg.Connection[Any],
    period_end: date,
    as_at: datetime,
    acc: estimate.Accounts,
    idx: list[int],
    profs: estimate.Profiles,
    book: tariffs.TariffBook,
    scal: dict[tuple[str, int], float],
    failures: dict[str, str],
) -> None:
    e = energy.build(conn, period_end, as_at, acc, idx, profs, scal)
    lines, problems = pricing.price(
        book, [acc.tariff[i] for i in idx], [acc.jur[i] for i in idx], e.d0, e.start, e.kwh
    )
    for p, why in problems.items():
        failures[acc.ids[idx[p]]] = why
    bad = set(problems)
    _write(conn, period_end, acc, idx, e, [ln for ln in lines if ln.account not in bad], bad)


def _write(
    conn: psycopg.Connection[Any],
    period_end: date,
    acc: estimate.Accounts,
    idx: list[int],
    e: energy.Energy,
    lines: list[pricing.Line],
    bad: set[int],
) -> None:
    cents = [0] * len(idx)
    gst = [0] * len(idx)
    with conn.cursor() as cur:
        with cur.copy(Q["copy_lines"]) as copy:
            for ln in lines:
                cents[ln.account] += ln.cents
                gst[ln.account] += ln.gst_cents
                copy.write_row(
                    (
                        period_end,
                        acc.ids[idx[ln.account]],
                        ln.month,
                        ln.code,
                        Decimal(ln.rate_e4).scaleb(-4),
                        Decimal(ln.qty_wh).scaleb(-3),
                        ln.unit,
                        Decimal(ln.cents).scaleb(-2),
                        Decimal(ln.gst_cents).scaleb(-2),
                    )
                )
        days_total = e.kwh.shape[2]
        use = e.kwh[:2].sum(axis=3)  # general + controlled, per day
        est = np.asarray(e.est[:2].any(axis=3), bool)
        with cur.copy(Q["copy_results"]) as copy:
            for p, i in enumerate(idx):
                if p in bad:
                    continue
                window = slice(int(e.start[p]), days_total)
                actual = float(use[:, p, window][~est[:, p, window]].sum())
                estimated = float(use[:, p, window][est[:, p, window]].sum())
                copy.write_row(
                    (
                        period_end,
                        acc.ids[i],
                        e.segment[p],
                        max(days_total - int(e.start[p]), 0),
                        f"{actual:.3f}",
                        f"{estimated:.3f}",
                        Decimal(cents[p]).scaleb(-2),
                        Decimal(gst[p]).scaleb(-2),
                        "+".join(sorted(e.methods[p])) or "actual",
                        f"{e.scalar[p]:.4f}",
                        "|".join(sorted(e.flags[p])),
                    )
                )
        with cur.copy(Q["copy_estimated_reads"]) as copy:
            for p, suffix, start, end, kwh, method in e.est_reads:
                if p not in bad:
                    copy.write_row(
                        (
                            period_end,
                            acc.ids[idx[p]],
                            acc.nmi[idx[p]],
                            suffix,
                            start,
                            end,
                            kwh,
                            method,
                        )
                    )
        with cur.copy(Q["copy_estimated_days"]) as copy:
            for p, suffix, day, vals, read in e.est_days:
                if p not in bad:  # arrays as text literals: repr round-trips each float,
                    text = "{" + ",".join(map(repr, vals)) + "}"  # a QualityMethod needs no quotes
                    methods = (
                        None if read is None else "{" + ",".join(m or "NULL" for m in read) + "}"
                    )
                    copy.write_row(
                        (period_end, acc.ids[idx[p]], acc.nmi[idx[p]], suffix, day, text, methods)
                    )


def export(url: str, period_end: date, as_at: datetime) -> dict[str, Any]:
    """Render and store the files and the report; the run's totals."""
    with stage(url, period_end, "export") as (conn, detail):
        totals = _totals(conn, period_end)
        failures = [
            {"account_id": a, "step": st, "reason": r}
            for a, st, r in conn.execute(Q["failures"], {"period_end": period_end})
        ]
        steps = [
            {"step": r[0], "status": r[2], "detail": r[5]}
            for r in conn.execute(Q["run_steps"], {"period_end": period_end})
            if r[0] != "export"
        ]
        renders: list[parallel.Task[bytes]] = [  # committed rows: read on two more connections
            lambda c: exports.summary_csv(c, period_end),
            lambda c: exports.lines_csv(c, period_end),
            lambda c: exports.nem12(c, period_end, as_at),
        ]
        summary, lines, nem12 = parallel.ordered(url, renders)
        files = {
            exports.SUMMARY: summary,
            exports.LINES: lines,
            exports.NEM12: nem12,
            exports.REPORT: exports.report(totals, steps, failures),
        }
        detail["files"] = {n: exports.store(conn, period_end, n, b) for n, b in files.items()}
        status = "finished"
        conn.execute(
            Q["run_finish"],
            {
                "period_end": period_end,
                "status": status,
                "totals": json.dumps(totals, sort_keys=True),
            },
        )
    return totals


def _totals(conn: psycopg.Connection[Any], period_end: date) -> dict[str, Any]:
    row = conn.execute(Q["run_totals"], {"period_end": period_end}).fetchone()
    assert row is not None
    (accounts, amount, gst, act, est, failures, lines, est_reads, est_days) = row
    share = (est / (act + est)) if (act + est) else Decimal(0)
    return {
        "accounts": accounts,
        "amount_ex_gst": f"{amount:.2f}",
        "gst": f"{gst:.2f}",
        "kwh_actual": f"{act:.3f}",
        "kwh_estimated": f"{est:.3f}",
        "estimated_share": f"{share:.4f}",
        "failures": failures,
        "line_items": lines,
        "estimated_reads": est_reads,
        "estimated_days": est_days,
    }


Progress = Callable[[int, int], None]


def run_inline(
    url: str,
    period_end: date,
    as_at: datetime,
    s: AccrualsSettings,
    attempt: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every stage in this process, in order (tests, benchmarks; the worker uses the flow)."""
    chunks = prepare(url, period_end, as_at, attempt, s)
    profiles(url, period_end, as_at, s)
    check(url, period_end, s)
    scalars(url, period_end, as_at, s)
    with stage(url, period_end, "price") as (_conn, detail):
        failed = 0
        for c in range(chunks):
            failed += price(url, period_end, as_at, chunk_ids(url, period_end, c), s, c)
            if progress:
                progress(c + 1, chunks)
        detail["chunks"], detail["failed"] = chunks, failed
    return export(url, period_end, as_at)


def mark(url: str, period_end: date, name: str, status: str, detail: dict[str, Any]) -> None:
    """Record a stage that spans several transactions (price: one per chunk)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if status == "running":
            conn.execute(
                Q["step_begin"],
                {"period_end": period_end, "step": name, "ordinal": STEPS.index(name)},
            )
        else:
            conn.execute(
                Q["step_end"],
                {
                    "period_end": period_end,
                    "step": name,
                    "status": status,
                    "detail": json.dumps(detail, sort_keys=True),
                },
            )
