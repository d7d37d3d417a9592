"""Rendering query results for the terminal: a rich table, or any of the engine's file formats."""

from __future__ import annotations

import io
import sys
from datetime import date, datetime
from typing import BinaryIO

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from exporter.query import writers
from exporter.values import python_values

FORMATS = ("table", *writers.FORMATS)


def render(result: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write ``result`` to the binary stream ``out`` in ``fmt``."""
    if fmt == "table":
        out.write(table_text(result).encode())
    else:
        writers.write(result, fmt, out)


def human_size(n: float | None) -> str:
    """``1.5 MiB``; ``?`` when unknown."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, dict | list):
        return writers.json_text(value)
    return str(value)


def table_text(result: pa.Table, limit: int = 1000) -> str:
    width = None if sys.stdout.isatty() else 200
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    table = Table(show_edge=True, header_style="bold")
    for name, field in zip(result.column_names, result.schema, strict=True):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    shown_rows = result.slice(0, limit)
    for row in zip(*(python_values(column) for column in shown_rows.columns), strict=True):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    if limit < result.num_rows:  # the row count and timing go to standard error
        console.print(f"first {limit} of {result.num_rows:,} rows shown; use --format csv/tsv/json/parquet "
                      "--output FILE for all")
    return console.file.getvalue()
