"""Running a user's SQL and returning Arrow, with Enum columns as their names.

The guard judges the statement before anything reaches the engine. ClickHouse hands Enum columns to
Arrow as their integer codes; a user asking for ``outcome`` wants ``failed``, not ``2``: a SELECT's
column types come from ``DESCRIBE (query)`` and Enum columns are rewritten with ``toString``.
"""

from __future__ import annotations

import pyarrow as pa

from exporter.engine.interface import ClickHouseBackend, Limits
from exporter.query.guard import check


def run_query(backend: ClickHouseBackend, sql: str, limits: Limits | None = None,
              query_id: str | None = None) -> pa.Table:
    """Run one read-only statement; any other is refused (QueryRefused) before anything runs."""
    statement = check(sql)
    text = statement.sql
    if statement.kind in ("SELECT", "WITH"):
        described = backend.query_arrow(f"DESCRIBE TABLE ({text})")
        enums = [name for name, kind in zip(described.column("name").to_pylist(),
                                            described.column("type").to_pylist(), strict=True)
                 if "Enum8(" in kind or "Enum16(" in kind]
        if enums:
            replaced = ", ".join(f"toString(`{name}`) AS `{name}`" for name in enums)
            text = f"SELECT * REPLACE ({replaced}) FROM ({text})"
    return backend.query_arrow(text, limits=limits, query_id=query_id)
