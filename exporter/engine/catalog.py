"""Reading the catalog through plain SQL on system tables, the same way on every backend and version.

Columns that older servers lack (table comments before 21.x, system.keywords before 23.x) are left
empty rather than failing: completion works with less on an old server.

Types come from system.data_type_families, aliases included (``BIGINT``, ``VARCHAR``); a type the engine
reads in any case is also listed in lower case, which is how callers tell such types apart.
"""

from __future__ import annotations

from collections import defaultdict

from exporter.engine.interface import Catalog, ClickHouseBackend, Column, Table
from exporter.errors import QueryError


def read_catalog(backend: ClickHouseBackend) -> Catalog:
    """The catalog, with each column's comment as the engine stores it.

    A view (``jobs``, ``jobs_cold``) holds no column comments on the servers we support, yet shows
    jobs_archive's columns: a view column without a comment takes that of jobs_archive's column of the
    same name and type, so the schema browser describes every tier alike.
    """
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
    warm = {(c.name, c.type): c.comment for c in columns.get("jobs_archive", ())}
    for view in (t["name"] for t in tables if t["engine"] == "View" and t["name"] in columns):
        columns[view] = [c if c.comment else Column(c.name, c.type, warm.get((c.name, c.type), ""))
                         for c in columns[view]]
    functions = backend.query_arrow("SELECT name, is_aggregate FROM system.functions").to_pylist()
    try:
        keywords = frozenset(backend.query_arrow("SELECT keyword FROM system.keywords").column(0).to_pylist())
    except QueryError:
        keywords = frozenset()
    try:
        families = backend.query_arrow("SELECT name, case_insensitive FROM system.data_type_families").to_pylist()
    except QueryError:
        families = []
    types = frozenset(f["name"] for f in families) | {f["name"].lower() for f in families if f["case_insensitive"]}
    return Catalog(
        tables=tuple(Table(t["name"], t["engine"], tuple(columns.get(t["name"], ())), t["comment"] or "")
                     for t in tables),
        functions=frozenset(f["name"] for f in functions),
        aggregate_functions=frozenset(f["name"] for f in functions if f["is_aggregate"]),
        keywords=keywords,
        types=types,
    )
