"""Writing a query result to a byte stream as CSV, JSON, JSON lines or Parquet (no terminal code).

Maps come from Arrow as lists of pairs; JSON readers expect objects, and CSV has no nested values, so
those are written as JSON text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("csv", "json", "jsonl", "parquet")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError


def plain(value):
    """Maps arrive from Arrow as lists of pairs; JSON readers expect objects."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: plain(v) for k, v in value}
    return value


def json_text(value) -> str:
    return orjson.dumps(plain(value), default=_json_default).decode()


def _rows(result: pa.Table) -> list[dict]:
    return [{k: plain(v) for k, v in row.items()} for row in result.to_pylist()]


def write(result: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write ``result`` to the binary stream ``out`` in ``fmt`` (one of FORMATS)."""
    if fmt == "parquet":
        pq.write_table(result, out, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(_csv_safe(result), out)
    elif fmt == "json":
        out.write(orjson.dumps(_rows(result), default=_json_default, option=orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "jsonl":
        for row in _rows(result):
            out.write(orjson.dumps(row, default=_json_default) + b"\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _csv_safe(result: pa.Table) -> pa.Table:
    """CSV has no nested values: write maps and lists as JSON text."""
    columns = []
    for column in result.columns:
        if pa.types.is_nested(column.type):
            columns.append(pa.array([None if v is None else json_text(v) for v in column.to_pylist()], pa.string()))
        else:
            columns.append(column)
    return pa.table(columns, names=result.column_names)
