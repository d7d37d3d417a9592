"""Decode raw stream entries into an Arrow table of RECORD_SCHEMA, with a reason for every reject.

The fast path hands the batch's ``data`` JSON values to ``pyarrow.json`` in one buffer and converts
columns with ``pyarrow.compute``. Batches the fast path cannot take (flat entries, the Go library's
``job_data`` entries, a field whose JSON type changes within the batch, bad JSON) go through a per-record
path that yields the same table and names the fault of each bad entry. Either way the result is
identical for the same entries. Nothing an entry holds is dropped: a field without a column becomes
the tag ``extra.<name>`` (``go.<key>`` on the Go form), after the producer's own tags, which win.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from exporter.batch import Body, body_size
from exporter.record import (
    CURRENT_SCHEMA_VERSION,
    FIELD_NAMES,
    GO_FIELDS,
    GO_INDEX_FIELDS,
    GO_OUTCOMES,
    GO_SCHEMA_VERSIONS,
    GO_TAG_PREFIX,
    GO_ZERO_TIME,
    INT_FIELDS,
    NULLABLE_STRING_FIELDS,
    OUTCOMES,
    RECORD_SCHEMA,
    STRING_FIELDS,
    TAGS,
    TIME_FIELDS,
    TIMESTAMP,
)

# Times are declared as strings so that pyarrow.json never infers them (its inference would accept
# times without a UTC offset). Epoch-millisecond numbers are quoted in the buffer first, so one batch may
# mix both forms and still take the fast path; quotes inside JSON strings are escaped, so only keys match.
_FAST_PARSE = pajson.ParseOptions(
    explicit_schema=pa.schema(
        [(name, pa.string()) for name in (*STRING_FIELDS, *NULLABLE_STRING_FIELDS, *TIME_FIELDS)]
        + [(name, pa.int64()) for name in INT_FIELDS]
    ),
    unexpected_field_behavior="infer",
)
# One pass for all three keys: ``_time"`` can only be followed by ``:`` where it ends a key (a quote
# inside a string is escaped). Every JSON number is quoted whole (``1.7328e12`` as JavaScript producers
# may send it): quoting only its digits would leave invalid JSON. The per-record path quotes the same
# way before parsing, so a number under any other ``*_time`` key (a tag, or a field kept as one) is
# kept as written on both paths.
_NUMERIC_TIME = re.compile(rb'(_time"\s*:\s*)(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')
_QUOTED = rb'\1"\2"'
# JSON parsed per call: a batch is decoded in slices of this size, so the parser's working memory
# (the joined buffer, its quoted copy and pyarrow's intermediate columns) stays small while the batch
# handed to the sinks stays large.
_PARSE_SLICE_BYTES = 4 * 1024 * 1024
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
_EPOCH_MS = r"^-?\d{1,15}$"  # read exactly, as integers
_EPOCH_NUMBER = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"  # any JSON number; those not above are read as doubles
_MAX_EPOCH_MS = 10**15  # about 31,700 years either side of 1970: past it, a number is not a time at all
_INTEGER = r"^\s*-?\d+\s*$"
_INT64_SAFE = r"^\s*-?\d{1,18}\s*$"  # digits an int64 always holds; more are out of every column's range
# Fields without a column are kept as the tag ``extra.<name>`` (the Go form's are ``go.<key>``). Of
# the fast path's inferred types these read back as the text the per-record path gives; any other
# (objects, arrays, naive times pyarrow infers as timestamps, in an extra or a tag) sends the slice to
# the per-record path.
EXTRA_TAG_PREFIX = "extra."
_FIELD_SET = frozenset(FIELD_NAMES)
_EXTRA_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_boolean, pa.types.is_float64, pa.types.is_null)
_MIN_TIME = pa.scalar(-2208988800 * 1_000_000, TIMESTAMP)  # 1900-01-01, DateTime64's floor
_MAX_TIME = pa.scalar(10413792000 * 1_000_000, TIMESTAMP)  # 2300-01-01, DateTime64's ceiling


@dataclass
class Decoded:
    """The good records of a batch and why each other entry was refused."""

    table: pa.Table
    rows: np.ndarray  # entry position (index into the batch's bodies) of each table row
    rejects: list[tuple[int, str]] = field(default_factory=list)


class _Faults:
    """Collects the first reason each row of a raw table is refused."""

    def __init__(self, rows: int) -> None:
        self.bad = np.zeros(rows, dtype=bool)
        self.reasons: dict[int, str] = {}

    def add(self, mask: pa.Array | np.ndarray, describe) -> None:
        mask = _to_numpy_mask(mask)
        new = mask & ~self.bad
        if new.any():
            for row in np.flatnonzero(new):
                self.reasons[int(row)] = describe(int(row))
            self.bad |= new


def _to_numpy_mask(mask) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def decode_bodies(bodies: list[Body], max_record_size: int) -> Decoded:
    """Decode a batch of entry bodies; those that cannot become records are returned as rejects."""
    rejects: list[tuple[int, str]] = []
    sizes = np.fromiter(map(body_size, bodies), dtype=np.int64, count=len(bodies))
    for pos in np.flatnonzero(sizes > max_record_size):
        rejects.append((int(pos), f"oversize: {sizes[pos]} bytes exceeds pipeline.max_record_size {max_record_size}"))
    fits = sizes <= max_record_size
    is_json = np.fromiter((type(body) is bytes for body in bodies), dtype=bool, count=len(bodies))
    positions = np.flatnonzero(is_json & fits)
    values = bodies if len(positions) == len(bodies) else [bodies[pos] for pos in positions]
    flat: list[tuple[int, list]] = []
    for pos in np.flatnonzero(~is_json & fits):  # the flat form: rare, so per entry
        if bodies[pos]:
            flat.append((int(pos), bodies[pos]))
        else:
            rejects.append((int(pos), "empty entry: no fields"))

    parts = [_decode_json_values(values[start:end], positions[start:end])
             for start, end in _slices(sizes[positions], _PARSE_SLICE_BYTES)]
    if flat:
        parts.append(_decode_records(*_flat_records(flat)))
    for part in parts:
        rejects.extend(part.rejects)
    tables = [p.table for p in parts if p.table.num_rows]
    table = pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()
    rows = np.concatenate([p.rows for p in parts if p.table.num_rows] or [np.zeros(0, dtype=np.int64)])
    rejects.sort()
    return Decoded(table, rows, rejects)


def _slices(sizes: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` runs of items whose sizes add up to about ``limit`` each."""
    if not len(sizes):
        return []
    group = (np.cumsum(sizes) - sizes) // max(1, limit)
    edges = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(sizes)]
    return list(pairwise(edges))


def _decode_json_values(values: list[bytes], positions: np.ndarray) -> Decoded:
    buffer = b"\n".join(values)
    if buffer.count(b"\n") == len(values) - 1:
        buffer = _NUMERIC_TIME.sub(_QUOTED, buffer)
        try:
            raw = pajson.read_json(io.BytesIO(buffer), parse_options=_FAST_PARSE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raw = None
        if raw is not None and raw.num_rows == len(values) and _extras_readable(raw):
            return _normalize(raw, positions, _extra_columns(raw))
    records, rejects = [], []
    for pos, value in zip(positions.tolist(), values, strict=True):
        try:
            obj = orjson.loads(_NUMERIC_TIME.sub(_QUOTED, value))
        except orjson.JSONDecodeError as exc:
            rejects.append((pos, f"invalid JSON in data field: {exc}"))
            continue
        if not isinstance(obj, dict):
            rejects.append((pos, f"data field must hold a JSON object, got {type(obj).__name__}"))
            continue
        records.append((pos, obj))
    return _decode_records(records, rejects)


def _flat_records(flat: list[tuple[int, list]]) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """Entries that are not a lone ``data`` field, as objects with our record's names, or why not."""
    records, rejects = [], []
    for pos, fields in flat:
        names = fields[::2]
        if b"data" in names:  # a lone data field never reaches here (batch.bodies_of keeps it as bytes)
            others = ", ".join(n.decode(errors="replace") for n in names if n != b"data")
            rejects.append((pos, f"entry has a 'data' field and other fields ({others}): expected 'data' alone, "
                                 "the flat form, or the Go form (job_data)"))
            continue
        if b"job_data" in names:
            try:
                records.append((pos, _go_record(fields)))
            except _Refused as exc:
                rejects.append((pos, str(exc)))
            continue
        try:
            obj = {k.decode(): v.decode() for k, v in zip(fields[::2], fields[1::2], strict=True)}
        except UnicodeDecodeError:
            rejects.append((pos, "flat entry is not valid UTF-8"))
            continue
        if "tags" in obj:
            try:
                obj["tags"] = orjson.loads(obj["tags"]) if obj["tags"] else {}
            except orjson.JSONDecodeError:
                rejects.append((pos, "tags field of a flat entry must hold a JSON object"))
                continue
        records.append((pos, obj))
    return records, rejects


class _Refused(ValueError):
    """An entry that cannot become a record; the message is its dead-letter reason."""


def _go_record(fields: list[bytes]) -> dict:
    """The Go library's entry (``job_data`` JSON beside index fields) as an object with our record's names.

    Per record, not vectorized: the form is not our hot path, and base64, zero times and the tags it
    keeps are simplest per object. The JSON is the record; the stream's job_id/queue/outcome only
    index it, so a disagreeing one (or any other stream field) is kept as the tag ``go.stream.<name>``.
    Nothing without a column is dropped: it becomes a ``go.<key>`` tag, unless the producer's own tags
    already use that key (the producer's tag wins).
    """
    stream = dict(zip(fields[::2], fields[1::2], strict=True))
    try:
        job = orjson.loads(stream.pop(b"job_data"))
    except orjson.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON in job_data field: {exc}") from None
    if not isinstance(job, dict):
        raise _Refused(f"job_data field must hold a JSON object, got {type(job).__name__}")
    index = {name: job.get(name) for name in GO_INDEX_FIELDS}  # as the JSON has them, to compare
    record = {ours: job.pop(theirs) for theirs, ours in GO_FIELDS.items() if theirs in job}
    if record.get("enqueue_time") == GO_ZERO_TIME:
        raise _Refused(f"enqueued_at is Go's zero time {GO_ZERO_TIME} (unset), but the archive needs an enqueue time")
    for name in ("start_time", "end_time"):
        if record.get(name) == GO_ZERO_TIME:
            record[name] = None
    kept: dict[str, str] = {}  # the go.* tags
    for key, value in job.items():  # job_type, processing_time_ms, archived_at, schema_version, and any new key
        if value is not None and value != GO_ZERO_TIME:
            kept[GO_TAG_PREFIX + key] = orjson.dumps(value).decode() if isinstance(value, dict | list) \
                else _scalar_text(value)
    version = job.get("schema_version")
    if type(version) is int:
        if version not in GO_SCHEMA_VERSIONS:
            known = ", ".join("0 = unset" if v == 0 else str(v) for v in GO_SCHEMA_VERSIONS)
            raise _Refused(f"unknown schema_version {version} (the Go form knows {known})")
        record["schema_version"] = GO_SCHEMA_VERSIONS[version]
    elif isinstance(version, str):
        record["schema_version"] = version  # not what Go writes; the schema registry judges it
    elif version is not None:
        raise _Refused(f"schema_version of the Go form must be an integer, got {version!r}")
    record["outcome"] = GO_OUTCOMES.get(record.get("outcome"), record.get("outcome"))
    if record.get("payload_sample") is not None:
        record["payload_sample"], encoding = _go_snapshot(record["payload_sample"])
        if encoding:
            kept[GO_TAG_PREFIX + "payload_encoding"] = encoding
    for name, value in stream.items():
        try:
            name, value = name.decode(), value.decode()
        except UnicodeDecodeError:
            raise _Refused(f"stream field {name!r} of a Go-form entry is not valid UTF-8") from None
        if not (name in GO_INDEX_FIELDS and value == index[name]):
            kept[f"{GO_TAG_PREFIX}stream.{name}"] = value
    tags = {} if record.get("tags") is None else record["tags"]
    if not isinstance(tags, dict):
        raise _Refused(f"field 'tags' must be a JSON object of strings, got {type(tags).__name__}")
    record["tags"] = {**tags, **{key: value for key, value in kept.items() if key not in tags}}
    return record


def _go_snapshot(text) -> tuple[str, str | None]:
    """Go's base64 ``payload_snapshot`` as text, and the tag value naming its encoding when kept as base64.

    Bytes that are not UTF-8 cannot become text without loss, so the base64 text is kept unchanged.
    """
    if not isinstance(text, str):
        raise _Refused(f"payload_snapshot is not base64 text, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _Refused(f"payload_snapshot is not base64: {exc}") from None
    try:
        return raw.decode(), None
    except UnicodeDecodeError:
        return text, "base64"


def _scalar_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError


def _decode_records(records: list[tuple[int, dict]], rejects: list[tuple[int, str]]) -> Decoded:
    """Per-record path: coerce each object's fields to scalars the vectorized normalizer accepts."""
    columns: dict[str, list] = {name: [] for name in FIELD_NAMES}
    extras: list[list[tuple[str, str]]] = []
    positions: list[int] = []
    for pos, obj in records:
        row: dict[str, object] = {}
        try:
            for name in FIELD_NAMES:
                value = obj.get(name)
                if name == "tags":
                    row[name] = _tags_items(value)
                elif name == "payload_sample" and isinstance(value, dict | list):
                    row[name] = orjson.dumps(value).decode()
                else:
                    row[name] = _scalar_text(value)
        except TypeError:
            rejects.append((pos, f"field '{name}' has a nested JSON value where a scalar is expected"))
            continue
        positions.append(pos)
        for name in FIELD_NAMES:
            columns[name].append(row[name])
        extras.append(_extra_items(obj))
    arrays = {
        name: pa.array(columns[name], type=TAGS if name == "tags" else pa.string()) for name in FIELD_NAMES
    }
    extra_tags = pa.array(extras, TAGS) if any(extras) else None
    decoded = _normalize(pa.table(arrays), np.asarray(positions, dtype=np.int64), extra_tags)
    decoded.rejects.extend(rejects)
    return decoded


def _tags_items(value) -> list[tuple[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError
    return [(str(k), "" if v is None else _tag_text(v)) for k, v in value.items()]


def _extra_items(obj: dict) -> list[tuple[str, str]]:
    """The object's keys without a column, as ``extra.<name>`` tags in name order; nulls are no value."""
    return [(EXTRA_TAG_PREFIX + key, _tag_text(obj[key])) for key in sorted(obj.keys() - _FIELD_SET)
            if obj[key] is not None]


def _tag_text(value) -> str:
    """A JSON value as tag text, the same on both paths: numbers as pyarrow writes its inferred int64 and
    double columns (a double without a fraction has none: ``2.0`` is ``2``), objects and arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return str(value)
    if isinstance(value, int | float):  # an integer past int64 is read as a double by pyarrow.json too
        return pc.cast(pa.scalar(float(value)), pa.string()).as_py()
    return orjson.dumps(value).decode()


def _normalize(raw: pa.Table, positions: np.ndarray, extras: pa.MapArray | None = None) -> Decoded:
    """Turn loosely typed raw columns into RECORD_SCHEMA, refusing rows whose values cannot fit;
    ``extras`` (the fields without a column, as tags) follow each row's own tags."""
    n = raw.num_rows
    faults = _Faults(n)
    out: dict[str, pa.Array] = {}
    for name in FIELD_NAMES:
        col = raw.column(name).combine_chunks() if name in raw.column_names else pa.nulls(n)
        if name in INT_FIELDS:
            out[name] = _integers(col, name, faults)
        elif name in TIME_FIELDS:
            out[name] = _times(col, name, faults)
        elif name == "tags":
            out[name] = _tags(col, faults) if extras is None else _merge_tags(_tags(col, faults), extras)
        else:
            out[name] = _strings(col, name, faults)

    job_id, queue = out["job_id"], out["queue"]
    faults.add(pc.equal(job_id, ""), lambda r: "missing job_id")
    faults.add(pc.equal(queue, ""), lambda r: "missing queue")
    faults.add(pc.is_null(out["enqueue_time"]), lambda r: "missing enqueue_time")
    outcome = out["outcome"]
    faults.add(
        pc.invert(pc.is_in(outcome, value_set=pa.array(OUTCOMES))),
        lambda r: f"unknown outcome {outcome[r].as_py()!r} (expected one of {', '.join(OUTCOMES)})",
    )
    start, end = out["start_time"], out["end_time"]
    faults.add(pc.less(end, start),  # one vectorized comparison: a row with either time unset passes
               lambda r: f"end_time {end[r].as_py().isoformat()} is before start_time {start[r].as_py().isoformat()}")
    out["schema_version"] = pc.if_else(
        pc.equal(out["schema_version"], ""), CURRENT_SCHEMA_VERSION, out["schema_version"]
    )
    table = pa.Table.from_arrays([out[name] for name in FIELD_NAMES], schema=RECORD_SCHEMA)
    rejects = [(int(positions[r]), reason) for r, reason in faults.reasons.items()]
    if faults.bad.any():
        keep = ~faults.bad
        table, positions = table.filter(pa.array(keep)), positions[keep]
    return Decoded(table, positions, rejects)


def _strings(col: pa.Array, name: str, faults: _Faults) -> pa.Array:
    if not pa.types.is_string(col.type):
        if pa.types.is_null(col.type):
            col = pa.nulls(len(col), pa.string())
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.string())
        else:
            faults.add(pc.is_valid(col), lambda r: f"field '{name}' must be a string, got {col.type}")
            col = pa.nulls(len(col), pa.string())
    return col if name in NULLABLE_STRING_FIELDS else pc.fill_null(col, "")


def _integers(col: pa.Array, name: str, faults: _Faults) -> pa.Array:
    lo, hi = INT_FIELDS[name]
    if pa.types.is_integer(col.type):
        values = pc.cast(col, pa.int64())
    elif pa.types.is_string(col.type):
        ok = pc.match_substring_regex(col, _INTEGER)
        faults.add(pc.and_(pc.is_valid(col), pc.invert(ok)),
                   lambda r: f"field '{name}' must be an integer, got {col[r].as_py()!r}")
        huge = pc.and_(ok, pc.invert(pc.match_substring_regex(col, _INT64_SAFE)))
        faults.add(huge, lambda r: f"field '{name}' out of range [{lo}, {hi}]: {col[r].as_py().strip()}")
        ok = pc.and_(ok, pc.invert(huge))
        values = pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, col, None)), pa.int64())
    elif pa.types.is_null(col.type):
        values = pa.nulls(len(col), pa.int64())
    else:
        faults.add(pc.is_valid(col), lambda r: f"field '{name}' must be an integer, got {col[r]}")
        values = pa.nulls(len(col), pa.int64())
    faults.add(pc.or_(pc.less(values, lo), pc.greater(values, hi)),
               lambda r: f"field '{name}' out of range [{lo}, {hi}]: {values[r].as_py()}")
    values = pc.if_else(pc.and_(pc.greater_equal(values, lo), pc.less_equal(values, hi)), values, 0)
    return pc.cast(pc.fill_null(values, 0), RECORD_SCHEMA.field(name).type)


def _times(col: pa.Array, name: str, faults: _Faults) -> pa.Array:
    if pa.types.is_integer(col.type):
        faults.add(pc.greater(pc.abs(col), _MAX_EPOCH_MS),
                   lambda r: f"field '{name}' epoch milliseconds out of range")
        col = pc.if_else(pc.less_equal(pc.abs(col), _MAX_EPOCH_MS), col, None)
        values = pc.cast(pc.cast(col, pa.timestamp("ms", tz="UTC")), TIMESTAMP)
    elif pa.types.is_string(col.type):
        epoch = pc.match_substring_regex(col, _EPOCH_MS)
        rfc = pc.match_substring_regex(col, _RFC3339)
        millis = pc.cast(pc.cast(pc.if_else(epoch, col, None), pa.int64()), pa.timestamp("ms", tz="UTC"))
        parsed = _parse_rfc3339(pc.if_else(rfc, col, None))
        values = pc.coalesce(pc.cast(millis, TIMESTAMP), parsed)
        unread = pc.and_(pc.is_valid(col), pc.is_null(values))
        if pc.any(unread).as_py():  # not the common case: look for numbers written as doubles
            values = pc.coalesce(values, _epoch_doubles(pc.if_else(unread, col, None), name, faults))
            unread = pc.and_(pc.is_valid(col), pc.is_null(values))
        faults.add(unread,
                   lambda r: f"field '{name}' is not an RFC 3339 time or epoch milliseconds: {col[r].as_py()!r}")
    elif pa.types.is_null(col.type):
        return pa.nulls(len(col), TIMESTAMP)
    else:
        faults.add(pc.is_valid(col), lambda r: f"field '{name}' must be a time string or epoch ms, got {col[r]}")
        return pa.nulls(len(col), TIMESTAMP)
    out_of_range = pc.or_(pc.less(values, _MIN_TIME), pc.greater_equal(values, _MAX_TIME))
    faults.add(out_of_range, lambda r: f"field '{name}' outside 1900..2299: {values[r]}")
    return pc.if_else(out_of_range, pa.scalar(None, TIMESTAMP), values)


def _epoch_doubles(col: pa.Array, name: str, faults: _Faults) -> pa.Array:
    """Epoch milliseconds written as a fraction, an exponent or past 15 digits (``1.7328e12``,
    ``1732800000123.5``), read as a double and rounded to the microsecond; null for any other text.

    A double holds every microsecond up to 2^53 us (the year 2255) exactly, so a whole number of
    milliseconds (``1732800000123.0``) reads as its integer would. Past ``_MAX_EPOCH_MS`` it is refused.
    """
    number = pc.match_substring_regex(col, _EPOCH_NUMBER)  # "NaN", "inf" and "Infinity" are not JSON numbers
    millis = pc.cast(pc.if_else(number, col, None), pa.float64())  # "1e400" reads as inf: out of range below
    fits = pc.less_equal(pc.abs(millis), float(_MAX_EPOCH_MS))
    faults.add(pc.invert(fits), lambda r: f"field '{name}' epoch milliseconds out of range: {millis[r].as_py()!r}")
    micros = pc.round(pc.multiply(pc.if_else(fits, millis, None), 1000.0))
    return pc.cast(pc.cast(micros, pa.int64()), TIMESTAMP)


def _parse_rfc3339(text: pa.Array) -> pa.Array:
    """Validated RFC 3339 text to microseconds; nanosecond digits are truncated, offsets applied."""
    try:  # nanoseconds parse every fraction the validation allows, but only within 1677..2262
        return pc.cast(pc.cast(text, pa.timestamp("ns", tz="UTC")), TIMESTAMP, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _cast_lenient(pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1"), TIMESTAMP)


def _cast_lenient(col: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast, turning values that do not parse into nulls instead of failing the whole array."""
    try:
        return pc.cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out = []
        for value in col.to_pylist():
            try:
                out.append(pc.cast(pa.array([value]), target)[0].as_py() if value is not None else None)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out.append(None)
        return pa.array(out, target)


def _tags(col: pa.Array, faults: _Faults) -> pa.Array:
    n = len(col)
    if col.type == TAGS:
        return pc.fill_null(col, pa.scalar([], TAGS)) if col.null_count else col
    if pa.types.is_null(col.type):
        return pa.MapArray.from_arrays(np.zeros(n + 1, dtype=np.int32), pa.array([], pa.string()),
                                       pa.array([], pa.string()))
    if not pa.types.is_struct(col.type):
        faults.add(pc.is_valid(col), lambda r: f"field 'tags' must be an object of strings, got {col.type}")
        return _tags(pa.nulls(n), faults)
    return _struct_to_map(col, faults)


def _struct_to_map(col: pa.StructArray, faults: _Faults) -> pa.Array:
    """pyarrow.json reads an object as a struct of every key seen; rebuild the per-row maps."""
    n = len(col)
    names, children = [], []
    row_valid = col.is_valid()
    for i in range(col.type.num_fields):
        child = col.field(i)
        if pa.types.is_null(child.type):
            child = pa.nulls(n, pa.string())
        elif not pa.types.is_string(child.type):
            if pa.types.is_nested(child.type):
                faults.add(pc.is_valid(child), lambda r: "field 'tags' values must be strings")
                child = pa.nulls(n, pa.string())
            else:
                child = pc.cast(child, pa.string())
        names.append(col.type.field(i).name)
        children.append(pc.if_else(row_valid, child, None) if col.null_count else child)
    return _map_of(names, children, n)


def _map_of(names: list[str], children: list[pa.Array], n: int) -> pa.MapArray:
    """Per-row maps from one string column per key: each row holds, in ``names`` order, the keys whose
    column has a value in that row."""
    present = np.zeros((len(names), n), dtype=bool)
    for i, child in enumerate(children):
        present[i] = child.is_valid().to_numpy(zero_copy_only=False)
    rows, keys = np.nonzero(present.T)  # row-major: each row's keys in field order
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    all_values = pa.concat_arrays(children) if children else pa.array([], pa.string())
    items = all_values.take(pa.array(keys * n + rows))
    return pa.MapArray.from_arrays(pa.array(offsets), pa.array(names, pa.string()).take(pa.array(keys)), items)


def _extras_readable(raw: pa.Table) -> bool:
    """Whether every type pyarrow.json inferred, for a key without a column or a tag, reads as the
    per-record path would write it (``_tag_text``). A naive time (``2024-01-15``) is inferred as a
    timestamp and would come back as other text (``2024-01-15 00:00:00``); nested tag values are refused
    on either path."""
    def readable(kind: pa.DataType) -> bool:
        return any(is_type(kind) for is_type in _EXTRA_TYPES)

    tags = raw.schema.field("tags").type if "tags" in raw.column_names else None
    tag_types = [child.type for child in tags] if tags is not None and pa.types.is_struct(tags) else []
    return (all(readable(raw.schema.field(name).type) for name in raw.column_names if name not in _FIELD_SET)
            and all(readable(kind) or pa.types.is_nested(kind) for kind in tag_types))


def _extra_columns(raw: pa.Table) -> pa.MapArray | None:
    """The raw table's columns without a record field, as per-row ``extra.<name>`` tags in name order."""
    names = sorted(name for name in raw.column_names if name not in _FIELD_SET)
    if not names:
        return None
    children = []
    for name in names:
        col = raw.column(name).combine_chunks()
        children.append(pa.nulls(len(col), pa.string()) if pa.types.is_null(col.type) else pc.cast(col, pa.string()))
    return _map_of([EXTRA_TAG_PREFIX + name for name in names], children, raw.num_rows)


def _merge_tags(tags: pa.MapArray, extras: pa.MapArray) -> pa.MapArray:
    """Each row's own tags, then its extras whose key those tags do not hold (the producer's tag wins)."""
    own_keys, own_items, own_rows = _entries(tags)
    extra_keys, extra_items, extra_rows = _entries(extras)
    if not len(extra_rows):
        return tags
    n, own = len(tags), len(own_rows)
    keys, items = pa.concat_arrays([own_keys, extra_keys]), pa.concat_arrays([own_items, extra_items])
    codes = pc.dictionary_encode(keys).indices.to_numpy().astype(np.int64)
    width = int(codes.max()) + 1  # (row, key) pairs as one integer each
    kept = ~np.isin(extra_rows * width + codes[own:], own_rows * width + codes[:own])
    rows = np.concatenate([own_rows, extra_rows[kept]])
    take = pa.array(np.concatenate([np.arange(own), own + np.flatnonzero(kept)])[np.argsort(rows, kind="stable")])
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys.take(take), items.take(take))


def _entries(maps: pa.MapArray) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """A map column's keys and items, with the row each belongs to (the offsets index the whole children)."""
    offsets = maps.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])
    rows = np.repeat(np.arange(len(maps)), np.diff(offsets))
    return maps.keys.slice(start, end - start), maps.items.slice(start, end - start), rows
