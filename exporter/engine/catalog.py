"""Reading the catalog through plain SQL on system tables, the same way on every backend and version.

Columns that older servers lack (table comments before 21.x, system.keywords before 23.x) are left
empty rather than failing: completion works with less on an old server.
"""

from __future__ import annotations

from collections import defaultdict

from exporter.engine.interface import Catalog, ClickHouseBackend, Column, Table
from exporter.errors import QueryError


def read_catalog(backend: ClickHouseBackend) -> Catalog:
    columns: dict[str, list[Column]] = defaultdict(list)
    rows = backend.query_arrow("SELECT table, name, type, comment FROM system.columns "
                               "WHERE database = currentDatabase()").to_pylist()  # in each table's order
    for row in rows:
        columns[row["table"]].append(Column(row["name"], row["type"], row["comment"] or ""))
    try:
        tables = backend.query_arrow("SELECT name, engine, comment FROM system.tables "
                                     "WHERE database = currentDatabase() ORDER BY name").to_pylist()
    except QueryError:  # no comment column before ClickHouse 21
        tables = backend.query_arrow("SELECT name, engine, '' AS comment FROM system.tables "
                                     "WHERE database = currentDatabase() ORDER BY name").to_pylist()
    functions = backend.query_arrow("SELECT name, is_aggregate FROM system.functions").to_pylist()
    try:
        keywords = frozenset(backend.query_arrow("SELECT keyword FROM system.keywords").column(0).to_pylist())
    except QueryError:
        keywords = frozenset()
    return Catalog(
        tables=tuple(Table(t["name"], t["engine"], tuple(columns.get(t["name"], ())), t["comment"] or "")
                     for t in tables),
        functions=frozenset(f["name"] for f in functions),
        aggregate_functions=frozenset(f["name"] for f in functions if f["is_aggregate"]),
        keywords=keywords,
    )
