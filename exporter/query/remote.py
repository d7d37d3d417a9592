"""A console's query layer when another process owns the store: every call is one request on the
owner's socket (``exporter.engine.wire``; the owner's side is ``exporter.query.serve``).

The owner judges, routes and limits; this side sends the user's text, may ask for less (a row cap, a
shorter time), and reads the result as Arrow batches as they come. Dropping a result's reader hangs
up, and the owner's engine stops. Each call uses a connection of its own, so calls from several
threads (a query and its cancel) need no lock.
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
from exporter.errors import ArchivesError, QueryError, QueryRefused
from exporter.query.layer import BATCH_ROWS, Opened

CONNECT_TIMEOUT = 2.0  # a live owner accepts at once; a socket nobody listens on is refused at once
CANCEL_TIMEOUT = 30.0


class RemoteQueries:
    """The owner's query layer, reached over its socket; ``reach`` finds out whether one answers."""

    def __init__(self, path: Path, owner: str) -> None:
        self.path = path
        self.owner = owner
        self.description = f"the warm store of {owner}, through {path}"

    @classmethod
    def reach(cls, path: Path) -> RemoteQueries | None:
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

    def run(self, sql: str, limits: Limits | None = None, query_id: str | None = None,
            stats: QueryStats | None = None, batch_rows: int = BATCH_ROWS) -> Opened:
        request = {"op": "run", "sql": sql, "limits": wire.limits_to_wire(limits), "query_id": query_id,
                   "batch_rows": batch_rows}
        schema, batches, release, answer = self._stream(request, stats)
        reader = pa.RecordBatchReader.from_batches(schema, Held(batches, release))
        return Opened(reader, tuple(answer.get("tiers") or ()), str(answer.get("sql") or sql))

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, **_: object) -> pa.Table:
        """A whole result, for readers written against a backend (status figures): the statement is the
        owner's to judge like any other."""
        if settings:
            raise QueryRefused("per-query settings are not sent to the owner: put them in the SQL")
        return self.run(sql).reader.read_all()

    def explain(self, sql: str) -> str:
        return str(self._ask({"op": "explain", "sql": sql}, None)["text"])

    def pretty(self, sql: str) -> str:
        return str(self._ask({"op": "pretty", "sql": sql}, None)["text"])

    def cancel(self, query_id: str) -> bool:
        answer = self._ask({"op": "cancel", "query_id": query_id}, CANCEL_TIMEOUT)
        return bool(answer.get("cancelled"))

    def catalog(self) -> Catalog:
        return wire.catalog_from_wire(self._ask({"op": "catalog"}, None)["catalog"])

    def close(self) -> None:
        """Nothing is held between calls: the owner keeps the store."""

    def _stream(self, request: dict[str, Any], stats: QueryStats | None):
        """A result's schema, its batches as they arrive, how to hang up (which makes the owner abandon
        the query if it is still running), and the owner's answer frame (tiers, the SQL it runs)."""
        conn = self._open()
        incoming, outgoing = conn.makefile("rb"), conn.makefile("wb")

        def release() -> None:
            for closable in (outgoing, incoming, conn):
                with contextlib.suppress(OSError):
                    closable.close()

        try:
            wire.send(outgoing, {"v": wire.VERSION, **request})
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

        return stream.schema, batches(), release, answer

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


def _connect(path: Path, timeout: float) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except BaseException:
        conn.close()
        raise
    return conn
