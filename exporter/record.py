"""The archive record: field names of the producer contract and the Arrow schema both tiers share.

A decoded batch is an Arrow table with ``RECORD_SCHEMA``: times in microseconds UTC while it is
decoded and transformed; both tiers store them in milliseconds (``STORED_TIME``, the seed's
``DateTime64(3)``), so a row reads the same whichever tier serves it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

OUTCOMES = ("success", "failed", "timeout", "cancelled", "retry")
CURRENT_SCHEMA_VERSION = "1.0.0"

TIMESTAMP = pa.timestamp("us", tz="UTC")
TAGS = pa.map_(pa.string(), pa.string())
STORED_TIME = pa.timestamp("ms", tz="UTC")

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

# One line per stored column, for the schema browser: the engine keeps them as column comments of jobs_archive
# (set on create, and on open for a store made before them). Times are UTC; NULL only where the type allows it.
FIELD_DOCS: dict[str, str] = {
    "job_id": "the job's id in the queue; each attempt of a retried job is its own row with the same id",
    "queue": "name of the queue the job was taken from",
    "tenant_id": "tenant the job belongs to; empty when the producer sent none",
    "priority": "the job's priority as the queue set it (-128 to 127)",
    "enqueue_time": "when the job was enqueued, UTC, milliseconds",
    "start_time": "when this attempt started, UTC, milliseconds; NULL when it never started",
    "end_time": "when this attempt ended, UTC, milliseconds; NULL when not reported",
    "outcome": "how this attempt ended: " + ", ".join(OUTCOMES),
    "retries": "retries of the job so far, as the queue counts them (0 on a first attempt)",
    "error_type": "error class or code of a failed attempt; empty when none",
    "error_msg": "error message of a failed attempt, PII redacted; empty when none",
    "worker_id": "id of the worker that ran the attempt",
    "worker_version": "version of that worker's software; empty when not reported",
    "payload_size": "size of the job's payload in bytes",
    "payload_hash": "hash of the job's whole payload as the producer computed it (e.g. SHA-256, hex)",
    "payload_sample": "a sample of the payload (all failures, a share of the rest, none over the size cap), "
                      "PII redacted; NULL when not sampled",
    "trace_id": "distributed tracing trace id; empty when none",
    "span_id": "tracing span id of the attempt; empty when none",
    "correlation_id": "id tying related jobs together (e.g. one request's jobs); empty when none",
    "tags": "free key/value labels from the producer; go.* keys hold the Go library's fields that have no column",
    "created_date": "UTC day of enqueue_time, computed on insert; the warm table's partition key (warm tier only)",
    "schema_version": "version of the record schema the event was written in (current: " + CURRENT_SCHEMA_VERSION + ")",
}
REQUIRED_FIELDS = ("job_id", "queue", "outcome", "enqueue_time")
TIME_FIELDS = ("enqueue_time", "start_time", "end_time")
INT_FIELDS = {"priority": (-128, 127), "retries": (0, 65535), "payload_size": (0, 2**32 - 1)}
NULLABLE_STRING_FIELDS = ("payload_sample",)
STRING_FIELDS = tuple(
    f.name for f in RECORD_SCHEMA if pa.types.is_string(f.type) and f.name not in NULLABLE_STRING_FIELDS
)

# The wire form of the Go library this design comes from (go-redis-work-queue, internal/long-term-archives):
# XADD <stream> * job_data <ArchiveJob JSON> job_id <id> queue <q> outcome <o>. Its JSON names -> ours;
# every other key of its JSON has no column and is kept as the tag ``go.<key>``.
GO_FIELDS = {
    "job_id": "job_id",
    "queue": "queue",
    "tenant": "tenant_id",
    "priority": "priority",
    "enqueued_at": "enqueue_time",
    "started_at": "start_time",
    "completed_at": "end_time",
    "outcome": "outcome",
    "retry_count": "retries",
    "error_code": "error_type",
    "error_message": "error_msg",
    "worker_id": "worker_id",
    "payload_size": "payload_size",
    "payload_hash": "payload_hash",
    "payload_snapshot": "payload_sample",
    "trace_id": "trace_id",
    "tags": "tags",
}
GO_INDEX_FIELDS = ("job_id", "queue", "outcome")  # stream fields that duplicate the JSON for XRANGE readers
GO_OUTCOMES = {"canceled": "cancelled"}  # Go spells it with one l; the ClickHouse Enum keeps ours
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # time.Time{} as Go marshals it: the time was never set
# Go's integer schema versions -> ours. 0 is Go's zero value: the library's ValidateSchema sets the version
# on its own copy of the job, so its entries carry 0 unless the caller set one. Its version 2 only made
# worker_id and archived_at required; the ArchiveJob struct, so the wire form, is the same as version 1.
GO_SCHEMA_VERSIONS = {0: CURRENT_SCHEMA_VERSION, 1: CURRENT_SCHEMA_VERSION, 2: CURRENT_SCHEMA_VERSION}
GO_TAG_PREFIX = "go."


def with_stored_times(records: pa.Table) -> pa.Table:
    """``records`` with its times in the tiers' precision (sub-millisecond digits dropped); a table
    already in it is returned as it is, so the pipeline converts once for both sinks."""
    for name in TIME_FIELDS:
        index = records.schema.get_field_index(name)
        if records.schema.field(index).type == STORED_TIME:
            continue
        records = records.set_column(index, records.schema.field(index).with_type(STORED_TIME),
                                     pc.cast(records.column(name), STORED_TIME, safe=False))
    return records
