"""The server backend: a ClickHouse server over the native protocol through clickhouse-driver.

The driver speaks rows of Python objects, so Arrow tables are converted column by column on the way
in and rebuilt from the result's column types on the way out. Errors are split in two: what the server
says about a statement (QueryError, one sentence) and not reaching it at all (BackendUnavailable,
which the sinks retry); after the latter the client is disconnected so the next call reconnects.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse
from zoneinfo import ZoneInfo

import pyarrow as pa
from clickhouse_driver import Client, errors

from exporter.engine.catalog import read_catalog
from exporter.engine.interface import Catalog, Limits, QueryStats
from exporter.engine.pool import Held, Pool
from exporter.engine.sql import sql_string
from exporter.errors import BackendUnavailable, ConfigError, QueryError
from exporter.redact import redact
from exporter.urls import credentials
from exporter.values import Converter, apply, python_values

# The driver logs each failed connect with a traceback; without this an unconfigured app prints it.
logging.getLogger("clickhouse_driver").addHandler(logging.NullHandler())

# Unexpected packets mean a desynced stream or not a native-protocol port: reconnecting is the remedy.
_TRANSIENT = (
    errors.NetworkError, errors.SocketTimeoutError, errors.UnexpectedPacketFromServerError, EOFError, OSError,
)
_TYPES_CHECK_HINT = " Repeat query with types_check=True for detailed info."
_TRUE = {"1", "true", "yes", "on"}
_URL_OPTIONS = {"secure", "verify", "ca_certs", "connect_timeout", "send_receive_timeout"}
_SIMPLE_TYPES: dict[str, pa.DataType] = {
    **{f"Int{bits}": getattr(pa, f"int{bits}")() for bits in (8, 16, 32, 64)},
    **{f"UInt{bits}": getattr(pa, f"uint{bits}")() for bits in (8, 16, 32, 64)},
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "String": pa.string(),
    "Bool": pa.bool_(),
    "Date": pa.date32(),
    "Date32": pa.date32(),
}
_UTC_NAMES = {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Zulu", "GMT", "Etc/GMT"}



class NativeBackend:
    """clickhouse-driver Clients, one per concurrent call (a Client is not thread-safe; see ``Pool``)."""

    def __init__(self, host: str, port: int, database: str = "default", user: str = "default",
                 password: str = "", secure: bool = False, **options: Any) -> None:
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.database, self.user, self.secure = database, user, secure
        self._password = password
        self.description = f"ClickHouse server {self.where}/{database}" + (" (TLS)" if secure else "")
        # A Client connects lazily on first use, and again after disconnect().
        self._pool: Pool[Client] = Pool(
            lambda: Client(host=host, port=port, database=database, user=user, password=password, secure=secure,
                           client_name="archives", **options),
            lambda client: client.disconnect(),
            f"the connection to ClickHouse server {self.where}",
        )

    @classmethod
    def from_url(cls, url: str, password: str | None = None, user: str | None = None) -> NativeBackend:
        """Parse ``clickhouse[s]://user:pass@host:port/db?secure=true&verify=false&ca_certs=...``.

        A password in the URL wins over ``password`` (which usually comes from the environment); a
        ``user`` given apart replaces the URL's user and its password (the query console's read-only user).
        """
        try:  # a config's URL was checked as it was read; one from code is checked here, just as strictly
            found = credentials(url)
        except ValueError as exc:
            raise ConfigError(f"clickhouse.url: {exc}") from None
        parsed = urlparse(found.address)  # the client never holds the URL's user info
        shown = redact(url)
        if parsed.scheme not in {"clickhouse", "clickhouses"} or not parsed.hostname:
            raise ConfigError(f"clickhouse.url {shown!r}: expected clickhouse://user@host:9000/db")
        query = dict(parse_qsl(parsed.query))
        unknown = sorted(set(query) - _URL_OPTIONS)
        if unknown:
            raise ConfigError(f"clickhouse.url {shown!r}: unknown option {unknown[0]!r}")
        secure = parsed.scheme == "clickhouses" or query.get("secure", "").lower() in _TRUE
        options: dict[str, Any] = {}
        if "verify" in query:
            options["verify"] = query["verify"].lower() in _TRUE
        if "ca_certs" in query:
            options["ca_certs"] = query["ca_certs"]
        try:
            for key in ("connect_timeout", "send_receive_timeout"):
                if key in query:
                    options[key] = float(query[key])
            port = parsed.port or (9440 if secure else 9000)
        except ValueError:
            raise ConfigError(f"clickhouse.url {shown!r}: invalid port or timeout") from None
        return cls(
            host=parsed.hostname,
            port=port,
            database=unquote(parsed.path.strip("/")) or "default",
            user=user or found.user or "default",
            password=(password or "") if user or found.password is None else found.password,
            secure=secure,
            **options,
        )

    def remote_arguments(self) -> tuple[str, str, str, str, str]:
        """How another engine reaches this server: the table function (remote or remoteSecure), the
        address, database, user and password, in that order."""
        return "remoteSecure" if self.secure else "remote", self.where, self.database, self.user, self._password

    def execute(self, sql: str, settings: dict[str, object] | None = None) -> None:
        self._run(lambda client: client.execute(sql, settings=settings))

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, object] | None = None) -> None:
        if data.num_rows == 0:
            return
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        values = [_to_driver(column) for column in data.columns]
        statement = f"INSERT INTO {table} ({columns}) VALUES"
        self._run(lambda client: client.execute(statement, values, columnar=True, settings=settings))

    def query_arrow(self, sql: str, settings: dict[str, object] | None = None, *, limits: Limits | None = None,
                    query_id: str | None = None, stats: QueryStats | None = None) -> pa.Table:
        sent = {**(limits.settings() if limits else {}), **(settings or {})}

        def query(client: Client) -> pa.Table:
            data, column_types = client.execute(sql, with_column_types=True, columnar=True, settings=sent or None,
                                                query_id=query_id or "")
            if stats is not None:
                stats.add(client.last_query.progress.rows, client.last_query.progress.bytes)
            return _table(column_types, data, _server_zone(client))

        result = self._run(query)
        return limits.cut(result) if limits else result

    def query_batches(self, sql: str, *, limits: Limits | None = None, query_id: str | None = None,
                      stats: QueryStats | None = None, batch_rows: int = 65536) -> pa.RecordBatchReader:
        sent = {**(limits.settings() if limits else {}), "max_block_size": batch_rows}
        lease = self._pool.lease()
        client = lease.__enter__()

        def call(step: Callable[[], Any]) -> Any:
            try:
                return self._guarded(client, step)
            except BaseException:
                lease.__exit__(None, None, None)
                raise

        rows = call(lambda: client.execute_iter(sql, with_column_types=True, settings=sent, query_id=query_id or ""))
        column_types = call(lambda: next(rows))
        zone = _server_zone(client)
        schema = _table(column_types, [], zone).schema

        drained = False

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal drained
            while not drained:
                chunk = self._guarded(client, lambda: _take(rows, batch_rows))
                if chunk:
                    yield from _table(column_types, list(zip(*chunk, strict=True)), zone).to_batches()
                drained = len(chunk) < batch_rows
            if stats is not None:
                stats.add(client.last_query.progress.rows, client.last_query.progress.bytes)

        def release() -> None:
            if not drained:
                client.disconnect()  # a stream left part-read: the server stops it, the next call reconnects
            lease.__exit__(None, None, None)

        reader = pa.RecordBatchReader.from_batches(schema, Held(batches(), release))
        return limits.cut_stream(reader) if limits else reader

    def cancel(self, query_id: str) -> bool:
        killed = self.query_arrow(f"KILL QUERY WHERE query_id = {sql_string(query_id)} SYNC")
        return killed.num_rows > 0

    def catalog(self) -> Catalog:
        return read_catalog(self)

    def close(self) -> None:
        self._pool.close()

    def _run(self, call: Callable[[Client], Any]) -> Any:
        with self._pool.lease() as client:
            return self._guarded(client, lambda: call(client))

    def _guarded(self, client: Client, step: Callable[[], Any]) -> Any:
        """``step`` with the driver's errors as ours: what the server said, or that it cannot be reached."""
        try:
            return step()
        except errors.ServerException as exc:
            raise QueryError(server_message(exc.message, exc.code)) from None
        except _TRANSIENT as exc:
            client.disconnect()
            reason = _reason(exc)
            raise BackendUnavailable(f"ClickHouse server {self.where} is unavailable: {reason}") from None
        except errors.Error as exc:  # raised by the driver itself, e.g. an unknown Enum value
            text = (exc.message or type(exc).__name__).replace(_TYPES_CHECK_HINT, "")
            raise QueryError(_one_line(text)) from None


def _server_zone(client: Client) -> str:
    """The zone naive DateTime values are in, read on the connection that ran the query."""
    return client.connection.server_info.get_timezone() or "UTC"


def _take(rows: Iterator[tuple], count: int) -> list[tuple]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == count:
            break
    return chunk


def _table(column_types: list[tuple[str, str]], data: list[Any], server_tz: str) -> pa.Table:
    """The driver's columns (lists of Python values) as Arrow, typed from their ClickHouse types."""
    arrays, names = [], []
    for index, (name, ch_type) in enumerate(column_types):
        arrow_type, convert = _arrow_type(ch_type, server_tz)
        values = data[index] if data else []
        if convert is not None:
            values = [None if value is None else convert(value) for value in values]
        arrays.append(pa.array(values, type=arrow_type))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def server_message(message: str, code: int | None = None) -> str:
    """The first sentence of a server exception, without "DB::Exception:" and the stack trace."""
    text = message.split("Stack trace:", 1)[0].replace("DB::Exception: ", "")
    text = re.sub(r"^Received from \S+\. ", "", _one_line(text))
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(". ")
    return first + "." if first else f"ClickHouse server error {code}."


def _reason(exc: BaseException) -> str:
    """The driver's text without its "Code: 210." prefix and the "(host:port)" we already name."""
    text = _one_line(str(exc)).removeprefix(f"Code: {getattr(exc, 'code', '')}. ")
    return re.sub(r" \([^()\s]+:\d+\)$", "", text) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _to_driver(column: pa.ChunkedArray) -> list[Any]:
    """Arrow column -> the Python values the driver packs (it has no Arrow input of its own)."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)  # the driver stops at µs
    return python_values(column, _naive_is_utc)


def _naive_is_utc(kind: pa.DataType) -> Converter:
    """Naive timestamps are UTC (else the driver assumes the server's zone)."""
    return (lambda v: v.replace(tzinfo=UTC)) if pa.types.is_timestamp(kind) and kind.tz is None else None


def _arrow_type(ch_type: str, server_tz: str) -> tuple[pa.DataType, Converter]:
    """ClickHouse type name -> (Arrow type, converter for the driver's non-null values)."""
    name, args = _split_type(ch_type)
    if not args and name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name], None
    if name in {"Nullable", "LowCardinality"}:
        return _arrow_type(args[0], server_tz)
    if name in {"Enum8", "Enum16", "FixedString"}:
        return pa.string(), None
    if name in {"DateTime", "DateTime64"}:
        scale = int(args[0]) if name == "DateTime64" else 0
        unit = "s" if scale == 0 else "ms" if scale <= 3 else "us"
        column_tz = args[-1].strip("'") if args and args[-1].startswith("'") else None
        # Without a column zone the driver returns the server zone's wall clock, naive.
        zone = None if column_tz or server_tz in _UTC_NAMES else ZoneInfo(server_tz)
        return pa.timestamp(unit, tz=column_tz or "UTC"), (lambda v: v.replace(tzinfo=zone)) if zone else None
    if name == "Decimal" and len(args) == 2 and int(args[0]) <= 38:
        return pa.decimal128(int(args[0]), int(args[1])), None
    if name == "Array":
        inner, convert = _arrow_type(args[0], server_tz)
        return pa.list_(inner), (lambda v: [apply(convert, x) for x in v]) if convert else None
    if name == "Map":
        (key, ckey), (item, citem) = _arrow_type(args[0], server_tz), _arrow_type(args[1], server_tz)
        return pa.map_(key, item), lambda v: [(apply(ckey, k), apply(citem, x)) for k, x in v.items()]
    return pa.string(), str  # UUID, IPv4, Tuple, ...: readable text rather than a failure


def _split_type(ch_type: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ``("Map", ["String", "Array(UInt8)"])``, quotes respected."""
    name, paren, rest = ch_type.strip().partition("(")
    if not paren:
        return name, []
    args, current, depth, quoted, escaped = [], [], 0, False, False
    for char in rest[:-1]:
        if quoted:
            quoted = escaped or char != "'"
            escaped = not escaped and char == "\\"
        elif char == "'":
            quoted = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    args.append("".join(current).strip())
    return name, args
