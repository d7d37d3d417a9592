"""NativeBackend against a real ClickHouse server (see tests/clickhouse_server.py): what is particular to
the server; what every backend does is in test_backend_contract.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from exporter.engine.registry import open_backend
from exporter.engine.server import NativeBackend, server_message
from exporter.errors import ArchivesError, BackendUnavailable, QueryError
from exporter.tiers.warm import MIN_SERVER_VERSION, WarmStore
from tests.clickhouse_server import LocalServer, _free_port


@pytest.fixture
def backend(url: str) -> Iterator[NativeBackend]:
    instance = NativeBackend.from_url(url)
    yield instance
    instance.close()


@pytest.fixture
def table(backend: NativeBackend) -> Iterator[str]:
    name = f"default.archives_test_{uuid.uuid4().hex[:8]}"
    backend.execute(
        f"CREATE TABLE {name} (name String, small UInt8, medium UInt16, big UInt32, delta Int8,"
        " note Nullable(String), at DateTime, day Date, state Enum8('queued' = 1, 'done' = 2),"
        " tags Array(String)) ENGINE = MergeTree ORDER BY (name, at)"
    )
    yield name
    backend.execute(f"DROP TABLE IF EXISTS {name}")


def _rows(count: int, start: int = 0) -> pa.Table:
    numbers = range(start, start + count)
    return pa.table({
        "name": [f"job-{i}" for i in numbers],
        "small": pa.array([i % 256 for i in numbers], pa.uint8()),
        "medium": pa.array([i * 7 % 65536 for i in numbers], pa.uint16()),
        "big": pa.array([i * 100_003 % 2**32 for i in numbers], pa.uint32()),
        "delta": pa.array([i % 128 - 64 for i in numbers], pa.int8()),
        "note": [None if i % 2 else f"note {i}" for i in numbers],
        "at": pa.array([datetime(2024, 3, 31, 0, 30, tzinfo=UTC) + timedelta(hours=i) for i in numbers],
                       pa.timestamp("s", tz="UTC")),
        "day": pa.array([date(2024, 1, 1 + i % 28) for i in numbers], pa.date32()),
        "state": ["done" if i % 3 else "queued" for i in numbers],
        "tags": [[f"t{j}" for j in range(i % 3)] for i in numbers],
    })


def test_connects_and_reports_version(backend: NativeBackend) -> None:
    result = backend.query_arrow("SELECT version() AS v, toUInt8(1) AS one")
    assert result.schema.field("v").type == pa.string()
    assert result.column("v")[0].as_py().split(".")[0].isdigit()
    assert result.column("one").to_pylist() == [1]
    assert backend.description.startswith("ClickHouse server ")


def test_arrow_round_trip(backend: NativeBackend, table: str) -> None:
    data = _rows(50)
    backend.insert_arrow(table, data)
    result = backend.query_arrow(f"SELECT * FROM {table} ORDER BY name, at")
    expected = data.sort_by([("name", "ascending"), ("at", "ascending")])
    assert result.schema == expected.schema
    assert result.equals(expected)
    # DST edge in the server's zone (Europe/Berlin): instants survive, not wall clocks.
    at = backend.query_arrow(f"SELECT toString(at) AS s FROM {table} WHERE name = 'job-2'")
    assert at.column("s").to_pylist() == ["2024-03-31 04:30:00"]


def test_query_types(backend: NativeBackend) -> None:
    result = backend.query_arrow(
        "SELECT toNullable(toInt64(-5)) AS n, CAST(NULL AS Nullable(String)) AS missing,"
        " toFloat64(1.5) AS f, [1, 2] AS arr, toDateTime('2024-01-02 03:04:05', 'UTC') AS utc,"
        " toFixedString('ab', 2) AS fixed, generateUUIDv4() AS id FROM system.one"
    )
    assert result.schema.types == [
        pa.int64(), pa.string(), pa.float64(), pa.list_(pa.uint8()), pa.timestamp("s", tz="UTC"),
        pa.string(), pa.string(),
    ]
    row = result.to_pylist()[0]
    assert (row["n"], row["missing"], row["f"], row["arr"]) == (-5, None, 1.5, [1, 2])
    assert row["utc"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["fixed"] == "ab" and len(row["id"]) == 36


def test_empty_result_keeps_schema(backend: NativeBackend, table: str) -> None:
    result = backend.query_arrow(f"SELECT name, tags FROM {table}")
    assert result.num_rows == 0
    assert result.schema == pa.schema([("name", pa.string()), ("tags", pa.list_(pa.string()))])


@pytest.mark.parametrize(("sql", "needle"), [
    ("SELECT * FROM default.no_such_table", "default.no_such_table"),
    ("SELEC 1", "Syntax error"),
])
def test_server_error_is_one_sentence(backend: NativeBackend, sql: str, needle: str) -> None:
    with pytest.raises(QueryError) as info:
        backend.query_arrow(sql)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message and "Stack trace" not in message and "Code:" not in message
    assert "DB::Exception" not in message
    # The connection is still usable afterwards.
    assert backend.query_arrow("SELECT 1 AS x").column("x").to_pylist() == [1]


def test_unreachable_server_is_backend_unavailable() -> None:
    port = _free_port()
    backend = NativeBackend.from_url(f"clickhouse://127.0.0.1:{port}/default?connect_timeout=2")
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        backend.execute("SELECT 1")


def test_killed_server_then_restart(server: LocalServer | str, backend: NativeBackend, table: str) -> None:
    if isinstance(server, str):
        pytest.skip("kill/restart needs a server this test started")
    backend.insert_arrow(table, _rows(10))
    server.kill()
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{server.port}"):
        backend.insert_arrow(table, _rows(5, start=10))
    server.start()
    backend.insert_arrow(table, _rows(5, start=10))
    assert backend.query_arrow(f"SELECT count() AS c FROM {table}").column("c").to_pylist() == [15]


def test_open_backend_returns_native(url: str) -> None:
    backend = open_backend(url)
    try:
        assert isinstance(backend, NativeBackend)
        assert backend.query_arrow("SELECT 1 AS x").column("x").to_pylist() == [1]
    finally:
        backend.close()


def _connection(backend: NativeBackend):
    """The driver connection a call would use (the Client connects lazily, so nothing is dialled)."""
    with backend._pool.lease() as client:
        return client.connection


def test_url_parsing_without_server() -> None:
    plain = NativeBackend.from_url("clickhouse://default@127.0.0.1:19000/default")
    assert plain.description == "ClickHouse server 127.0.0.1:19000/default"
    assert isinstance(open_backend("clickhouse://default@127.0.0.1:19000/default"), NativeBackend)

    parsed = NativeBackend.from_url("clickhouse://archiver:s%40cret@db.example:9001/warm")
    connection = _connection(parsed)
    assert (connection.user, connection.password, connection.hosts[0]) == (
        "archiver", "s@cret", ("db.example", 9001))
    assert connection.database == "warm" and not connection.secure_socket

    defaults = NativeBackend.from_url("clickhouse://db.example", password="from-env")
    connection = _connection(defaults)
    assert (connection.user, connection.password, connection.hosts[0], connection.database) == (
        "default", "from-env", ("db.example", 9000), "default")

    tls = NativeBackend.from_url("clickhouses://u@db.example/x")
    assert _connection(tls).secure_socket and _connection(tls).hosts[0] == ("db.example", 9440)
    assert tls.description.endswith("(TLS)")
    flagged = NativeBackend.from_url("clickhouse://db.example?secure=true&verify=false&ca_certs=/ca.pem")
    connection = _connection(flagged)
    assert connection.secure_socket and connection.hosts[0][1] == 9440 and connection.verify_cert is False
    assert connection.ssl_options.get("ca_certs") == "/ca.pem"


def test_server_message_cleanup() -> None:
    assert server_message("DB::Exception: Table default.x doesn't exist.. Stack trace:\n\n0. foo") == (
        "Table default.x doesn't exist.")
    assert server_message(
        "DB::Exception: Received from h:9000. DB::Exception: Table default.x does not exist. "
        "Maybe you meant y?. (UNKNOWN_TABLE)") == "Table default.x does not exist."


def test_conversions_for_types_newer_than_18_16() -> None:
    """Map and DateTime64 do not exist on the CI server, so check the converters directly."""
    from exporter.engine.server import _arrow_type, _to_driver

    tags = pa.chunked_array([pa.array([[("a", "b")], None, []], pa.map_(pa.string(), pa.string()))])
    assert _to_driver(tags) == [{"a": "b"}, None, {}]
    naive = pa.chunked_array([pa.array([1_500_000_000, None], pa.timestamp("ns"))])
    assert _to_driver(naive) == [datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC), None]

    kind, convert = _arrow_type("Map(LowCardinality(String), Array(Nullable(DateTime64(3, 'UTC'))))", "UTC")
    assert kind == pa.map_(pa.string(), pa.list_(pa.timestamp("ms", tz="UTC")))
    instant = datetime(2024, 1, 1, tzinfo=UTC)
    assert pa.array([convert({"k": [instant, None]})], kind).to_pylist() == [[("k", [instant, None])]]
    assert _arrow_type("Enum8('a,b' = 1, 'it\\'s' = 2)", "UTC") == (pa.string(), None)
    assert _arrow_type("DateTime64(6, 'Europe/Berlin')", "UTC")[0] == pa.timestamp("us", tz="Europe/Berlin")
    assert _arrow_type("Decimal(18, 4)", "UTC")[0] == pa.decimal128(18, 4)
    assert _arrow_type("Tuple(UInt8, String)", "UTC") == (pa.string(), str)


def test_a_server_too_old_for_the_schema_is_named_with_the_version_needed(backend: NativeBackend) -> None:
    version = backend.query_arrow("SELECT version() AS v").column("v")[0].as_py()
    if tuple(int(p) for p in version.split(".")[:2]) >= MIN_SERVER_VERSION:
        pytest.skip(f"server {version} is new enough for the schema")
    with pytest.raises(ArchivesError) as refused:
        WarmStore(backend, 365 * 86400).ensure_schema()
    assert f"runs ClickHouse {version}; the warm tier needs 21.8 or newer" in str(refused.value)
    assert backend.query_arrow("EXISTS TABLE jobs_archive").column(0).to_pylist() == [0]  # nothing half-made
