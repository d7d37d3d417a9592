"""One job's every event, wherever it is: not yet archived in the Redis stream, refused in the DLQ, or
archived (``jobs``: warm and cold).

Only the stream's unarchived tail is scanned (after the archived mark): everything before it is in the
archive already, and scanning a week of stream for one id would read gigabytes. Entries are matched on
their raw bytes first and decoded only when they hold the id.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import pyarrow as pa
import redis

from exporter.batch import bodies_of
from exporter.dead_letters import parse
from exporter.decode import decode_bodies
from exporter.engine.sql import sql_string
from exporter.query.layer import QueryLayer
from exporter.query.run import run_query
from exporter.stream import mark_key

COLUMNS = ["found_in", "entry_id", "job_id", "queue", "enqueue_time", "outcome", "retries", "error_type",
           "error_msg", "worker_id", "trace_id", "reason"]
_CHUNK = 5000


def find_job(queries: QueryLayer, client: redis.Redis, stream_key: str, group: str, needle: str) -> pa.Table:
    """Rows for every event whose job_id or trace_id is ``needle``, oldest first within each place."""
    rows = _in_stream(client, stream_key, mark_key(stream_key, group), needle)
    rows += _in_dead_letters(client, f"{stream_key}:dlq", needle)
    archived = run_query(queries, f"SELECT job_id, queue, enqueue_time, outcome, retries, error_type, error_msg, "
                                  f"worker_id, trace_id FROM jobs WHERE job_id = {sql_string(needle)} "
                                  f"OR trace_id = {sql_string(needle)} ORDER BY enqueue_time")
    rows += [{"found_in": "archive", **row} for row in archived.to_pylist()]
    # As text: the places hold the same fields in different forms (a refused entry's are its raw JSON).
    return pa.table({c: pa.array([_text(row.get(c)) for row in rows], pa.string()) for c in COLUMNS})


def _text(value) -> str | None:
    if value is None:
        return None
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def _scan(client: redis.Redis, key: str, start: str, needle: bytes):
    """(entry id, fields) of every entry from ``start`` whose raw fields contain ``needle``."""
    while True:
        entries = client.xrange(key, min=start, count=_CHUNK)
        for entry_id, fields in entries:
            if any(needle in value for value in fields.values()):
                yield entry_id, fields
        if len(entries) < _CHUNK:
            return
        start = "(" + entries[-1][0].decode()


def _in_stream(client: redis.Redis, key: str, mark_key: str, needle: str) -> list[dict]:
    mark = client.get(mark_key)
    found = list(_scan(client, key, f"({mark.decode()}" if mark else "-", needle.encode()))
    if not found:
        return []
    entries = [[entry_id, [x for pair in fields.items() for x in pair]] for entry_id, fields in found]
    decoded = decode_bodies(bodies_of(entries), max_record_size=1 << 40)
    rows = []
    for position, record in zip(decoded.rows.tolist(), decoded.table.to_pylist(), strict=True):
        if needle in (record["job_id"], record["trace_id"]):
            rows.append({"found_in": "stream (not yet archived)", "entry_id": entries[position][0].decode(),
                         **record})
    return rows


def _in_dead_letters(client: redis.Redis, key: str, needle: str) -> list[dict]:
    """The dead letters holding ``needle``: the record their entry decodes to, or what its JSON says, or
    (refused before that) the entry itself on one line, any byte of it as text (``dead_letters.text``)."""
    rows = []
    for entry_id, fields in _scan(client, key, "-", needle.encode()):
        letter = parse(entry_id, fields)
        record = {}
        body = bodies_of([[entry_id, [x for pair in letter.fields.items() for x in pair]]])[0]
        decoded = decode_bodies([body], max_record_size=1 << 40)
        if decoded.table.num_rows:
            record = decoded.table.to_pylist()[0]
        reason = letter.reason
        if not record:  # refused by the decoder: what its JSON says, as text, or the raw entry
            record = _as_text(body)
            if not record:
                reason += " | entry: " + letter.preview(200)
        rows.append({"found_in": "dead-letter stream", "entry_id": letter.id, **record, "reason": reason})
    return rows


def _as_text(body) -> dict:
    """The fields a refused ``data`` entry's JSON holds, as text (it did not pass as a record)."""
    try:
        data = orjson.loads(body) if isinstance(body, bytes) else None
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {c: str(data[c]) for c in COLUMNS if data.get(c) is not None}
