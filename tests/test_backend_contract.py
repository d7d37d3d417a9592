"""What every ClickHouse backend does, run against chdb (embedded) and a real server alike: Arrow in and
out, engine-enforced limits, cancel that stops the engine, a catalog, and an insert that does not wait
for a long query."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from exporter.engine.interface import ClickHouseBackend, Limits, QueryStats
from exporter.engine.registry import open_backend
from exporter.errors import QueryError

ENDLESS = "SELECT count() FROM system.numbers WHERE number % 7 = 3"  # runs until stopped


@pytest.fixture(params=["chdb", "server"])
def backend(request, tmp_path) -> Iterator[ClickHouseBackend]:
    url = f"chdb://{tmp_path / 'warm'}" if request.param == "chdb" else request.getfixturevalue("url")
    opened = open_backend(url)
    yield opened
    opened.close()


@pytest.fixture
def table(backend: ClickHouseBackend) -> Iterator[str]:
    name = f"contract_{uuid.uuid4().hex[:8]}"
    backend.execute(f"CREATE TABLE {name} (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    yield name
    backend.execute(f"DROP TABLE IF EXISTS {name}")


def _in_thread(call) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except QueryError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_arrow_in_and_out(backend, table):
    backend.insert_arrow(table, pa.table({"id": pa.array([1, 2, 3], pa.uint32()), "name": ["a", "b", "c"]}))
    result = backend.query_arrow(f"SELECT id, name FROM {table} ORDER BY id")
    assert result.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


def test_result_rows_are_capped_by_the_engine(backend):
    result = backend.query_arrow("SELECT number FROM system.numbers LIMIT 1000000", limits=Limits(max_result_rows=10))
    assert result.column(0).to_pylist() == list(range(10))


def _fill(backend, table: str, rows: int = 100_000) -> str:
    backend.execute(f"INSERT INTO {table} SELECT toUInt32(number), toString(number) FROM numbers({rows})")
    return f"SELECT count() AS n FROM {table} WHERE name != ''"


def test_rows_to_read_and_time_are_limits_with_a_clear_error(backend, table):
    scan = _fill(backend, table)
    with pytest.raises(QueryError, match=r"(?i)limit for rows"):
        backend.query_arrow(scan, limits=Limits(max_rows_to_read=1000))
    with pytest.raises(QueryError, match=r"(?i)timeout exceeded"):
        backend.query_arrow(ENDLESS, limits=Limits(max_execution_time=1))


def test_limits_do_not_outlive_their_query(backend, table):
    scan = _fill(backend, table)
    with pytest.raises(QueryError):
        backend.query_arrow(scan, limits=Limits(max_rows_to_read=1000))
    assert backend.query_arrow(scan).column(0).to_pylist() == [100_000]


def test_cancel_stops_the_engine(backend):
    query_id = uuid.uuid4().hex
    thread, outcome = _in_thread(lambda: backend.query_arrow(ENDLESS, query_id=query_id,
                                                            limits=Limits(max_execution_time=120)))
    deadline = time.monotonic() + 10
    while not backend.cancel(query_id):
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.05)
    thread.join(10)
    assert not thread.is_alive() and any(word in outcome.get("error", "").lower() for word in ("cancel", "killed"))
    running = backend.query_arrow("SELECT count() AS n FROM system.processes WHERE query LIKE '%number % 7 = 3%' "
                                  "AND query NOT LIKE '%system.processes%'")
    assert running.column(0).to_pylist() == [0]
    assert backend.cancel(query_id) is False


def test_an_insert_does_not_wait_for_a_long_query(backend, table):
    query_id = uuid.uuid4().hex
    thread, outcome = _in_thread(lambda: backend.query_arrow(ENDLESS, query_id=query_id,
                                                            limits=Limits(max_execution_time=120)))
    try:
        time.sleep(0.3)
        backend.insert_arrow(table, pa.table({"id": pa.array([7], pa.uint32()), "name": ["x"]}))
        assert backend.query_arrow(f"SELECT count() AS n FROM {table}").column(0).to_pylist() == [1]
        assert thread.is_alive(), outcome  # the insert and the check ran while the query was still going
    finally:
        while thread.is_alive():
            backend.cancel(query_id)
            thread.join(0.2)


def test_catalog_lists_tables_columns_and_functions(backend, table):
    catalog = backend.catalog()
    found = catalog.table(table)
    assert found is not None and "MergeTree" in found.engine
    assert [(c.name, c.type) for c in found.columns] == [("id", "UInt32"), ("name", "String")]
    assert {"count", "uniqExact", "toStartOfHour"} <= catalog.functions
    assert "uniqExact" in catalog.aggregate_functions and "toStartOfHour" not in catalog.aggregate_functions
    assert {"DateTime", "String", "VARCHAR", "datetime"} <= catalog.types and "string" not in catalog.types

def test_a_result_streams_batch_by_batch_with_what_it_read(backend):
    stats = QueryStats()
    reader = backend.query_batches("SELECT number AS n, toString(number) AS s FROM system.numbers LIMIT 250000",
                                   stats=stats, batch_rows=100000)
    batches = list(reader)
    assert all(b.num_rows <= 100000 for b in batches) and sum(b.num_rows for b in batches) == 250000
    assert reader.schema.names == ["n", "s"] and stats.rows_read > 0  # chdb's progress may lag the rows
    capped = backend.query_batches("SELECT number AS n FROM system.numbers LIMIT 1000000",
                                   limits=Limits(max_result_rows=12345), batch_rows=1000)
    assert capped.read_all().num_rows == 12345


def test_an_empty_stream_still_has_its_columns(backend):
    reader = backend.query_batches("SELECT toUInt8(1) AS x, 'a' AS y FROM system.one WHERE 0")
    assert reader.schema.names == ["x", "y"] and reader.read_all().num_rows == 0
    assert backend.query_arrow("SELECT toUInt8(1) AS x FROM system.one WHERE 0").column_names == ["x"]


def test_query_stats_report_rows_read(backend):
    stats = QueryStats()
    assert backend.query_arrow("SELECT count() FROM (SELECT number FROM system.numbers LIMIT 5000)",
                               stats=stats).num_rows == 1
    assert stats.rows_read >= 5000 and stats.bytes_read > 0


def test_a_stream_left_part_read_or_unread_frees_its_connection(backend):
    unread = backend.query_batches("SELECT number FROM system.numbers LIMIT 10", batch_rows=3)
    del unread
    endless = backend.query_batches(ENDLESS.replace("count()", "number"), batch_rows=10)
    next(iter(endless))
    del endless  # what frees it: pyarrow's close() does not reach the batches behind a reader
    assert backend.query_arrow("SELECT 1 AS x").column(0).to_pylist() == [1]
