"""Every column type in every format: `archives query --format table|csv|tsv|json|jsonl|parquet` over a
real chdb store holding a row of each type, each output read back and holding the value.

Some types reach Arrow in a form that is not their value (an IPv4 as a number, IPv6 and the wide
integers as raw bytes, BFloat16 as two raw bytes, a DateTime inside an array as seconds): the query
layer casts them to ``exporter.values.readable_type``. ``test_readable_types_in_every_format`` checks
that cast and the writers on the engine directly, ``test_every_type_in_every_format`` the whole way
through the CLI.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from archives_tui.cli import main
from archives_tui.render import table_text
from exporter.config import Config
from exporter.engine.registry import open_backend
from exporter.query import writers
from exporter.values import readable_type
from tests.test_outages import write_config

FORMATS = ("table", "csv", "tsv", "json", "jsonl", "parquet")


@dataclass(frozen=True)
class Case:
    """One column of the table ``typed``, named after its type, and what each format gives back."""

    column: str
    kind: str  # its ClickHouse type
    literal: str  # the value as the INSERT writes it
    value: Any  # as JSON and JSON lines give it back
    field: bytes | None  # as CSV and TSV hold it (None: NULL); for a nested value, its JSON text
    shown: str  # as the table shows it
    stored: Any  # as Parquet gives it back


AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MIN_INT128 = -(2**127)
MAX_UINT256 = 2**256 - 1
UUID = "61f0c404-5cb3-11e7-907b-a6006ad3dba0"
CASES = [
    Case("uuid", "UUID", f"'{UUID}'", UUID, UUID.encode(), UUID, uuid.UUID(UUID)),
    Case("json", "JSON", """'{"a":1,"b":{"c":"x"}}'""", {"a": 1, "b": {"c": "x"}}, b'{"a":1,"b":{"c":"x"}}',
         '{"a":1,"b":{"c":"x"}}', '{"a":1,"b":{"c":"x"}}'),
    Case("dynamic", "Dynamic", "42", 42, b"42", "42", "42"),
    Case("dynamic_text", "Dynamic", "'abc'", "abc", b"abc", "abc", '"abc"'),
    Case("variant", "Variant(String, UInt64)", "'abc'", "abc", b"abc", "abc", "abc"),
    Case("variant_number", "Variant(String, UInt64)", "7::UInt64", 7, b"7", "7", "7"),
    Case("bfloat16", "BFloat16", "1.5", 1.5, b"1.5", "1.5", 1.5),
    Case("map", "Map(String, UInt8)", "{'k': 1}", {"k": 1}, b'{"k":1}', '{"k":1}', [("k", 1)]),
    Case("array", "Array(Nullable(String))", "['a', NULL]", ["a", None], b'["a",null]', '["a",null]', ["a", None]),
    Case("tuple", "Tuple(x UInt8, y String)", "(1, 'a')", {"x": 1, "y": "a"}, b'{"x":1,"y":"a"}',
         '{"x":1,"y":"a"}', {"x": 1, "y": "a"}),
    Case("nullable", "Nullable(Int32)", "NULL", None, None, "NULL", None),
    Case("lowcardinality", "LowCardinality(String)", "'x'", "x", b"x", "x", "x"),
    Case("enum", "Enum8('a' = 1, 'b' = 2)", "'b'", "b", b"b", "b", "b"),
    Case("decimal", "Decimal(18, 4)", "123.4567", "123.4567", b"123.4567", "123.4567", Decimal("123.4567")),
    Case("int128", "Int128", str(MIN_INT128), str(MIN_INT128), str(MIN_INT128).encode(), str(MIN_INT128),
         str(MIN_INT128)),
    Case("uint256", "UInt256", str(MAX_UINT256), str(MAX_UINT256), str(MAX_UINT256).encode(), str(MAX_UINT256),
         str(MAX_UINT256)),
    Case("ipv4", "IPv4", "'1.2.3.4'", "1.2.3.4", b"1.2.3.4", "1.2.3.4", "1.2.3.4"),
    Case("ipv6", "IPv6", "'2001:db8::1'", "2001:db8::1", b"2001:db8::1", "2001:db8::1", "2001:db8::1"),
    Case("date32", "Date32", "'1900-01-02'", "1900-01-02", b"1900-01-02", "1900-01-02", date(1900, 1, 2)),
    Case("datetime", "DateTime('UTC')", "'2026-01-02 03:04:05'", "2026-01-02T03:04:05+00:00",
         b"2026-01-02 03:04:05Z", "2026-01-02 03:04:05+00:00", AT),
    Case("datetime64", "DateTime64(6, 'UTC')", "'2026-01-02 03:04:05.123456'", "2026-01-02T03:04:05.123456+00:00",
         b"2026-01-02 03:04:05.123456Z", "2026-01-02 03:04:05.123456+00:00", AT.replace(microsecond=123456)),
    Case("fixedstring", "FixedString(4)", "'ab'", "ab\x00\x00", b"ab\x00\x00", "ab\\x00\\x00", b"ab\x00\x00"),
    Case("bytes", "String", "unhex('FF41')", "\ufffdA", b"\xffA", "\\xffA", b"\xffA"),  # not UTF-8: kept as is
    Case("nested", "Array(Tuple(ip IPv4, at DateTime('UTC')))", "[('1.2.3.4', '2026-01-02 03:04:05')]",
         [{"ip": "1.2.3.4", "at": "2026-01-02T03:04:05+00:00"}], b'[{"ip":"1.2.3.4","at":"2026-01-02T03:04:05+00:00"}]',
         '[{"ip":"1.2.3.4","at":"2026-01-02T03:04:05+00:00"}]', [{"ip": "1.2.3.4", "at": AT}]),
]


@pytest.fixture(scope="module")
def typed(tmp_path_factory, redis_url) -> Config:
    """A store whose table ``typed`` holds one row with a column of each type (made by internal SQL)."""
    base = tmp_path_factory.mktemp("typed")
    config = Config().replace("redis", url=redis_url).replace("clickhouse", url=f"chdb://{base / 'warm'}")
    config = config.replace("cold", url=f"file://{base / 'cold'}")
    backend = open_backend(config.clickhouse.url)
    try:
        columns = ", ".join(f"{case.column} {case.kind}" for case in CASES)
        backend.execute(f"CREATE TABLE typed (id UInt8, {columns}) ENGINE = MergeTree ORDER BY id")
        backend.execute(f"INSERT INTO typed VALUES (1, {', '.join(case.literal for case in CASES)})")
    finally:
        backend.close()
    return config


def check(case: Case, fmt: str, data: bytes) -> None:
    """``data``, the whole output of one format for ``SELECT <column> AS v``, read back: it holds the value."""
    if fmt == "table":
        rows = [line for line in data.decode().splitlines() if line[:1] in ("┃", "│")]  # the header, the row
        assert [row.strip("┃│ ") for row in rows] == ["v", case.shown]
        assert b"\x1b" not in data
    elif fmt in ("json", "jsonl"):
        rows = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]
        assert rows == [{"v": case.value}]
    elif fmt == "parquet":
        column = pq.read_table(io.BytesIO(data)).column("v")
        if isinstance(case.stored, bytes) and pa.types.is_string(column.type):
            column = column.cast(pa.binary())  # text that is not UTF-8, kept as it is
        assert column.to_pylist() == [case.stored]
    else:
        assert _field(fmt, data) == case.field
        if isinstance(case.value, dict | list) and case.field is not None:
            assert json.loads(case.field) == case.value


def _field(fmt: str, data: bytes) -> bytes | None:
    """The one field of a one-column CSV or TSV output, its quoting or escapes undone; None for NULL."""
    if fmt == "csv":
        options = pacsv.ConvertOptions(column_types={"v": pa.binary()}, strings_can_be_null=True,
                                       quoted_strings_can_be_null=False)
        read = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
                              convert_options=options)
        assert read.column_names == ["v"] and read.num_rows == 1
        return read.column("v")[0].as_py()
    header, line, end = data.split(b"\n")
    assert header == b"v" and end == b""
    escapes = {b"t": b"\t", b"n": b"\n", b"r": b"\r", b"\\": b"\\"}
    return None if line == b"\\N" else re.sub(rb"\\(.)", lambda m: escapes[m.group(1)], line)


def _cli_cases():
    for case in CASES:
        for fmt in FORMATS:
            yield pytest.param(case, fmt, id=f"{case.column}-{fmt}")


@pytest.mark.parametrize(("case", "fmt"), _cli_cases())
def test_every_type_in_every_format(typed, case, fmt, tmp_path, capsysbinary):
    config_file = write_config(tmp_path / "archives.yaml", typed)
    sql = f"SELECT {case.column} AS v FROM typed"
    if fmt == "table":
        assert main(["--config", str(config_file), "query", sql]) == 0
        data = capsysbinary.readouterr().out
    else:
        out = tmp_path / f"out.{fmt}"
        assert main(["--config", str(config_file), "query", "--format", fmt, "--output", str(out), sql]) == 0
        data = out.read_bytes()
    check(case, fmt, data)


@pytest.mark.parametrize("case", CASES, ids=[case.column for case in CASES])
def test_readable_types_in_every_format(typed, case):
    """The engine's result cast to ``readable_type`` (as the query layer casts it), in each format."""
    backend = open_backend(typed.clickhouse.url)
    try:
        kind = backend.query_arrow(f"SELECT toTypeName({case.column}) AS t FROM typed").column("t")[0].as_py()
        target = readable_type(kind)
        expression = case.column if target is None else f"CAST({case.column} AS {target})"
        sql = f"SELECT {expression} AS v FROM typed"
        result = backend.query_arrow(sql)
        for fmt in FORMATS:
            out = io.BytesIO()
            if fmt == "table":
                out.write(table_text(result).encode())
            else:
                assert writers.write_batches(backend.query_batches(sql), fmt, out) == (1, False)
            check(case, fmt, out.getvalue())
    finally:
        backend.close()


@pytest.mark.parametrize(("kind", "readable"), [
    ("String", None),
    ("DateTime64(3, 'UTC')", None),
    ("Variant(String, UInt64)", None),
    ("LowCardinality(String)", None),
    ("Enum16('a,)' = 1, 'b' = 2)", "String"),
    ("Nullable(DateTime('Asia/Tokyo'))", "Nullable(DateTime64(0, 'UTC'))"),
    ("Array(LowCardinality(Nullable(Enum8('a' = 1))))", "Array(Nullable(String))"),
    ("Map(String, Array(IPv6))", "Map(String, Array(String))"),
    ("Tuple(\n    x BFloat16,\n    `y z` UInt128)", "Tuple(x Float32, `y z` String)"),
    ("Variant(BFloat16, String)", "String"),  # the engine casts a Variant only to a wider one
])
def test_readable_type_reads_the_engine_type_names(kind, readable):
    assert readable_type(kind) == readable


STATEMENTS = [  # each allowed statement kind, a column of its answer, and a value that column holds
    ("SHOW TABLES", "name", "typed"),
    ("SHOW DATABASES", "name", "default"),
    ("SHOW COLUMNS FROM typed", "field", "ipv6"),
    ("DESCRIBE TABLE typed", "type", "Variant(String, UInt64)"),
    ("EXISTS TABLE typed", "result", "1"),
    ("EXPLAIN SELECT uuid FROM typed", "explain", "ReadFromMergeTree (default.typed)"),
    ("EXPLAIN AST SELECT 1", "explain", "SelectWithUnionQuery (children 1)"),
    ("WITH 2 AS n SELECT n * 21 AS answer", "answer", "42"),
]


def _column(fmt: str, data: bytes, name: str) -> list[str]:
    """The values of column ``name`` in an output of ``fmt``, as text."""
    if fmt in ("json", "jsonl"):
        rows = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]
        return [str(row[name]) for row in rows]
    if fmt == "parquet":
        return [str(v) for v in pq.read_table(io.BytesIO(data)).column(name).to_pylist()]
    if fmt == "csv":
        options = pacsv.ConvertOptions(column_types={name: pa.string()})
        return [str(v) for v in pacsv.read_csv(io.BytesIO(data), convert_options=options).column(name).to_pylist()]
    header, *lines = data.decode().splitlines()
    index = header.split("\t").index(name)
    return [line.split("\t")[index].replace("\\\\", "\\") for line in lines]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("sql", "name", "held"), STATEMENTS, ids=[s[0].split()[0] + "-" + s[0].split()[1]
                                                                  for s in STATEMENTS])
def test_every_statement_kind_in_every_format(typed, sql, name, held, fmt, tmp_path, capsysbinary):
    config_file = write_config(tmp_path / "archives.yaml", typed)
    if fmt == "table":
        assert main(["--config", str(config_file), "query", sql]) == 0
        assert held in capsysbinary.readouterr().out.decode()
        return
    out = tmp_path / f"out.{fmt}"
    assert main(["--config", str(config_file), "query", "--format", fmt, "--output", str(out), sql]) == 0
    assert held in _column(fmt, out.read_bytes(), name)


def test_the_embedded_backend_streams_every_statement_kind(typed):
    """chdb streams SELECTs only; the backend answers the other kinds whole, as a stream all the same."""
    backend = open_backend(typed.clickhouse.url)
    try:
        for sql, _, _ in STATEMENTS:
            assert backend.query_batches(sql, batch_rows=2).read_all().equals(backend.query_arrow(sql)), sql
    finally:
        backend.close()
