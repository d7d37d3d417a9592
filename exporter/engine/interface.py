"""The ClickHouse backend interface: what the tiers, the pipeline and the query layer may ask of an engine.

Two implementations speak the same SQL: chdb (the engine in-process, our embedded default) and a
ClickHouse server over the native protocol (clickhouse-driver). Nothing else knows which one is in use.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa


class ClickHouseBackend(Protocol):
    """Execute statements, insert Arrow tables, and read query results as Arrow."""

    description: str

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, INSERT ... SELECT)."""

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        """Insert ``data`` into ``table``, matching columns by name."""

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    def close(self) -> None:
        """Release the connection (and, for chdb, the data directory)."""
