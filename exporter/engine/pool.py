"""Connections lent to one call at a time, made on demand and kept for the next call.

A chdb connection and a clickhouse-driver Client each run one statement at a time; lending each call
its own lets a user's long query and the exporter's inserts proceed side by side. A connection whose
call failed is closed, not lent again: chdb passes part of a failed query's output on to the next query
on the same connection (measured with chdb 4.4).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from exporter.errors import BackendUnavailable

Connection = TypeVar("Connection")


class Pool(Generic[Connection]):
    def __init__(self, connect: Callable[[], Connection], disconnect: Callable[[Connection], None],
                 what: str) -> None:
        self._connect, self._disconnect, self._what = connect, disconnect, what
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def lease(self) -> Iterator[Connection]:
        with self._lock:
            if self._closed:
                raise BackendUnavailable(f"{self._what} is closed")
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
            with self._lock:
                self._all.append(connection)
        try:
            yield connection
        except BaseException:
            self._discard(connection)  # chdb hands part of a failed query's output to the next one
            raise
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        self._discard(connection)

    def _discard(self, connection: Connection) -> None:
        with self._lock:
            if connection in self._all:
                self._all.remove(connection)
        with contextlib.suppress(Exception):
            self._disconnect(connection)

    def close(self) -> None:
        """Disconnect every connection, idle or lent (a lent one's call fails, as a closed store should)."""
        with self._lock:
            self._closed = True
            connections, self._all, self._idle = self._all, [], []
        for connection in connections:
            with contextlib.suppress(Exception):
                self._disconnect(connection)


class Held:
    """A result's batches read on a connection held for them. ``release`` runs exactly once: when the
    batches are drained, when the reader is closed, or when it is dropped unread; otherwise the pool
    would lend a connection whose query is still running."""

    def __init__(self, batches: Iterator[Any], release: Callable[[], None]) -> None:
        self._batches, self._release = batches, release

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._batches
        finally:
            self.release()

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    __del__ = release
