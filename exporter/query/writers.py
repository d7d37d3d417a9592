"""Writing a query result to a byte stream as CSV, TSV, JSON, JSON lines or Parquet (no terminal code).

Maps come from Arrow as lists of pairs; JSON readers expect objects, and CSV has no nested values, so
those are written as JSON text.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError


def _converter(kind: pa.DataType) -> Callable[[Any], Any] | None:
    """How to turn one value of ``kind`` into what JSON readers expect: Arrow hands maps over as lists
    of pairs, and they are objects (an empty map too). None where values pass through as they are."""
    if pa.types.is_map(kind):
        key, item = _converter(kind.key_type), _converter(kind.item_type)
        return lambda v: {_apply(key, k): _apply(item, x) for k, x in v}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _converter(kind.value_type)
        return None if inner is None else (lambda v: [_apply(inner, x) for x in v])
    return None


def _apply(convert: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def python_values(column: pa.ChunkedArray | pa.Array) -> list:
    """A column's values as Python objects, maps as dicts."""
    convert = _converter(column.type)
    values = column.to_pylist()
    return values if convert is None else [_apply(convert, v) for v in values]


def json_text(value) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _rows(result: pa.Table) -> list[dict]:
    columns = [python_values(column) for column in result.columns]
    return [dict(zip(result.column_names, row, strict=True)) for row in zip(*columns, strict=True)]


def write(result: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write ``result`` to the binary stream ``out`` in ``fmt`` (one of FORMATS)."""
    if fmt == "parquet":
        pq.write_table(result, out, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(_csv_safe(result), out)
    elif fmt == "tsv":
        _write_tsv(result, out)
    elif fmt == "json":
        out.write(orjson.dumps(_rows(result), default=_json_default, option=orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "jsonl":
        for row in _rows(result):
            out.write(orjson.dumps(row, default=_json_default) + b"\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _nested_text(column: pa.ChunkedArray) -> pa.Array:
    """Maps and lists as JSON text, for the flat formats."""
    return pa.array([None if v is None else json_text(v) for v in python_values(column)], pa.string())


def _csv_safe(result: pa.Table) -> pa.Table:
    """CSV has no nested values: write maps and lists as JSON text."""
    columns = [_nested_text(c) if pa.types.is_nested(c.type) else c for c in result.columns]
    return pa.table(columns, names=result.column_names)


def _tsv_field(column: pa.ChunkedArray) -> pa.Array:
    """ClickHouse's TabSeparated text: backslash, tab and newline escaped, NULL as \\N, nested as JSON."""
    if pa.types.is_nested(column.type):
        text = _nested_text(column)
    else:
        text = pc.cast(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column, pa.string())
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = pc.replace_substring(text, raw, escaped)
    return pc.fill_null(text, "\\N")


def _write_tsv(result: pa.Table, out: BinaryIO) -> None:
    """A header line, then one line per row (a header even when the result is empty)."""
    header = pa.array(result.column_names, pa.string())
    out.write(("\t".join(pc.replace_substring(header, "\t", "\\t").to_pylist()) + "\n").encode())
    if result.num_rows == 0:
        return
    fields = [_tsv_field(column) for column in result.columns]
    lines = pc.binary_join_element_wise(*fields, "\t") if len(fields) > 1 else fields[0]
    out.write(("\n".join(lines.to_pylist()) + "\n").encode())
