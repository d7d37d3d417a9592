"""Running SQL against the warm tier and returning Arrow, with Enum columns as their names.

ClickHouse hands Enum columns to Arrow as their integer codes; a user asking for ``outcome`` wants
``failed``, not ``2``. The result's column types come from ``DESCRIBE (query)`` and Enum columns are
rewritten with ``toString``.
"""

from __future__ import annotations

import pyarrow as pa

from exporter.engine.interface import ClickHouseBackend
from exporter.errors import QueryError


def run_query(backend: ClickHouseBackend, sql: str) -> pa.Table:
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise QueryError("the query is empty")
    try:
        described = backend.query_arrow(f"DESCRIBE TABLE ({statement})")
    except QueryError:
        return backend.query_arrow(statement)  # not a SELECT (SHOW, EXPLAIN, ...) or a genuine error
    enums = [
        name for name, kind in zip(described.column("name").to_pylist(), described.column("type").to_pylist(),
                                   strict=True)
        if "Enum8(" in kind or "Enum16(" in kind
    ]
    if not enums:
        return backend.query_arrow(statement)
    replaced = ", ".join(f"toString(`{name}`) AS `{name}`" for name in enums)
    return backend.query_arrow(f"SELECT * REPLACE ({replaced}) FROM ({statement})")
