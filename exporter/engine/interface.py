"""The ClickHouse backend interface: what the tiers, the pipeline and the query layer may ask of an engine.

Two implementations speak the same SQL: chdb (the engine in-process, our embedded default) and a
ClickHouse server over the native protocol (clickhouse-driver). Nothing else knows which one is in use.

Calls may come from several threads at once (the exporter's inserts while a user query runs): each
backend gives each call a connection of its own, so a long query never holds up an insert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Limits:
    """Bounds the engine itself enforces on one query (None: the engine's default, usually none).

    ``max_result_rows`` stops reading once that many rows are produced and returns at most that many
    (ask for one more than you show to learn whether the result was cut), or, with ``cut_results``
    off, fails the query instead: an export must not be silently short.
    """

    max_execution_time: float | None = None  # seconds
    max_rows_to_read: int | None = None
    max_result_rows: int | None = None
    cut_results: bool = True
    block_rows: int | None = None  # the engine's block size: a first page arrives after this many rows

    def cut(self, result: pa.Table) -> pa.Table:
        """At most ``max_result_rows`` rows: the engine's 'break' stops only at a block boundary."""
        if self.max_result_rows is not None and result.num_rows > self.max_result_rows:
            return result.slice(0, self.max_result_rows)
        return result

    def cut_stream(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """At most ``max_result_rows`` rows of a stream; stopping there lets the backend end the query."""
        if self.max_result_rows is None:
            return reader
        limit = self.max_result_rows

        def batches() -> Iterator[pa.RecordBatch]:
            left = limit
            for batch in reader:
                yield batch.slice(0, left)
                left -= min(left, batch.num_rows)
                if left == 0:
                    return

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def settings(self) -> dict[str, object]:
        settings: dict[str, object] = {}
        if self.max_execution_time is not None:
            settings["max_execution_time"] = max(1, round(self.max_execution_time))
        if self.max_rows_to_read is not None:
            settings["max_rows_to_read"] = self.max_rows_to_read
        if self.max_result_rows is not None:
            settings.update(max_result_rows=self.max_result_rows,
                            result_overflow_mode="break" if self.cut_results else "throw")
        if self.block_rows is not None:
            settings["max_block_size"] = self.block_rows
        return settings


@dataclass
class QueryStats:
    """What the engine reports having read for one query (ClickHouse's read_rows and read_bytes): the
    cost a user sees beside the result. A backend fills it in as the result arrives."""

    rows_read: int = 0
    bytes_read: int = 0

    def add(self, rows: int, size: int) -> None:
        self.rows_read += rows
        self.bytes_read += size


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    engine: str
    columns: tuple[Column, ...]
    comment: str = ""


@dataclass(frozen=True)
class Catalog:
    """What completion and a schema browser need: the database's tables, the engine's functions, keywords
    and data types (an engine too old to list its keywords gives none), and the query templates' names.
    ``types`` holds each type's name as the engine spells it, plus the lower-case spelling of those it
    reads in any case (``datetime64``): a highlighter tells case-insensitive types by that pair."""

    tables: tuple[Table, ...]
    functions: frozenset[str] = field(default_factory=frozenset)
    aggregate_functions: frozenset[str] = field(default_factory=frozenset)
    keywords: frozenset[str] = field(default_factory=frozenset)
    types: frozenset[str] = field(default_factory=frozenset)
    templates: tuple[str, ...] = ()

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


class ClickHouseBackend(Protocol):
    """Execute statements, insert Arrow tables, read query results as Arrow, cancel, describe."""

    description: str

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, INSERT ... SELECT)."""

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        """Insert ``data`` into ``table``, matching columns by name."""

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, *, limits: Limits | None = None,
                    query_id: str | None = None, stats: QueryStats | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table; ``query_id`` lets ``cancel`` find it. The
        result has its columns even when it has no rows."""

    def query_batches(self, sql: str, *, limits: Limits | None = None, query_id: str | None = None,
                      stats: QueryStats | None = None, batch_rows: int = 65536) -> pa.RecordBatchReader:
        """Run a query and hand its result over batch by batch as the engine produces it, so a result
        larger than memory can be written out; the connection is held until the reader is exhausted or
        dropped (pyarrow's ``close()`` leaves the batches behind a reader running until it is dropped).
        ``stats`` is filled in as it goes: chdb reports progress apart from the rows and its last
        report may not arrive, so for a stream the figures can fall short of what was read."""

    def cancel(self, query_id: str) -> bool:
        """Stop the engine working on a running query (it raises QueryError); False if none was running."""

    def catalog(self) -> Catalog:
        """Tables of the current database with their columns, and the engine's functions and keywords."""

    def close(self) -> None:
        """Release the connections (and, for chdb, the data directory)."""
