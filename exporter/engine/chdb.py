"""The embedded backend: the ClickHouse engine in-process through chdb, with a persistent directory.

A chdb data directory belongs to one process at a time, so the backend holds an exclusive lock file
next to it naming the owner; a second process gets a clear StoreBusyError instead of chdb's
"Error initializing EmbeddedServer". The kernel drops the lock when the owner dies, even by SIGKILL.

The directory holds personal data and is owner-only (0700), as is the lock file (0600). chdb creates
its files with the process umask, which a library must not change, so the directory's mode is what
protects them; they are also tightened on open (stores of earlier versions) and on close.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from exporter.embedded import private_dir, tighten, tighten_tree
from exporter.engine.catalog import read_catalog
from exporter.engine.interface import Catalog, Limits, QueryStats
from exporter.engine.pool import Held, Pool
from exporter.engine.sql import assignments, settings_clause, sql_string
from exporter.errors import QueryError, StoreBusyError


class ChdbBackend:
    """chdb over a data directory; each call runs on a connection of its own (see ``Pool``).

    Limits and the cancel tag are session settings of the lent connection (SET, then back to DEFAULT),
    so the user's SQL text is never edited: appending a SETTINGS clause would break one that has its own.
    """

    def __init__(self, path: str) -> None:
        import chdb

        self.path = Path(path)
        self.description = f"chdb (embedded) at {self.path}"
        private_dir(self.path)
        self._lock_file = _acquire_owner_lock(self.path)
        tighten_tree(self.path)
        self._pool: Pool = Pool(lambda: chdb.connect(str(self.path)), lambda conn: conn.close(),
                                f"the warm store at {self.path}")
        try:
            with self._pool.lease():
                pass  # the first connection opens the store: fail here, not on first use
        except Exception as exc:
            self._pool.close()
            self._lock_file.close()
            raise StoreBusyError(f"cannot open the warm store at {self.path}: {exc}") from None

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        self._run(sql + settings_clause(settings), "CSV")

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        # chdb's Python() table function finds the Arrow table by its variable name in this frame.
        archives_batch = data  # noqa: F841
        self._run(
            f"INSERT INTO {table} ({columns}){settings_clause(settings)} "
            f"SELECT {columns} FROM Python(archives_batch)",
            "CSV",
        )

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, *, limits: Limits | None = None,
                    query_id: str | None = None, stats: QueryStats | None = None) -> pa.Table:
        with self._session(limits, query_id) as conn:
            result = self._call(conn.query, sql + settings_clause(settings), "Arrow")
        if stats is not None:
            stats.add(result.storage_rows_read(), result.storage_bytes_read())
        table = _arrow(result)
        return limits.cut(table) if limits else table

    def query_batches(self, sql: str, *, limits: Limits | None = None, query_id: str | None = None,
                      stats: QueryStats | None = None, batch_rows: int = 65536) -> pa.RecordBatchReader:
        query_id = query_id or uuid.uuid4().hex  # to stop the engine if the reader is left part-read
        session = self._session(limits, query_id)
        conn = session.__enter__()
        try:
            chunks = iter(self._call(conn.send_query, sql, "Arrow"))
            first = self._call(next, chunks, None)
        except QueryError as exc:
            session.__exit__(None, None, None)
            if not str(exc).startswith(_NOT_STREAMED):
                raise
            # chdb streams SELECTs only; SHOW, EXPLAIN, DESCRIBE and EXISTS answer a few rows at once
            whole = self.query_arrow(sql, limits=limits, query_id=query_id, stats=stats)
            return pa.RecordBatchReader.from_batches(whole.schema, whole.to_batches(max_chunksize=batch_rows))
        except BaseException:
            session.__exit__(None, None, None)
            raise
        if first is None:  # chdb sends no chunk for an empty result: its columns come from a second run
            session.__exit__(None, None, None)
            return pa.RecordBatchReader.from_batches(self.query_arrow(sql, limits=limits).schema, iter(()))
        table = _arrow(first)
        drained = False

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal drained
            chunk, current = first, table
            while True:
                if stats is not None:
                    stats.add(chunk.storage_rows_read(), chunk.storage_bytes_read())
                yield from current.to_batches(max_chunksize=batch_rows)
                chunk = self._call(next, chunks, None)
                if chunk is None:
                    drained = True
                    return
                current = _arrow(chunk)

        def release() -> None:
            if not drained:
                with contextlib.suppress(Exception):  # not SYNC: the query waits for us to read on
                    self._run(f"KILL QUERY WHERE Settings['log_comment'] = {sql_string(_tag(query_id))} ASYNC",
                              "CSV")
                with contextlib.suppress(Exception):
                    chunks.close()
            session.__exit__(None, None, None)

        reader = pa.RecordBatchReader.from_batches(table.schema, Held(batches(), release))
        return limits.cut_stream(reader) if limits else reader

    def cancel(self, query_id: str) -> bool:
        with self._session(None, None) as conn:
            killed = _arrow(self._call(conn.query, "KILL QUERY WHERE Settings['log_comment'] = "
                                       f"{sql_string(_tag(query_id))} SYNC", "Arrow"))
        return killed.num_rows > 0

    def catalog(self) -> Catalog:
        return read_catalog(self)

    def _run(self, sql: str, fmt: str) -> None:
        with self._session(None, None) as conn:
            self._call(conn.query, sql, fmt)

    @contextlib.contextmanager
    def _session(self, limits: Limits | None, query_id: str | None) -> Iterator:
        """A lent connection with the limits and the cancel tag set for this call, and reset after it."""
        session = dict(limits.settings()) if limits else {}
        if query_id:
            session["log_comment"] = _tag(query_id)
        with self._pool.lease() as conn:
            if session:
                self._call(conn.query, "SET " + assignments(session), "CSV")
            try:
                yield conn
            finally:
                if session:
                    with contextlib.suppress(QueryError):
                        self._call(conn.query, "SET " + ", ".join(f"{key} = DEFAULT" for key in session), "CSV")

    @staticmethod
    def _call(method, *args):
        try:
            return method(*args)
        except RuntimeError as exc:  # chdb raises ChdbError, a RuntimeError
            raise QueryError(_first_line(str(exc))) from None

    def close(self) -> None:
        self._pool.close()
        tighten_tree(self.path)  # what chdb wrote during this session, before the lock is let go
        self._lock_file.close()


_NOT_STREAMED = "Streaming query is not supported"  # chdb's sentence for a statement it runs only whole


def _arrow(result) -> pa.Table:
    """A chdb Arrow result as a table, with its columns even when empty (chdb's own conversion drops them)."""
    data = result.bytes()
    return pa.ipc.open_file(pa.BufferReader(data)).read_all() if data else pa.table({})


def _tag(query_id: str) -> str:
    return f"archives:{query_id}"


def _first_line(message: str) -> str:
    """The engine's sentence without its code, exception class and the log that follows."""
    first = message.strip().splitlines()[0] if message.strip() else "query failed"
    first = re.sub(r"^(Streaming query failed: )?(Code: \d+\. )?(DB::\w*Exception: )?", "", first)
    return first.strip().removesuffix(" Log:")


def lock_path(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".owner")


def _acquire_owner_lock(data_dir: Path):
    path = lock_path(data_dir)
    handle = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")  # noqa: SIM115 - held for life
    tighten(path)  # earlier versions created it 0644
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise StoreBusyError(
            f"the embedded warm store {data_dir} is in use by {owner}; query it there (the TUI), "
            "stop that process, or configure a ClickHouse server (clickhouse.url)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} ({' '.join(os.path.basename(a) for a in sys.argv[:2])})")
    handle.flush()
    return handle


def read_owner(data_dir: Path) -> str | None:
    """Who holds the store, or None when it is free (used by status in other processes)."""
    path = lock_path(data_dir)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
