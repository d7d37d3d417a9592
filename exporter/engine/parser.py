"""The engine the guard parses with: chdb, whatever backend stores the archive.

chdb carries the current ClickHouse parser, and every deployment depends on it; a server may be older
(Debian's 18.16 has no EXPLAIN at all). A process can hold one chdb data path only, so an embedded
store's own backend parses; otherwise an in-memory engine is opened here, once, on first use.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from exporter.errors import QueryError


class MemoryEngine:
    """chdb with no data directory: enough to parse and format statements and list functions."""

    description = "chdb (in memory, for parsing)"

    def __init__(self) -> None:
        import chdb

        self._conn = chdb.connect(":memory:")
        self._lock = threading.Lock()  # one connection, asked from several threads

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, **_: object) -> pa.Table:
        with self._lock:
            try:
                data = self._conn.query(sql, "Arrow").bytes()
            except RuntimeError as exc:  # chdb's errors
                raise QueryError(str(exc).strip().splitlines()[0] if str(exc).strip() else "query failed") from None
        return pa.ipc.open_file(pa.BufferReader(data)).read_all() if data else pa.table({})


_shared: MemoryEngine | None = None
_shared_lock = threading.Lock()


def parser_for(backend: object):
    """What parses for ``backend``: itself when it is chdb, else the process's in-memory engine."""
    from exporter.engine.chdb import ChdbBackend

    if isinstance(backend, ChdbBackend | MemoryEngine):
        return backend
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MemoryEngine()
        return _shared
