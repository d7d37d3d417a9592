"""A backend that asks the process owning an embedded warm store to run queries for us.

A chdb data directory belongs to one process; while ``archives export`` holds it, another process reaches
the same store through the owner's query socket (``exporter.engine.wire``; the owner's side is
``exporter.query.serve``). Everything above the backend (run_query, Execution, explain, find) works
unchanged through it: limits, the query id and the read statistics travel, cancel stops the owner's
engine, and results stream batch by batch as Arrow.

It is read-only: the owner refuses every statement its guard refuses, and this side refuses ``execute``
and ``insert_arrow`` outright. Each call uses a connection of its own, so calls from several threads (a
query and its cancel) need no lock.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from exporter.engine import wire
from exporter.engine.interface import Catalog, Limits, QueryStats
from exporter.engine.pool import Held
from exporter.errors import ArchivesError, QueryError
from exporter.query.guard import QueryRefused

CONNECT_TIMEOUT = 2.0  # a live owner accepts at once; a socket nobody listens on is refused at once
CANCEL_TIMEOUT = 30.0


class ForwardedBackend:
    """The owner's warm store, reached over its query socket; ``reach`` finds out whether one answers."""

    def __init__(self, path: Path, owner: str) -> None:
        self.path = path
        self.owner = owner
        self.description = f"the warm store of {owner}, through {path}"

    @classmethod
    def reach(cls, path: Path) -> ForwardedBackend | None:
        """The owner's backend when a process answers at ``path``; None when there is no socket or nobody
        listens on it (its owner died, e.g. by SIGKILL, and left the file behind)."""
        if not path.is_socket():
            return None
        try:
            with _connect(path, CONNECT_TIMEOUT) as conn, conn.makefile("rb") as incoming, \
                    conn.makefile("wb") as outgoing:
                wire.send(outgoing, {"v": wire.VERSION, "op": "ping"})
                answer = wire.receive(incoming)
        except (OSError, wire.WireError):
            return None
        backend = cls(path, str(answer.get("owner") or "another process"))
        if not answer.get("ok"):  # e.g. an owner speaking another protocol version: its sentence says so
            backend._raise(answer)
        return backend

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        raise QueryRefused(self._read_only())

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        raise QueryRefused(self._read_only())

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, *, limits: Limits | None = None,
                    query_id: str | None = None, stats: QueryStats | None = None) -> pa.Table:
        if settings:
            raise QueryRefused(f"per-query settings are not forwarded to {self.owner}: "
                               "put them in the SQL (SETTINGS ...) where the guard allows them")
        schema, batches, release = self._query(sql, True, limits, query_id, stats, 65536)
        try:
            return pa.Table.from_batches(list(batches), schema)
        finally:
            release()

    def query_batches(self, sql: str, *, limits: Limits | None = None, query_id: str | None = None,
                      stats: QueryStats | None = None, batch_rows: int = 65536) -> pa.RecordBatchReader:
        schema, batches, release = self._query(sql, False, limits, query_id, stats, batch_rows)
        return pa.RecordBatchReader.from_batches(schema, Held(batches, release))

    def cancel(self, query_id: str) -> bool:
        answer = self._ask({"op": "cancel", "query_id": query_id}, CANCEL_TIMEOUT)
        return bool(answer.get("cancelled"))

    def catalog(self) -> Catalog:
        return wire.catalog_from_wire(self._ask({"op": "catalog"}, None)["catalog"])

    def close(self) -> None:
        """Nothing is held between calls: the owner keeps the store."""

    def _query(self, sql: str, whole: bool, limits: Limits | None, query_id: str | None,
               stats: QueryStats | None, batch_rows: int):
        """The result's schema, its batches as they arrive, and how to hang up (which makes the owner
        abandon the query if it is still running)."""
        request = {"v": wire.VERSION, "op": "query", "sql": sql, "whole": whole,
                   "limits": wire.limits_to_wire(limits), "query_id": query_id, "batch_rows": batch_rows}
        conn = self._open()
        incoming, outgoing = conn.makefile("rb"), conn.makefile("wb")

        def release() -> None:
            for closable in (outgoing, incoming, conn):
                with contextlib.suppress(OSError):
                    closable.close()

        try:
            wire.send(outgoing, request)
            answer = wire.receive(incoming)
            if not answer.get("ok"):
                self._raise(answer)
            stream = pa.ipc.open_stream(incoming)
        except BaseException as exc:
            release()
            if isinstance(exc, OSError | wire.WireError | pa.ArrowException):
                raise self._lost(exc) from None
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from stream
                trailer = wire.receive(incoming)
            except (OSError, wire.WireError, pa.ArrowException) as exc:
                raise self._lost(exc) from None
            if not trailer.get("ok"):
                self._raise(trailer)
            if stats is not None:
                stats.add(int(trailer.get("rows_read") or 0), int(trailer.get("bytes_read") or 0))

        return stream.schema, batches(), release

    def _ask(self, request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """One request and its one answer frame (ping, cancel, catalog)."""
        try:
            with self._open() as conn, conn.makefile("rb") as incoming, conn.makefile("wb") as outgoing:
                conn.settimeout(timeout)
                wire.send(outgoing, {"v": wire.VERSION, **request})
                answer = wire.receive(incoming)
        except (OSError, wire.WireError) as exc:
            raise self._lost(exc) from None
        if not answer.get("ok"):
            self._raise(answer)
        return answer

    def _open(self) -> socket.socket:
        try:
            conn = _connect(self.path, CONNECT_TIMEOUT)
        except OSError as exc:
            raise self._lost(exc) from None
        conn.settimeout(None)  # a query may run as long as its limits let it
        return conn

    def _raise(self, answer: dict[str, Any]) -> None:
        """The owner's refusal or failure as the same kind of error it was there, in its own words."""
        text = str(answer.get("error") or f"{self.owner} refused the request")
        kind = answer.get("kind")
        raise QueryRefused(text) if kind == "refused" else QueryError(text) if kind == "query" else ArchivesError(text)

    def _lost(self, exc: BaseException) -> ArchivesError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return ArchivesError(f"{self.owner}, which owns the warm store, stopped answering at {self.path} "
                             f"({' '.join(reason.split())}); run the query again")

    def _read_only(self) -> str:
        return (f"the warm store is owned by {self.owner} and this forwarded connection is read-only: "
                "it runs queries, not writes")


def _connect(path: Path, timeout: float) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except BaseException:
        conn.close()
        raise
    return conn
