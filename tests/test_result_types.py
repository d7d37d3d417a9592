"""A result's columns as a person reads them: Enum columns as names, DateTime columns as UTC times
(the engine hands Arrow a bare count of seconds for DateTime)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from exporter.query.run import run


def test_datetime_columns_are_times_and_enums_names(warm):
    result = run(warm.backend, "SELECT toDateTime('2026-01-02 03:04:05', 'UTC') AS t, "
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
