"""Writing a query result to a byte stream as CSV, TSV, JSON, JSON lines or Parquet (no terminal code).

Every column type the engine hands over is written so that it reads back as its value:

- maps come from Arrow as lists of pairs; JSON readers expect objects, and CSV and TSV have no nested
  values, so those (and lists and tuples) are written as JSON text;
- a JSON or Dynamic column is JSON text from the engine: the value itself in JSON, its text elsewhere
  (a string as the string, unquoted);
- a Variant (an Arrow union, which CSV and Parquet cannot hold) is its member's value in JSON, its text
  in CSV, TSV and Parquet; UUIDs are their canonical text where the format has no UUID of its own;
- text and bytes are written as they are (CSV, TSV, Parquet), even bytes that are not UTF-8; JSON must
  be UTF-8, so there such a byte becomes U+FFFD, and a character that drives or rewrites a terminal
  (DEL, C1 controls, bidi controls, zero-width and other format characters) is written as its ``\\uXXXX``
  escape, the same JSON value, since JSON goes to terminals as often as to files.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from exporter.values import Converter, python_values

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError


# JSON escapes C0 itself; these it leaves raw: every other control, format, line or paragraph separator
# character (Unicode categories Cc, Cf, Zl, Zp; a test checks the list against the categories), as
# ranges, so that the scan stays one regex pass over the text.
_HIDDEN = re.compile("[\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
                     "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
                     "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f]")


def _escaped(found: re.Match[str]) -> str:
    point = ord(found.group())
    if point < 0x10000:
        return f"\\u{point:04x}"
    point -= 0x10000  # JSON writes a character past the BMP as its UTF-16 surrogate pair
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


def terminal_safe(data: bytes) -> bytes:
    """JSON ``data`` with every character in ``_HIDDEN`` written as its escape: the same JSON value."""
    if data.isascii() and b"\x7f" not in data:
        return data
    return _HIDDEN.sub(_escaped, data.decode()).encode()


def json_text(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def is_json(kind: pa.DataType) -> bool:
    """A JSON or Dynamic column: the engine hands it over as JSON text (Arrow's ``arrow.json``)."""
    return isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.json"


def _embedded(kind: pa.DataType) -> Converter:
    return orjson.Fragment if is_json(kind) else None


def json_values(column: pa.Array | pa.ChunkedArray, invalid: str = "replace") -> list:
    """A column's values for JSON text: as ``python_values``, with a JSON column's text embedded as the
    JSON it is (an ``orjson.Fragment``), not as a string holding it."""
    return python_values(column, _embedded, invalid)


def plain_text(value: Any) -> str:
    """A value as one field of text: a string as it is, anything else as its JSON text, unquoted when
    that is a JSON string (a date, a UUID)."""
    if isinstance(value, str):
        return value
    text = json_text(value)
    return orjson.loads(text) if text.startswith('"') else text


def _rows(batch: pa.RecordBatch) -> list[dict]:
    columns = [json_values(column) for column in batch.columns]
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
    """Parquet holds every type but a union and an empty tuple: a column holding one is written as text."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._text = [_unstorable(f.type) for f in schema]
        stored = [pa.field(f.name, pa.string()) if text else f for f, text in zip(schema, self._text, strict=True)]
        self._schema = pa.schema(stored, schema.metadata)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [_flat(c) if text else c for c, text in zip(batch.columns, self._text, strict=True)]
        self._writer.write_batch(pa.record_batch(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


class _Csv:
    """CSV has no nested values: maps, lists and tuples are written as JSON text (see ``_flat``)."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._schema = pa.schema([pa.field(f.name, _flat(pa.nulls(0, f.type)).type) for f in schema])
        self._writer = pacsv.CSVWriter(out, self._schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(pa.record_batch([_flat(c) for c in batch.columns], schema=self._schema))

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
        self._out.write(b"\n".join(lines.cast(pa.binary()).to_pylist()) + b"\n")  # bytes: not decoded

    def close(self) -> None:
        pass


class _JsonLines:
    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._out = out

    def write(self, batch: pa.RecordBatch) -> None:
        self._out.write(terminal_safe(b"".join(orjson.dumps(row, default=_json_default) + b"\n"
                                               for row in _rows(batch))))

    def close(self) -> None:
        pass


class _Json:
    """One JSON array of row objects, written a batch at a time."""

    def __init__(self, schema: pa.Schema, out: BinaryIO) -> None:
        self._out, self._first = out, True
        out.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        rows = [orjson.dumps(row, default=_json_default) for row in _rows(batch)]
        self._out.write((b"\n" if self._first else b",\n") + terminal_safe(b",\n".join(rows)))
        self._first = False

    def close(self) -> None:
        self._out.write(b"]\n" if self._first else b"\n]\n")


_SINKS = {"parquet": _Parquet, "csv": _Csv, "tsv": _Tsv, "jsonl": _JsonLines, "json": _Json}


def _flat(column: pa.Array) -> pa.Array:
    """A column as a flat format (CSV, TSV) can hold it: nested values as JSON text; a Variant, a UUID,
    a JSON or Dynamic value or any other extension as its text (``plain_text``); bytes as they are; the
    rest unchanged."""
    kind = column.type
    if is_json(kind) and not pc.any(pc.starts_with(column.storage, '"')).as_py():
        return column.storage  # objects, arrays, numbers: the engine's JSON text is the field
    if pa.types.is_dictionary(kind):
        return _flat(column.dictionary_decode())
    if pa.types.is_union(kind) or isinstance(kind, pa.BaseExtensionType):
        return pa.array([None if v is None else plain_text(v) for v in json_values(column)], pa.string())
    if pa.types.is_nested(kind):
        return pa.array([None if v is None else json_text(v) for v in json_values(column)], pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return column.cast(pa.binary()).view(pa.string())  # the bytes as they are, UTF-8 or not
    return column


def _unstorable(kind: pa.DataType) -> bool:
    """Whether Parquet cannot hold ``kind``: a union, or a struct of no fields (the empty tuple), anywhere."""
    if pa.types.is_union(kind) or (pa.types.is_struct(kind) and kind.num_fields == 0):
        return True
    if pa.types.is_map(kind):
        return _unstorable(kind.key_type) or _unstorable(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _unstorable(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_unstorable(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _tsv_field(column: pa.Array) -> pa.Array:
    text = pc.cast(_flat(column), pa.string())
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
