"""The archive record: field names of the producer contract and the Arrow schema both tiers share.

A decoded batch is an Arrow table with ``RECORD_SCHEMA``: times in microseconds UTC (the Parquet
tier keeps microseconds, the ClickHouse tier ``DateTime64(3)`` keeps milliseconds).
"""

from __future__ import annotations

import pyarrow as pa

OUTCOMES = ("success", "failed", "timeout", "cancelled", "retry")
CURRENT_SCHEMA_VERSION = "1.0.0"

TIMESTAMP = pa.timestamp("us", tz="UTC")
TAGS = pa.map_(pa.string(), pa.string())

RECORD_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("queue", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("priority", pa.int8(), nullable=False),
        pa.field("enqueue_time", TIMESTAMP, nullable=False),
        pa.field("start_time", TIMESTAMP),
        pa.field("end_time", TIMESTAMP),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("retries", pa.uint16(), nullable=False),
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("error_msg", pa.string(), nullable=False),
        pa.field("worker_id", pa.string(), nullable=False),
        pa.field("worker_version", pa.string(), nullable=False),
        pa.field("payload_size", pa.uint32(), nullable=False),
        pa.field("payload_hash", pa.string(), nullable=False),
        pa.field("payload_sample", pa.string()),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("correlation_id", pa.string(), nullable=False),
        pa.field("tags", TAGS, nullable=False),
        pa.field("schema_version", pa.string(), nullable=False),
    ]
)

FIELD_NAMES = tuple(RECORD_SCHEMA.names)
REQUIRED_FIELDS = ("job_id", "queue", "outcome", "enqueue_time")
TIME_FIELDS = ("enqueue_time", "start_time", "end_time")
INT_FIELDS = {"priority": (-128, 127), "retries": (0, 65535), "payload_size": (0, 2**32 - 1)}
NULLABLE_STRING_FIELDS = ("payload_sample",)
STRING_FIELDS = tuple(
    f.name for f in RECORD_SCHEMA if pa.types.is_string(f.type) and f.name not in NULLABLE_STRING_FIELDS
)
