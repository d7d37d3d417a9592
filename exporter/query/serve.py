"""The owner of the archive's store answers the consoles over its socket with its query layer.

A chdb data directory belongs to one process, so while ``archives export`` (or the dashboard's exporter
child) holds it, ``archives query`` in another terminal asks that process instead (the protocol is in
``exporter.engine.wire``). What must stay true:

- the owner runs the query layer: every SQL text is judged by the guard here, routed here and run
  with the owner's limits (a request may only lower them): the socket is a way in for any local
  program of the same user, not only for our consoles;
- a request is bounded before it is read (``wire.MAX_REQUEST``, and ``query.max_statement_bytes``
  before any parsing), and at most ``MAX_CONNECTIONS`` consoles are answered at once;
- only the store's owner user may connect: the socket is 0600 from the moment it has its name (it is
  made in a private staging directory and renamed into place, so the process umask, which chdb's own
  files depend on, is never touched), and on Linux the peer's uid is checked too;
- a client that hangs up or cancels makes the engine stop working on its query;
- one thread per connection; the backend gives each call a connection of its own, so forwarded queries
  and the exporter's inserts proceed side by side.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from exporter.engine import wire
from exporter.engine.interface import QueryStats
from exporter.errors import ArchivesError, BackendUnavailable, QueryError, QueryRefused
from exporter.query.layer import LocalQueries

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds a new connection has to send its request
MAX_CONNECTIONS = 32  # consoles answered at once; one more is told so and let go
MAX_SOCKET_PATH = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL (Linux)


class QueryServer:
    """Answers the consoles on ``path`` with ``queries`` until ``close``."""

    def __init__(self, queries: LocalQueries, path: Path) -> None:
        self.queries = queries
        self.path = path
        self.owner = f"pid {os.getpid()} ({' '.join(os.path.basename(a) for a in sys.argv[:2])})"
        self._listener = _listen(path)
        self._inode = os.stat(path).st_ino
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="archives-query-server", daemon=True)
        self._acceptor.start()
        log.info("answering other processes' queries at %s", path)

    def close(self) -> None:
        """Stop accepting, end the connections in progress and remove the socket (if it is still ours)."""
        if self._closing.is_set():
            return
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        self._acceptor.join(2)
        self._listener.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # their queries fail and their threads end; the store closes next
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closing.is_set():
                    return
                log.warning("the query socket %s failed to accept a connection", self.path, exc_info=True)
                self._closing.wait(0.1)
                continue
            with self._lock:
                full = len(self._connections) >= MAX_CONNECTIONS
                if not full:
                    self._connections.add(conn)
            if full:
                threading.Thread(target=self._turn_away, args=(conn,), daemon=True).start()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="archives-forwarded-query", daemon=True).start()

    @staticmethod
    def _turn_away(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError), conn.makefile("wb") as outgoing:
            conn.settimeout(REQUEST_TIMEOUT)
            wire.send(outgoing, _failure(ArchivesError(
                f"the exporter is answering {MAX_CONNECTIONS} consoles already; try again in a moment")))

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as incoming, conn.makefile("wb") as outgoing:
                if not _same_user(conn):
                    wire.send(outgoing, _failure(ArchivesError("only the store's owner user may query it")))
                    return
                conn.settimeout(REQUEST_TIMEOUT)
                request = wire.receive(incoming, wire.MAX_REQUEST)
                conn.settimeout(None)
                self._answer(conn, request, outgoing)
        except (wire.WireError, OSError, ValueError):
            pass  # the client hung up or spoke another protocol: nobody is left to tell
        finally:
            with self._lock:
                self._connections.discard(conn)

    def _answer(self, conn: socket.socket, request: dict[str, Any], out: BinaryIO) -> None:
        op = request.get("op")
        if request.get("v") != wire.VERSION:
            wire.send(out, _failure(ArchivesError(
                f"this archives version speaks console protocol {wire.VERSION}, not {request.get('v')!r}: "
                "run the same version as the exporter")))
        elif op == "ping":
            wire.send(out, {"ok": True, "owner": self.owner, "description": self.queries.description})
        elif op == "run":
            self._run(conn, request, out)
        elif op in ("catalog", "cancel", "explain", "pretty"):
            try:
                wire.send(out, {"ok": True, **self._reply(op, request)})
            except Exception as exc:  # a refusal or the engine's failure is the client's to report
                wire.send(out, _failure(exc))
        else:
            wire.send(out, _failure(ArchivesError(f"unknown request {op!r}")))

    def _reply(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "catalog":
            return {"catalog": wire.catalog_to_wire(self.queries.catalog())}
        if op == "cancel":
            return {"cancelled": self.queries.cancel(_query_id(request.get("query_id")))}
        sql = _sql(request)
        return {"text": self.queries.explain(sql) if op == "explain" else self.queries.pretty(sql)}

    def _run(self, conn: socket.socket, request: dict[str, Any], out: BinaryIO) -> None:
        """Run this user statement: judged, routed and limited here; its batches sent as they come."""
        try:
            sql = _sql(request)
            limits = wire.limits_from_wire(request.get("limits"))
            query_id = _query_id(request.get("query_id") or uuid.uuid4().hex)  # so a hang-up can stop it
            batch_rows = request.get("batch_rows", 65536)
            if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or not 0 < batch_rows <= 1 << 20:
                raise wire.WireError("batch_rows must be a whole number from 1 to 1,048,576")
        except (QueryError, wire.WireError) as exc:
            wire.send(out, _failure(exc))
            return
        stats = QueryStats()
        with _Hangup(conn, lambda: self.queries.cancel(query_id)) as hangup:
            try:
                opened = self.queries.run(sql, limits, query_id, stats, batch_rows)
            except Exception as exc:
                wire.send(out, _failure(exc))
                return
            result, tiers, ran = _Result(opened.reader), list(opened.tiers), opened.sql
            del opened
            wire.send(out, {"ok": True, "tiers": tiers, "sql": ran}, flush=False)  # goes with the first batch
            failure = result.send(out)
            hangup.finished()
            wire.send(out, failure or {"ok": True, "rows_read": stats.rows_read, "bytes_read": stats.bytes_read})


def _sql(request: dict[str, Any]) -> str:
    sql = request.get("sql")
    if not isinstance(sql, str):
        raise wire.WireError("the request needs its SQL text")
    return sql


class _Result:
    """A query's batches on their way to the client. Whatever happens, the reader is let go at the end:
    a backend's reader stops the engine when its last reference goes (``pool.Held``), and pyarrow's
    ``close()`` alone does not drop the iterator behind it."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader: pa.RecordBatchReader | None = reader

    def send(self, out: BinaryIO) -> dict[str, Any] | None:
        """Write the Arrow IPC stream, each batch as soon as the engine hands it over; the failure frame
        if the query failed mid-way. A client gone mid-stream raises OSError: the query is abandoned."""
        assert self._reader is not None
        failure = None
        try:
            writer = pa.ipc.new_stream(out, self._reader.schema)
            while True:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as exc:  # the engine failed or was cancelled mid-way
                    failure = _failure(exc)
                    break
                writer.write_batch(batch)
                out.flush()
            writer.close()
        finally:
            self._let_go()
        return failure

    def _let_go(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


class _Hangup:
    """Watches a connection while its query runs. The client sends nothing after its request, so the
    connection turning readable means it hung up (or broke the protocol): the engine is told to stop."""

    def __init__(self, conn: socket.socket, cancel: Callable[[], object]) -> None:
        self._conn, self._cancel = conn, cancel
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="archives-hangup-watch", daemon=True)

    def __enter__(self) -> _Hangup:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finished()
        self._thread.join()  # before the connection closes: the watcher must not poll a closed socket

    def finished(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        poller = select.poll()  # not select(): a store's process may hold more than 1,024 descriptors
        try:
            poller.register(self._conn, select.POLLIN | select.POLLHUP | select.POLLERR)
        except (OSError, ValueError):
            return
        while not self._done.is_set():
            try:
                events = poller.poll(200)
            except OSError:
                return
            if events and not self._done.is_set():
                with contextlib.suppress(Exception):
                    self._cancel()
                return


def _query_id(value: object) -> str:
    if not isinstance(value, str) or not wire.QUERY_ID.fullmatch(value):
        raise wire.WireError("a query id is 1 to 128 letters, digits or _ . : -")
    return value


def _failure(exc: BaseException) -> dict[str, Any]:
    """The answer frame for a refusal or failure: its one sentence and which kind of error it was."""
    if isinstance(exc, QueryRefused | wire.WireError):
        kind = "refused"
    elif isinstance(exc, QueryError):
        kind = "query"
    elif isinstance(exc, BackendUnavailable):
        kind = "unavailable"
    else:
        kind = "error"
        if not isinstance(exc, ArchivesError):
            log.warning("a forwarded request failed: %s: %s", type(exc).__name__, exc)
    text = " ".join(str(exc).split())
    return {"ok": False, "kind": kind, "error": text or type(exc).__name__}


def _same_user(conn: socket.socket) -> bool:
    """On Linux, the peer's uid; elsewhere the socket's 0600 mode is the whole check."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid == os.getuid()


def _listen(path: Path) -> socket.socket:
    """A listening socket at ``path``, 0600 before it has that name; a dead owner's socket is replaced."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH - 8:  # the staging name is a few bytes longer
        raise ArchivesError(f"the data directory path is too long for a unix socket: {path}")
    staging = Path(tempfile.mkdtemp(prefix=".q", dir=path.parent))  # 0700: nobody else can reach inside
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = staging / "s"
        listener.bind(str(staged))
        os.chmod(staged, 0o600)
        os.replace(staged, path)  # atomic: a client sees the old (dead) socket or the new one
        listener.listen(64)
        listener.settimeout(1.0)  # accept() also wakes up to see close() where shutdown() does not
    except BaseException:
        listener.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            (staging / "s").unlink()
        with contextlib.suppress(OSError):
            staging.rmdir()
    return listener
