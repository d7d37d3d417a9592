"""The ClickHouse backend interface: the only place that knows which engine is in use.

Two implementations speak the same SQL: chdb (the engine in-process, our embedded default) and a
ClickHouse server over the native protocol (clickhouse-driver). Everything else talks to this
interface.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote, urlparse

import pyarrow as pa

from exporter.errors import ConfigError
from exporter.redact import redact


class ClickHouseBackend(Protocol):
    """Execute statements, insert Arrow tables, and read query results as Arrow."""

    description: str

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, INSERT ... SELECT)."""

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        """Insert ``data`` into ``table``, matching columns by name."""

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    def close(self) -> None:
        """Release the connection (and, for chdb, the data directory)."""


def open_backend(url: str, password: str | None = None) -> ClickHouseBackend:
    """Open the backend a ``clickhouse.url`` names: ``chdb:///dir`` or ``clickhouse://user@host:port/db``.

    Every error names the URL without its password (the URL may carry one).
    """
    parsed = urlparse(url)
    shown = redact(url)
    if parsed.scheme == "chdb":
        from exporter.storage.chdb_backend import ChdbBackend

        path = unquote(parsed.path or "")
        if parsed.netloc:
            raise ConfigError(f"clickhouse.url {shown!r} has a host part; a local directory is written chdb:///abs/dir")
        if not path.startswith("/"):
            raise ConfigError(f"clickhouse.url {shown!r} needs an absolute data directory, e.g. chdb:///var/lib/archives")
        return ChdbBackend(path)
    if parsed.scheme in {"clickhouse", "clickhouses"}:
        from exporter.storage.native import NativeBackend

        try:
            return NativeBackend.from_url(url, password=password)
        except ConfigError as exc:
            raise ConfigError(redact(str(exc))) from None
    raise ConfigError(f"clickhouse.url {shown!r}: expected chdb:///dir or clickhouse://user@host:9000/db")


def sql_string(value: str) -> str:
    """Quote a value as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def settings_clause(settings: dict[str, object] | None) -> str:
    """Render a SETTINGS clause for engines that take settings only in SQL."""
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if isinstance(value, str):
            rendered = sql_string(value)
        else:
            rendered = str(int(value) if isinstance(value, bool) else value)
        parts.append(f"{key} = {rendered}")
    return " SETTINGS " + ", ".join(parts)
