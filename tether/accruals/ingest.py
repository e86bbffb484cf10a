"""Load NEM12/NEM13 files into ``acc``: COPY each parsed batch to staging, merge set-based.

One file is one transaction: its batches are copied (binary COPY, see ingest_copy) into temporary
tables as the parser yields them (parsing runs in a thread while PostgreSQL digests the previous
batch), then merged into
``acc.channel_day`` / ``acc.basic_read`` keeping the newest UpdateDateTime (the versions it
replaces, and staged versions older than the one that won, go to ``acc.*_superseded``, for the
runs' as-at snapshots). A rejected file rolls back
everything it copied and is logged with its errors; a partial file stores its good rows and
logs each quarantined one (line, reason) in ``acc.meter_file_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, LiteralString

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tether.accruals.ingest_copy import (
    BINARY_HEADER,
    BINARY_TRAILER,
    basic_read_lines,
    channel_days_binary,
)
from tether.accruals.nem import Batch, ChannelDays, NemFile, RowError
from tether.core.sql import load_queries

queries = load_queries("tether.accruals")

Status = Literal["loaded", "partial", "rejected"]
#: called as (file, bytes parsed, file size) after every batch and at the end of each file
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, kw_only=True)
class FileResult:
    file: str
    status: Status
    nmis: int = 0
    channel_days: int = 0
    basic_reads: int = 0
    values: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "nmis": self.nmis,
            "channel_days": self.channel_days,
            "basic_reads": self.basic_reads,
            "values": self.values,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


class _Rollback(Exception):
    """Leaves the file's transaction without storing anything."""


async def ingest_files(
    target: AsyncConnectionPool[Any] | str,
    paths: Iterable[str | os.PathLike[str]],
    progress: Progress | None = None,
    *,
    batch_rows: int = 4096,
) -> list[FileResult]:
    """Ingest each file in its own transaction; one result per file, in order."""
    results = []
    for path in paths:
        async with _connection(target) as conn:
            results.append(await ingest_file(conn, path, progress, batch_rows=batch_rows))
    return results


def _connection(
    target: AsyncConnectionPool[Any] | str,
) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
    if isinstance(target, str):
        return _Owned(target)
    return target.connection()


class _Owned:
    """A connection of our own for the ``url`` form of :func:`ingest_files`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        self._conn = await psycopg.AsyncConnection.connect(self._url, row_factory=dict_row)
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        await self._conn.close()


async def ingest_file(
    conn: psycopg.AsyncConnection[Any],
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    batch_rows: int = 4096,
) -> FileResult:
    """Parse and store one file (see the module docstring for what is kept)."""
    name = str(path)
    try:
        nem = NemFile(path, batch_rows=batch_rows)
        if not nem.path.is_file():
            raise IsADirectoryError(0, "not a regular file")
        nem.path.open("rb").close()
    except OSError as exc:
        error = RowError(line=0, reason=f"cannot read the file: {exc.strerror or exc}")
        return await _log_rejected(conn, name, None, [error])
    tally = _Tally()
    try:
        async with conn.transaction():
            await conn.execute(queries["md_create_stage"])
            await _copy_all(
                conn, nem, tally, lambda: progress and progress(name, nem.bytes_read, nem.size)
            )
            if nem.rejected or (nem.errors and not tally.rows):
                raise _Rollback
            result = tally.result(name, nem.errors)
            file_id = await _insert_file(conn, result, nem.format, None)
            merge = {"file_id": file_id, "staged": tally.channel_days}
            await conn.execute(queries["md_merge_channel_days"], merge)
            merge = {"file_id": file_id, "staged": tally.basic_reads}
            await conn.execute(queries["md_merge_basic_reads"], merge)
            await _copy_errors(conn, file_id, nem.errors)
    except _Rollback:
        return await _log_rejected(conn, name, nem.format, nem.errors, nem.rejected)
    finally:
        if progress:
            progress(name, nem.size, nem.size)
    return result


class _Tally:
    """What a file contributed, for its result and log row."""

    def __init__(self) -> None:
        self.nmis: set[str] = set()
        self.channel_days = self.basic_reads = self.values = 0

    @property
    def rows(self) -> int:
        return self.channel_days + self.basic_reads

    def add(self, batch: Batch) -> None:
        self.nmis.update(np.unique(batch.nmi).tolist())
        if isinstance(batch, ChannelDays):
            self.channel_days += len(batch)
            self.values += int(batch.values.size)
        else:
            self.basic_reads += len(batch)

    def result(self, name: str, errors: list[RowError]) -> FileResult:
        return FileResult(
            file=name,
            status="partial" if errors else "loaded",
            nmis=len(self.nmis),
            channel_days=self.channel_days,
            basic_reads=self.basic_reads,
            values=self.values,
            errors=list(errors),
        )


async def _log_rejected(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    fmt: str | None,
    errors: list[RowError],
    reason: str | None = None,
) -> FileResult:
    result = FileResult(file=name, status="rejected", errors=list(errors))
    async with conn.transaction():
        file_id = await _insert_file(conn, result, fmt, reason or "no valid rows")
        await _copy_errors(conn, file_id, errors)
    return result


async def _insert_file(
    conn: psycopg.AsyncConnection[Any], r: FileResult, fmt: str | None, reason: str | None
) -> int:
    params = {
        "file_name": r.file, "format": fmt, "status": r.status, "rejected_reason": reason,
        "nmis": r.nmis, "channel_days": r.channel_days, "basic_reads": r.basic_reads,
        "values": r.values, "error_count": len(r.errors),
    }  # fmt: skip
    cur = await conn.execute(queries["md_insert_file"], params)
    row = await cur.fetchone()
    assert row is not None
    return int(row["file_id"])


async def _copy_errors(
    conn: psycopg.AsyncConnection[Any], file_id: int, errors: Sequence[RowError]
) -> None:
    if not errors:
        return
    async with conn.cursor().copy(queries["md_copy_errors"]) as copy:
        for e in errors:
            await copy.write_row((file_id, e.line, e.reason))


def _encoded(batches: Iterator[Batch]) -> tuple[Batch, LiteralString, bytes] | None:
    """The next batch and its COPY statement and payload (runs in a worker thread)."""
    batch = next(batches, None)
    if batch is None:
        return None
    if isinstance(batch, ChannelDays):
        payload = BINARY_HEADER + channel_days_binary(batch) + BINARY_TRAILER
        return batch, queries["md_copy_channel_days"], payload
    return batch, queries["md_copy_basic_reads"], "".join(basic_read_lines(batch)).encode()


async def _copy_all(
    conn: psycopg.AsyncConnection[Any], nem: NemFile, tally: _Tally, tick: Callable[[], object]
) -> None:
    """COPY every batch of ``nem``; the next batch is parsed while PostgreSQL takes this one."""
    batches = nem.batches()
    pending = asyncio.ensure_future(asyncio.to_thread(_encoded, batches))
    try:
        while (item := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(_encoded, batches))
            batch, statement, payload = item
            async with conn.cursor().copy(statement) as copy:
                await copy.write(payload)
            tally.add(batch)
            tick()
    finally:
        if not pending.done():  # a failed COPY: let the parser thread finish before leaving
            with contextlib.suppress(Exception):
                await pending
