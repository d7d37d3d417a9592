"""The producer side of the contract: how a job worker appends a finished attempt to the stream.

    XADD completed_jobs * data <JSON object with the ArchiveRecord names>

Times may be datetimes (naive ones are taken as UTC), RFC 3339 strings, or epoch milliseconds.
`exporter.seed` writes synthetic completions in this form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
import redis

from exporter.record import CURRENT_SCHEMA_VERSION, FIELD_NAMES, OUTCOMES

STREAM_KEY = "completed_jobs"


def encode_completion(record: Mapping[str, object]) -> bytes:
    """The ``data`` field for one finished attempt; rejects what the archive would refuse anyway."""
    unknown = set(record) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    for name in ("job_id", "queue", "outcome", "enqueue_time"):
        if not record.get(name):
            raise ValueError(f"a completion needs {name}")
    if record["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {record['outcome']!r}")
    body = dict(record)
    body.setdefault("schema_version", CURRENT_SCHEMA_VERSION)
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def append_completion(client: redis.Redis, record: Mapping[str, object], stream_key: str = STREAM_KEY) -> str:
    """Append one finished job attempt; returns the stream entry id."""
    entry_id = client.xadd(stream_key, {"data": encode_completion(record)})
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def append_completions(client: redis.Redis, records: Iterable[Mapping[str, object]],
                       stream_key: str = STREAM_KEY, chunk: int = 1000) -> int:
    """Append many attempts with pipelined XADDs; returns how many were appended."""
    count = 0
    pipe = client.pipeline(transaction=False)
    for record in records:
        pipe.xadd(stream_key, {"data": encode_completion(record)})
        count += 1
        if count % chunk == 0:
            pipe.execute()
    pipe.execute()
    return count

