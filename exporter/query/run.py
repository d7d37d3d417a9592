"""Running a user's statement through a query layer (``exporter.query.layer``) and taking its result:
whole, as a first page, or written out as it arrives; cancelled from another thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from exporter.engine.interface import Limits, QueryStats
from exporter.errors import QueryError
from exporter.query.history import HistoryEntry, QueryHistory
from exporter.query.layer import QueryLayer

PAGE_BYTES = 64 << 20  # a first page stops here too: 10,000 rows of 1 MiB payload samples would be 10 GiB


@dataclass
class QueryResult:
    """A result and what it took: the tiers that served it, the time, and what the engine read.
    ``complete`` is False for a first page the result went on past; an export holds no table."""

    table: pa.Table | None
    rows: int
    tiers: tuple[str, ...]
    elapsed: float
    stats: QueryStats = field(default_factory=QueryStats)
    complete: bool = True


@dataclass(frozen=True)
class Taken:
    """What a consumer took of a result: the rows it kept (None when it wrote them out), how many, and
    whether it read the result to its end."""

    table: pa.Table | None
    rows: int
    complete: bool = True


Consumer = Callable[[pa.RecordBatchReader], Taken]


def whole(reader: pa.RecordBatchReader) -> Taken:
    table = reader.read_all()
    return Taken(table, table.num_rows)


def first_page(rows: int, max_bytes: int = PAGE_BYTES) -> Consumer:
    """A consumer keeping at most ``rows`` rows and about ``max_bytes``, then letting the rest go (the
    engine stops): a workbench shows the first page at once and fetches more only when asked."""
    def take(reader: pa.RecordBatchReader) -> Taken:
        kept: list[pa.RecordBatch] = []
        count = size = 0
        for batch in reader:
            if count >= rows or size >= max_bytes or batch.num_rows > rows - count:
                kept.append(batch.slice(0, min(batch.num_rows, rows - count) if size < max_bytes else 0))
                taken = pa.Table.from_batches(kept, reader.schema)
                return Taken(taken, taken.num_rows, complete=False)
            kept.append(batch)
            count += batch.num_rows
            size += batch.nbytes
        return Taken(pa.Table.from_batches(kept, reader.schema), count)

    return take


def run(queries: QueryLayer, sql: str, limits: Limits | None = None, query_id: str | None = None,
        consume: Consumer = whole) -> QueryResult:
    """Run one read-only statement and take its result with ``consume`` (by default whole)."""
    clock, stats = time.perf_counter(), QueryStats()
    opened = queries.run(sql, limits, query_id, stats)
    tiers, reader = opened.tiers, opened.reader
    del opened  # the reader's last reference goes with the consumer's: a result left part-read stops
    taken = consume(reader)
    del reader
    return QueryResult(taken.table, taken.rows, tiers, time.perf_counter() - clock, stats, taken.complete)


def run_query(queries: QueryLayer, sql: str, limits: Limits | None = None) -> pa.Table:
    """The whole result alone (see ``run``)."""
    return run(queries, sql, limits).table  # type: ignore[return-value]


class QueryCancelled(QueryError):
    """The user cancelled the query and the engine stopped working on it."""


class Execution:
    """A query running in a thread of its own, so the caller (the CLI's Ctrl-C, the dashboard's Esc) can
    cancel it: the engine is told to stop (KILL QUERY), not merely abandoned to run on. With a
    ``history``, the query is recorded when it ends, whatever the outcome (a refusal or an error too).

    ``consume`` takes the result: whole by default, a first page, or a writer that sends rows to a file
    as they arrive.
    """

    def __init__(self, queries: QueryLayer, sql: str, limits: Limits | None = None,
                 history: QueryHistory | None = None, consume: Consumer = whole) -> None:
        self.queries = queries
        self.history = history
        self.query_id = uuid.uuid4().hex
        self.cancelled = False
        self._outcome: QueryResult | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sql, limits, consume), name="archives-query",
                                        daemon=True)
        self._thread.start()

    def _run(self, sql: str, limits: Limits | None, consume: Consumer) -> None:
        started, clock = time.time(), time.perf_counter()
        try:
            self._outcome = run(self.queries, sql, limits, self.query_id, consume)
        except BaseException as exc:  # handed to whoever waits
            self._outcome = exc
        if self.history is not None:
            outcome = self._outcome
            error = "cancelled" if self.cancelled else str(outcome) if isinstance(outcome, BaseException) else None
            result = outcome if isinstance(outcome, QueryResult) else None
            self.history.record(HistoryEntry(sql.strip(), started, time.perf_counter() - clock,
                                             result.rows if result else None, result.tiers if result else (),
                                             error=error))

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> QueryResult:
        """The result; raises what the query raised, or QueryCancelled after ``cancel``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            self._thread.join(0.2)  # short waits, so Ctrl-C reaches the caller at once
        if self._thread.is_alive():
            raise TimeoutError("the query is still running")
        if self.cancelled and isinstance(self._outcome, QueryError):
            raise QueryCancelled("query cancelled; the engine stopped working on it") from None
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome  # type: ignore[return-value]

    def cancel(self, patience: float = 10.0) -> None:
        """Stop the engine working on the query; returns once the query has ended (or ``patience`` ran out)."""
        self.cancelled = True
        deadline = time.monotonic() + patience
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.queries.cancel(self.query_id)  # again if it had not reached the engine yet
            self._thread.join(0.1)
