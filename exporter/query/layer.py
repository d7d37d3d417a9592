"""The query layer where the store is: "run this user statement" (guard, route, describe, run, stream)
in one call, beside cancel, explain, format and the catalog.

Every console reaches the archive through a ``QueryLayer``: the owner's own (``LocalQueries``, over
its backend) or the owner's over its socket (``exporter.query.remote.RemoteQueries``). Only the
owner judges, routes and sets limits: a console sends the user's text and may ask for less, never
more. The SQL the layer generates itself (routing, DESCRIBE, the casts to readable types) is not
user input and is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from exporter.engine.interface import Catalog, ClickHouseBackend, Limits, QueryStats
from exporter.engine.parser import MemoryEngine, parser_for
from exporter.engine.sql import sql_string
from exporter.errors import QueryError, QueryRefused
from exporter.query.guard import MAX_STATEMENT_BYTES, Statement, check
from exporter.query.plainly import plainly, plainly_read
from exporter.query.routing import Route, route
from exporter.values import readable_type

if TYPE_CHECKING:
    from exporter.engine.chdb import ChdbBackend

BATCH_ROWS = 65536


@dataclass(frozen=True)
class Opened:
    """A statement on its way: its result batch by batch, the tiers it reads, and what the owner runs."""

    reader: pa.RecordBatchReader
    tiers: tuple[str, ...]
    sql: str


class QueryLayer(Protocol):
    description: str

    def run(self, sql: str, limits: Limits | None = None, query_id: str | None = None,
            stats: QueryStats | None = None, batch_rows: int = BATCH_ROWS) -> Opened:
        """Judge, route and run the user's statement; its result as it comes (dropping the reader stops
        the engine). QueryRefused before anything runs if the guard refuses it."""

    def cancel(self, query_id: str) -> bool:
        """Make the engine stop the query; False if none was running."""

    def explain(self, sql: str) -> str:
        """The tiers, the plan and the engine's estimate for the user's SELECT, running nothing."""

    def pretty(self, sql: str) -> str:
        """The user's statement laid out by the engine."""

    def catalog(self) -> Catalog:
        """Tables, columns, functions, keywords and types, for completion and the schema browser."""


def at_most(owner: Limits, asked: Limits | None) -> Limits:
    """The owner's limits, lowered where the console asked for less (it cannot raise one)."""
    if asked is None:
        return owner

    def lower(mine: float | int | None, theirs: float | int | None):
        return theirs if mine is None else mine if theirs is None else min(mine, theirs)

    rows = lower(owner.max_result_rows, asked.max_result_rows)
    return replace(owner, max_execution_time=lower(owner.max_execution_time, asked.max_execution_time),
                   max_rows_to_read=lower(owner.max_rows_to_read, asked.max_rows_to_read), max_result_rows=rows,
                   cut_results=asked.cut_results if asked.max_result_rows is not None else owner.cut_results,
                   block_rows=lower(owner.block_rows or BATCH_ROWS, asked.block_rows))  # never above the default


def owner_limits(query) -> Limits:
    """The limits an owner enforces on every user statement, from its ``query`` config section."""
    return Limits(query.max_execution_time, query.max_rows_to_read)


class LocalQueries:
    """The query layer over the owner's own backend, with the owner's limits."""

    def __init__(self, backend: ClickHouseBackend, limits: Limits | None = None,
                 max_statement_bytes: int = MAX_STATEMENT_BYTES, database: str = "default") -> None:
        self.backend = backend
        self.limits = limits or Limits()
        self.max_statement_bytes = max_statement_bytes
        self.database = database
        self.description = backend.description
        self._parser: ChdbBackend | MemoryEngine | None = None

    @property
    def parser(self) -> ChdbBackend | MemoryEngine:
        if self._parser is None:
            self._parser = parser_for(self.backend)
        return self._parser

    def close(self) -> None:
        """Let go of an in-memory parser (the backend is its opener's to close)."""
        if isinstance(self._parser, MemoryEngine):
            self._parser.close()
        self._parser = None

    def judge(self, sql: str) -> Statement:
        return check(sql, self.parser, self.database, self.max_statement_bytes)

    def run(self, sql: str, limits: Limits | None = None, query_id: str | None = None,
            stats: QueryStats | None = None, batch_rows: int = BATCH_ROWS) -> Opened:
        statement = self.judge(sql)
        planned = prepare(self.backend, statement)
        bounded = at_most(self.limits, limits)
        try:
            reader = self.backend.query_batches(planned.sql, limits=bounded, query_id=query_id, stats=stats,
                                                batch_rows=batch_rows)
        except QueryError as exc:
            raise plainly(exc, bounded) from None
        return Opened(plainly_read(reader, bounded), planned.tiers, planned.sql)

    def cancel(self, query_id: str) -> bool:
        return self.backend.cancel(query_id)

    def explain(self, sql: str) -> str:
        statement = self.judge(sql)
        if statement.kind != "SELECT":
            raise QueryRefused(f"explain applies to SELECT and WITH statements, not {statement.kind}")
        routed = route(self.backend, statement.sql)  # the plan of what would run, tiers pruned as they would be
        plan = self.backend.query_arrow(f"EXPLAIN indexes = 1 {routed.sql}").column(0).to_pylist()
        try:
            estimates = self.backend.query_arrow(f"EXPLAIN ESTIMATE {routed.sql}").to_pylist()
        except QueryError:  # an engine without EXPLAIN ESTIMATE: the plan alone
            estimates = []
        lines = [f"tiers: {' + '.join(routed.tiers) or 'none'}", *plan,
                 *(f"estimate: {e['database']}.{e['table']}: {e['rows']:,} rows to read in {e['parts']} parts, "
                   f"{e['marks']} marks" for e in estimates)]
        return "\n".join(lines)

    def pretty(self, sql: str) -> str:
        statement = self.judge(sql)
        formatted = self.parser.query_arrow(f"SELECT formatQuery({sql_string(statement.sql)}) AS q")
        return formatted.column(0)[0].as_py()

    def catalog(self) -> Catalog:
        return self.backend.catalog()


def prepare(backend: ClickHouseBackend, statement: Statement) -> Route:
    """What runs for a statement the guard passed: routed to the tiers its time range needs, each column
    cast to what a person reads (``values.readable_type``: Enum names, not codes; DateTime as times,
    not seconds; IPv6 and wide integers as values, not bytes), in the engine's own types."""
    if statement.kind != "SELECT":
        return Route(statement.sql, ())
    routed = route(backend, statement.sql)
    described = backend.query_arrow(f"DESCRIBE TABLE ({routed.shape or routed.sql})")  # lists no cold file
    replaced = []
    for name, kind in zip(described.column("name").to_pylist(), described.column("type").to_pylist(), strict=True):
        quoted = "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
        readable = readable_type(kind)
        if readable is not None:
            replaced.append(f"CAST({quoted} AS {readable}) AS {quoted}")
    if not replaced:
        return routed
    return Route(f"SELECT * REPLACE ({', '.join(replaced)}) FROM ({routed.sql})", routed.tiers, routed.shape)

