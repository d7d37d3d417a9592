"""Rendering query results for the terminal: a rich table, or any of the engine's file formats.

Text from the archive is data, never terminal input: what reaches the terminal passes ``visible`` and is
handed to rich as ``Text`` (never markup), so an escape sequence or ``[reverse]`` in an ``error_msg``
shows as the characters it is.
"""

from __future__ import annotations

import io
import re
import sys
import unicodedata
from datetime import date, datetime, time
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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


_ODD = re.compile(r"[^\t\n\x20-\x7e]")  # candidates: the check is by Unicode category
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    if unicodedata.category(char) not in _HIDDEN:
        return char
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def visible(text: str) -> str:
    """``text`` safe to show on a terminal: every control or format character (C0 but tab and newline,
    DEL, C1, bidi overrides and isolates, zero-width and other format characters, line and paragraph
    separators) becomes its Python escape, ``\\x1b``, ``\\x9b``, ``\\u202e``, so an escape sequence held
    in the data shows as text instead of driving the terminal; bytes that are not UTF-8 show the same way
    (``\\xff``). Backslashes already in the text are left as they are: this is for reading, and the export
    formats keep the exact bytes."""
    return text if text.isprintable() else _ODD.sub(_escape, text)


def visible_line(text: str) -> str:
    """``text`` as ``visible`` shows it, on one line: runs of spaces, tabs and newlines become one space
    (a reason or a name held in the data cannot start a line that looks like the tool's own)."""
    return _SPACES.sub(" ", visible(text)).strip()


_SPACES = re.compile(r"[ \t\n]+")


def visible_json(value: Any) -> bytes:
    """``value`` as indented JSON that is safe on a terminal and still the same JSON (``writers.terminal_safe``:
    what JSON leaves raw that drives or rewrites a terminal becomes ``\\uXXXX``). Bytes become text, a byte
    that is not UTF-8 as ``\\xff`` (orjson refuses bytes)."""
    return writers.terminal_safe(orjson.dumps(value, default=_json_default, option=orjson.OPT_INDENT_2))


def _json_default(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):  # FixedString, or bytes no type of ours names
        return visible(value.decode("utf-8", "backslashreplace"))
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, dict | list | orjson.Fragment):
        return visible(writers.plain_text(value))
    return visible(str(value))


def table_text(result: pa.Table, limit: int = 1000) -> str:
    width = None if sys.stdout.isatty() else 200
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    table = Table(show_edge=True, header_style="bold")
    for name, field in zip(result.column_names, result.schema, strict=True):
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        table.add_column(Text(visible(name)), justify="right" if numeric else "left", overflow="fold")
    shown_rows = result.slice(0, limit)
    columns = [writers.json_values(column, invalid="backslashreplace") for column in shown_rows.columns]
    for row in zip(*columns, strict=True):
        table.add_row(*(Text(_cell(v)) for v in row))
    console.print(table)
    if limit < result.num_rows:  # the row count and timing go to standard error
        console.print(f"first {limit} of {result.num_rows:,} rows shown; use --format csv/tsv/json/parquet "
                      "--output FILE for all")
    return console.file.getvalue()


_UNSAFE = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}]"  # RE2's spelling of what ``visible`` escapes


def visible_table(table: pa.Table) -> pa.Table:
    """``table`` as the dashboard's grid may show it: the columns it would show as the text they hold
    (text, JSON, Variant) through ``visible``, and its names too, escaped for markup as well (the grid
    reads a column's label as markup). The grid shows every other value by its repr, which escapes the
    same characters."""
    return pa.Table.from_arrays([_visible_column(c) for c in table.columns],
                                names=[escape(visible(name)) for name in table.column_names])


def _visible_column(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    kind = column.type
    if pa.types.is_union(kind):
        return pa.array([None if v is None else visible(writers.plain_text(v)) for v in writers.json_values(column)],
                        pa.string())
    if writers.is_json(kind):
        column = pa.chunked_array([chunk.storage for chunk in column.chunks], kind.storage_type)
    elif pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    try:
        column.validate(full=True)  # UTF-8
        if not pc.any(pc.match_substring_regex(column, _UNSAFE)).as_py():
            return column
    except pa.ArrowInvalid:
        pass
    values = python_values(column, invalid="backslashreplace")
    return pa.array([None if v is None else visible(v) for v in values], pa.string())
