"""A result's columns as a person reads them: Enum columns as names, DateTime columns as UTC times
(the engine hands Arrow a bare count of seconds for DateTime), through the query layer."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from exporter.engine.interface import Limits
from exporter.query.layer import LocalQueries
from exporter.query.run import first_page, run


def test_datetime_columns_are_times_and_enums_names(warm):
    queries = LocalQueries(warm.backend)
    result = run(queries, "SELECT toDateTime('2026-01-02 03:04:05', 'UTC') AS t, "
                          "toDateTime('2026-01-02 12:04:05', 'Asia/Tokyo') AS tokyo, "
                          "CAST(NULL AS Nullable(DateTime)) AS nothing, "
                          "CAST('failed', 'Enum8(\\'success\\' = 1, \\'failed\\' = 2)') AS outcome, "
                          "toDateTime64('2026-01-02 03:04:05.123', 3, 'UTC') AS precise")
    table = result.table
    assert pa.types.is_timestamp(table.schema.field("t").type)
    assert table.to_pylist() == [{"t": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                  "tokyo": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                  "nothing": None, "outcome": "failed",
                                  "precise": datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)}]


def test_nested_enums_and_times_and_addresses_are_readable(warm):
    queries = LocalQueries(warm.backend)
    result = run(queries, "SELECT [CAST('b', 'Enum8(\\'a\\' = 1, \\'b\\' = 2)')] AS names, "
                          "map('at', toDateTime('2026-01-02 03:04:05', 'UTC')) AS times, "
                          "toIPv4('1.2.3.4') AS ip, 1.5::BFloat16 AS half")
    assert result.table.to_pylist() == [{"names": ["b"], "times": [("at", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))],
                                         "ip": "1.2.3.4", "half": 1.5}]


@pytest.mark.parametrize(("total", "complete"), [(9_999, True), (10_000, True), (10_001, False), (25_000, False)])
def test_a_first_page_says_whether_the_result_went_on(warm, total, complete):
    """However the engine cuts its blocks, a first page of 10,000 rows is complete only when there were no more."""
    queries = LocalQueries(warm.backend)
    for block in (1_000, 10_000, 65_536):
        result = run(queries, f"SELECT number FROM numbers({total})", Limits(block_rows=block),
                     consume=first_page(10_000))
        assert (result.rows, result.complete) == (min(total, 10_000), complete), block
        assert result.table.column(0).to_pylist() == list(range(min(total, 10_000)))


def test_a_first_page_stops_at_its_byte_budget(warm):
    result = run(LocalQueries(warm.backend), "SELECT repeat('x', 100000) AS big FROM numbers(1000)",
                 Limits(block_rows=10), consume=first_page(10_000, max_bytes=1 << 20))
    assert not result.complete and 0 < result.rows < 1000 and result.table.nbytes < 3 << 20
