"""Rendering query results: a terminal table, CSV, JSON, JSON lines or Parquet."""

from __future__ import annotations

import io
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json", "jsonl", "parquet")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError


def _plain(value):
    """Maps arrive from Arrow as lists of pairs; JSON readers expect objects."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: _plain(v) for k, v in value}
    return value


def _rows(result: pa.Table) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in result.to_pylist()]


def render(result: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write ``result`` to the binary stream ``out`` in ``fmt``."""
    if fmt == "parquet":
        pq.write_table(result, out, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(_csv_safe(result), out)
    elif fmt == "json":
        out.write(orjson.dumps(_rows(result), default=_json_default, option=orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "jsonl":
        for row in _rows(result):
            out.write(orjson.dumps(row, default=_json_default) + b"\n")
    elif fmt == "table":
        out.write(table_text(result).encode())
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _csv_safe(result: pa.Table) -> pa.Table:
    """CSV has no nested values: write maps and lists as JSON text."""
    columns = []
    for column in result.columns:
        if pa.types.is_nested(column.type):
            text = [None if v is None else orjson.dumps(_plain(v), default=_json_default).decode()
                    for v in column.to_pylist()]
            columns.append(pa.array(text, pa.string()))
        else:
            columns.append(column)
    return pa.table(columns, names=result.column_names)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    value = _plain(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=_json_default).decode()
    return str(value)


def table_text(result: pa.Table, limit: int = 1000) -> str:
    width = None if sys.stdout.isatty() else 200
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    table = Table(show_edge=True, header_style="bold")
    for name, field in zip(result.column_names, result.schema, strict=True):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    shown_rows = result.slice(0, limit)
    for row in zip(*(column.to_pylist() for column in shown_rows.columns), strict=True):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    shown = min(limit, result.num_rows)
    note = f"{result.num_rows} row{'s' if result.num_rows != 1 else ''}"
    if shown < result.num_rows:
        note += f" (first {shown} shown; use --format csv/json/parquet --output FILE for all)"
    console.print(note)
    return console.file.getvalue()
