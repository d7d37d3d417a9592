"""Running a user's SQL and returning Arrow, with Enum columns as their names and DateTime columns as
times (the engine hands them over as seconds).

The guard judges the statement before anything reaches the engine. ClickHouse hands Enum columns to
Arrow as their integer codes; a user asking for ``outcome`` wants ``failed``, not ``2``: a SELECT's
column types come from ``DESCRIBE (query)`` and Enum columns are rewritten with ``toString``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from exporter.engine.interface import ClickHouseBackend, Limits, QueryStats
from exporter.errors import QueryError
from exporter.query.guard import check
from exporter.query.history import HistoryEntry, QueryHistory
from exporter.query.routing import Route, route


class LimitExceeded(QueryError):
    """The engine stopped a query at one of the configured limits."""


@dataclass
class QueryResult:
    """A result and what it took: the tiers that served it, the time, and what the engine read. An
    export has written its rows as they came and holds no table."""

    table: pa.Table | None
    rows: int
    tiers: tuple[str, ...]
    elapsed: float
    stats: QueryStats = field(default_factory=QueryStats)


def prepare(backend: ClickHouseBackend, sql: str) -> Route:
    """What runs for ``sql``: refused (QueryRefused) before anything reaches the engine unless the guard
    lets it through; then routed to the tiers its time range needs, with Enum columns as names."""
    statement = check(sql)
    if statement.kind not in ("SELECT", "WITH", "EXPLAIN"):
        return Route(statement.sql, ())
    routed = route(backend, statement.sql)
    if statement.kind == "EXPLAIN":
        return routed
    text = routed.sql
    described = backend.query_arrow(f"DESCRIBE TABLE ({routed.shape or text})")  # lists no cold file
    replaced = []
    for name, kind in zip(described.column("name").to_pylist(), described.column("type").to_pylist(), strict=True):
        if "Enum8(" in kind or "Enum16(" in kind:
            replaced.append(f"toString(`{name}`) AS `{name}`")
        elif _SECONDS.match(kind):  # the engine hands DateTime to Arrow as a bare number of seconds
            replaced.append(f"toDateTime64(`{name}`, 0, 'UTC') AS `{name}`")
    if replaced:
        text = f"SELECT * REPLACE ({', '.join(replaced)}) FROM ({text})"
    return Route(text, routed.tiers)


_SECONDS = re.compile(r"^(Nullable\()?DateTime(\(|\)|$)")


def run(backend: ClickHouseBackend, sql: str, limits: Limits | None = None,
        query_id: str | None = None) -> QueryResult:
    """Run one read-only statement and return its result with what it took."""
    clock = time.perf_counter()
    planned = prepare(backend, sql)
    stats = QueryStats()
    try:
        table = backend.query_arrow(planned.sql, limits=limits, query_id=query_id, stats=stats)
    except QueryError as exc:
        raise _plainly(exc, limits) from None
    return QueryResult(table, table.num_rows, planned.tiers, time.perf_counter() - clock, stats)


def run_query(backend: ClickHouseBackend, sql: str, limits: Limits | None = None,
              query_id: str | None = None) -> pa.Table:
    """The result alone (see ``run``)."""
    return run(backend, sql, limits, query_id).table  # type: ignore[return-value]


def stream(backend: ClickHouseBackend, sql: str, limits: Limits | None = None, query_id: str | None = None,
           stats: QueryStats | None = None) -> tuple[pa.RecordBatchReader, Route]:
    """Run one read-only statement and hand its result over batch by batch (for exports of any size)."""
    planned = prepare(backend, sql)
    try:
        reader = backend.query_batches(planned.sql, limits=limits, query_id=query_id, stats=stats)
    except QueryError as exc:
        raise _plainly(exc, limits) from None
    return _errors_said_plainly(reader, limits), planned


def _errors_said_plainly(reader: pa.RecordBatchReader, limits: Limits | None) -> pa.RecordBatchReader:
    """The reader, with an error mid-stream (a limit hit, an archived object) said as ``run`` says it."""
    def batches():
        try:
            yield from reader
        except QueryError as exc:
            raise _plainly(exc, limits) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


class ArchivedData(QueryError):
    """The query needs cold files that S3 has moved to an archive storage class (Glacier)."""


_ARCHIVED = re.compile(r"not valid for the object's storage class: \(in file/uri (?P<path>[^)\s]+)\)")
_HOUR = re.compile(r"year=(\d+)/month=(\d+)/day=(\d+)/hour=(\d+)")


def _plainly(exc: QueryError, limits: Limits | None) -> QueryError:
    """The engine's error as the sentence a user can act on: a limit hit names its config key, an
    archived object names its hour and how to restore it; anything else as the engine said it."""
    return _named_limit(exc, limits) or _archived(exc) or exc


def _archived(exc: QueryError) -> ArchivedData | None:
    found = _ARCHIVED.search(str(exc))
    if found is None:
        return None
    path = found.group("path")
    bucket, _, key = path.partition("/")
    hour = _HOUR.search(path)
    when = f"the hour {hour.group(1)}-{hour.group(2)}-{hour.group(3)} {hour.group(4)}:00 UTC" if hour else path
    return ArchivedData(f"the query needs cold data that S3 has moved to an archive storage class: {when} "
                        f"(s3://{path}), perhaps more; restore it first (aws s3api restore-object --bucket {bucket} "
                        f"--key {key} --restore-request Days=7) or narrow the query to data younger than "
                        "retention.archive_after")


def _named_limit(exc: QueryError, limits: Limits | None) -> LimitExceeded | None:
    """The engine's words for a limit hit, as a sentence naming the config key to change."""
    if limits is None:
        return None
    text = str(exc).lower()
    if "timeout exceeded" in text and limits.max_execution_time:
        return LimitExceeded(f"the query ran longer than {limits.max_execution_time:g}s and was stopped "
                             "(query.max_execution_time): narrow it, e.g. by enqueue_time")
    if "limit for rows" in text and limits.max_rows_to_read:
        return LimitExceeded(f"the query would read more than {limits.max_rows_to_read:,} rows and was stopped "
                             "(query.max_rows_to_read): narrow it, e.g. by enqueue_time or queue")
    if "limit for result" in text and limits.max_result_rows:
        return LimitExceeded(f"the result has more than {limits.max_result_rows:,} rows (query.max_result_rows): "
                             "add a LIMIT or an aggregation")
    return None


class QueryCancelled(QueryError):
    """The user cancelled the query and the engine stopped working on it."""


class Execution:
    """A query running in a thread of its own, so the caller (the CLI's Ctrl-C, the dashboard's Esc) can
    cancel it: the engine is told to stop (KILL QUERY), not merely abandoned to run on. With a
    ``history``, the query is recorded when it ends, whatever the outcome (a refusal or an error too).

    ``consume`` turns the reader into the outcome: by default the whole result as a QueryResult; an
    export passes a writer, so rows go to the file as they arrive (the outcome is then its row count).
    """

    def __init__(self, backend: ClickHouseBackend, sql: str, limits: Limits | None = None,
                 history: QueryHistory | None = None,
                 consume: Callable[[pa.RecordBatchReader], int] | None = None) -> None:
        self.backend = backend
        self.history = history
        self.query_id = uuid.uuid4().hex
        self.cancelled = False
        self._outcome: QueryResult | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sql, limits, consume), name="archives-query",
                                        daemon=True)
        self._thread.start()

    def _run(self, sql: str, limits: Limits | None, consume: Callable[[pa.RecordBatchReader], int] | None) -> None:
        started, clock = time.time(), time.perf_counter()
        tiers: tuple[str, ...] = ()
        rows = None
        try:
            if consume is None:
                self._outcome = run(self.backend, sql, limits, self.query_id)
                tiers, rows = self._outcome.tiers, self._outcome.rows
            else:
                stats = QueryStats()
                reader, planned = stream(self.backend, sql, limits, self.query_id, stats)
                tiers = planned.tiers
                rows = consume(reader)
                self._outcome = QueryResult(None, rows, tiers, time.perf_counter() - clock, stats)
        except BaseException as exc:  # handed to whoever waits
            self._outcome = exc
        if self.history is not None:
            outcome = self._outcome
            error = "cancelled" if self.cancelled else str(outcome) if isinstance(outcome, BaseException) else None
            self.history.record(HistoryEntry(sql.strip(), started, time.perf_counter() - clock,
                                             None if error else rows, tiers, error=error))

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
            self.backend.cancel(self.query_id)  # again if it had not reached the engine yet
            self._thread.join(0.1)
