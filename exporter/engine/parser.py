"""The engine the guard parses with: chdb, whatever backend stores the archive.

chdb carries the current ClickHouse parser, and every deployment depends on it; a server may be older
(Debian's 18.16 has no EXPLAIN at all). A process can hold one chdb data path only, so an embedded
store's own backend parses; otherwise an in-memory engine, which its holder closes (until then no
store can be opened in the process).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from exporter.engine.chdb import ChdbBackend


class MemoryEngine:
    """chdb with no data directory: enough to parse and format statements and list functions."""

    description = "chdb (in memory, for parsing)"

    def __init__(self) -> None:
        import chdb

        self._conn = chdb.connect(":memory:")
        self._lock = threading.Lock()  # one connection, asked from several threads

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, **_: object) -> pa.Table:
        from exporter.engine.chdb import ChdbBackend, _arrow

        with self._lock:  # errors and results read as the embedded backend reads them
            return _arrow(ChdbBackend._call(self._conn.query, sql, "Arrow"))


def parser_for(backend: object) -> ChdbBackend | MemoryEngine:
    """What parses for ``backend``: itself when it is chdb, else a new in-memory engine (close it)."""
    from exporter.engine.chdb import ChdbBackend

    return backend if isinstance(backend, ChdbBackend | MemoryEngine) else MemoryEngine()
