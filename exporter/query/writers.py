"""Writing a query result to a byte stream as CSV, TSV, JSON, JSON lines or Parquet (no terminal code).

Maps come from Arrow as lists of pairs; JSON readers expect objects, and CSV has no nested values, so
those are written as JSON text.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from exporter.values import python_values

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError


def json_text(value) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _rows(batch: pa.RecordBatch) -> list[dict]:
    columns = [python_values(column) for column in batch.columns]
    return [dict(zip(batch.schema.names, row, strict=True)) for row in zip(*columns, strict=True)]


def write(result: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write ``result`` to the binary stream ``out`` in ``fmt`` (one of FORMATS)."""
    write_batches(pa.RecordBatchReader.from_batches(result.schema, result.to_batches()), fmt, out)


def write_batches(reader: pa.RecordBatchReader, fmt: str, out: BinaryIO, limit: int | None = None) -> tuple[int, bool]:
    """Write the reader's batches to ``out`` as they arrive, so no result is held whole; at most ``limit``
    rows. Returns the rows written and whether there were more. A header is written even for no rows."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    sink = _SINKS[fmt](reader.schema, out)
    written, more = 0, False
    for batch in reader:
        if limit is not None and written + batch.num_rows > limit:
            batch, more = batch.slice(0, limit - written), True
        if batch.num_rows:
            sink.write(batch)
            written += batch.num_rows
        if more:
            break
    sink.close()
    return written, more


class _Parquet:
    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._writer = pq.ParquetWriter(out, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class _Csv:
    """CSV has no nested values: maps and lists are written as JSON text."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        flat = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_nested(f.type) else f for f in schema])
        self._writer = pacsv.CSVWriter(out, flat)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [_nested_text(c) if pa.types.is_nested(c.type) else c for c in batch.columns]
        self._writer.write_batch(pa.record_batch(columns, names=batch.schema.names))

    def close(self) -> None:
        self._writer.close()


class _Tsv:
    """ClickHouse's TabSeparated text: backslash, tab and newline escaped, NULL as \\N, nested as JSON."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._out = out
        header = pc.replace_substring(pa.array(schema.names, pa.string()), "\t", "\\t")
        out.write(("\t".join(header.to_pylist()) + "\n").encode())

    def write(self, batch: pa.RecordBatch) -> None:
        fields = [_tsv_field(column) for column in batch.columns]
        lines = pc.binary_join_element_wise(*fields, "\t") if len(fields) > 1 else fields[0]
        self._out.write(("\n".join(lines.to_pylist()) + "\n").encode())

    def close(self) -> None:
        pass


class _JsonLines:
    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._out = out

    def write(self, batch: pa.RecordBatch) -> None:
        self._out.write(b"".join(orjson.dumps(row, default=_json_default) + b"\n" for row in _rows(batch)))

    def close(self) -> None:
        pass


class _Json:
    """One JSON array of row objects, written a batch at a time."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._out, self._first = out, True
        out.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        rows = [orjson.dumps(row, default=_json_default) for row in _rows(batch)]
        self._out.write((b"\n" if self._first else b",\n") + b",\n".join(rows))
        self._first = False

    def close(self) -> None:
        self._out.write(b"]\n" if self._first else b"\n]\n")


_SINKS = {"parquet": _Parquet, "csv": _Csv, "tsv": _Tsv, "jsonl": _JsonLines, "json": _Json}


def _nested_text(column: pa.Array) -> pa.Array:
    """Maps and lists as JSON text, for the flat formats."""
    return pa.array([None if v is None else json_text(v) for v in python_values(column)], pa.string())


def _tsv_field(column: pa.Array) -> pa.Array:
    text = _nested_text(column) if pa.types.is_nested(column.type) else pc.cast(column, pa.string())
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = pc.replace_substring(text, raw, escaped)
    return pc.fill_null(text, "\\N")


@contextlib.contextmanager
def whole_file(path: str | Path) -> Iterator[BinaryIO]:
    """``path`` written whole or not at all: the rows go to a private temporary file beside it, renamed
    into place once the export finished (an export holds job data: owner-only). Raises OSError."""
    target = Path(path)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            yield out
        part.replace(target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
