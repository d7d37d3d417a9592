"""The warm tier's DDL: the seed's jobs_archive table and its two materialized views.

Two deliberate departures from the seed, both so that totals stay right after background merges:
``queue_hourly_stats`` keeps sums and counts of durations (a SummingMergeTree would add averages
together), and ``error_patterns`` is an AggregatingMergeTree of min/max/sum columns (a
ReplacingMergeTree keyed on first_seen keeps one arbitrary block's counts).

Skip indexes make the warm tier answer ranges and lookups without touching every part: the table is
partitioned by ``created_date``, which a filter on ``enqueue_time`` cannot prune, and ordered by queue
first, so without ``idx_enqueue_time`` a 24-hour range opens every day's part and reads several times the
granules it needs; without ``idx_job_id`` a lookup by id reads the whole ``job_id`` column. Aggregate
projections would not help the templates: they read ``jobs``, a UNION ALL view, and ClickHouse uses a
projection only for an aggregation directly over the table, and only when the filter is on the
projection's keys (a range to the millisecond is not on an hourly key). Measured in bench/query.py.
"""

from __future__ import annotations

import re

from exporter.engine.sql import sql_string
from exporter.record import FIELD_DOCS, OUTCOMES

DEDUP_WINDOW = 10_000  # recent insert blocks remembered for insert_deduplication_token
DEDUP_SETTING = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"

_OUTCOME_ENUM = "Enum8(" + ", ".join(f"'{o}' = {i}" for i, o in enumerate(OUTCOMES, start=1)) + ")"


# name -> definition. A store made before an index was listed here gets it from WarmStore.ensure_schema
# (ALTER TABLE ... ADD INDEX, then MATERIALIZE INDEX for the parts it already has).
SKIP_INDEXES = {
    "idx_trace_id": "trace_id TYPE bloom_filter(0.01) GRANULARITY 4",
    "idx_payload_hash": "payload_hash TYPE bloom_filter(0.01) GRANULARITY 4",
    "idx_enqueue_time": "enqueue_time TYPE minmax GRANULARITY 1",  # ranges: parts and granules outside skipped
    "idx_job_id": "job_id TYPE bloom_filter(0.01) GRANULARITY 1",  # lookups by id
}


# Per-column compression, measured on `archives seed` records (bench/retention.py): ZSTD where LZ4 is
# the default, DoubleDelta for the sorted enqueue times, Delta for the times near them, T64 for sizes.
# A store of an earlier version gets them on open (ALTER TABLE ... MODIFY COLUMN ... CODEC): new parts
# and merges use them; nothing is rewritten at once.
CODECS = {
    "job_id": "ZSTD(1)", "queue": "ZSTD(1)", "tenant_id": "ZSTD(1)", "priority": "ZSTD(1)",
    "enqueue_time": "DoubleDelta, ZSTD(1)", "start_time": "Delta(8), ZSTD(1)", "end_time": "Delta(8), ZSTD(1)",
    "outcome": "ZSTD(1)", "retries": "ZSTD(1)", "error_type": "ZSTD(1)", "error_msg": "ZSTD(1)",
    "worker_id": "ZSTD(1)", "worker_version": "ZSTD(1)", "payload_size": "T64, ZSTD(1)", "payload_hash": "ZSTD(1)",
    "payload_sample": "ZSTD(1)", "trace_id": "ZSTD(1)", "span_id": "ZSTD(1)", "correlation_id": "ZSTD(1)",
    "tags": "ZSTD(1)", "schema_version": "ZSTD(1)",
}


def _codec(column: str) -> str:
    return f"CODEC({CODECS[column]})"


# The table's comment; its columns' are record.FIELD_DOCS. A store made before them gets both from
# WarmStore.ensure_schema (metadata only: no part is rewritten).
JOBS_ARCHIVE_COMMENT = "the warm tier: one row per finished job attempt, kept for retention.clickhouse_ttl"


def _comment(column: str) -> str:
    return f"COMMENT {sql_string(FIELD_DOCS[column])}"


def _stored(column: str) -> str:
    """A column's comment and codec, in the order ClickHouse's column declaration takes them."""
    return f"{_comment(column)} {_codec(column)}"


def _index_clauses() -> str:
    return ",\n    ".join(f"INDEX {name} {definition}" for name, definition in SKIP_INDEXES.items())


BACKSTOP_DAYS = 30  # the table TTL lies this far beyond the window: retention drops days first, reconciled


def backstop_ttl(ttl_days: int) -> str:
    """The table's TTL expression: a backstop well beyond the warm window, so that nothing leaves the
    warm tier by TTL before retention has checked its rows are in the cold tier and dropped it."""
    return f"created_date + toIntervalDay({ttl_days + BACKSTOP_DAYS})"


def jobs_archive(ttl_days: int) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS jobs_archive (
    job_id String {_stored('job_id')},
    queue LowCardinality(String) {_stored('queue')},
    tenant_id LowCardinality(String) {_stored('tenant_id')},
    priority Int8 {_stored('priority')},
    enqueue_time DateTime64(3, 'UTC') {_stored('enqueue_time')},
    start_time Nullable(DateTime64(3, 'UTC')) {_stored('start_time')},
    end_time Nullable(DateTime64(3, 'UTC')) {_stored('end_time')},
    outcome {_OUTCOME_ENUM} {_stored('outcome')},
    retries UInt16 {_stored('retries')},
    error_type LowCardinality(String) {_stored('error_type')},
    error_msg String {_stored('error_msg')},
    worker_id LowCardinality(String) {_stored('worker_id')},
    worker_version LowCardinality(String) {_stored('worker_version')},
    payload_size UInt32 {_stored('payload_size')},
    payload_hash String {_stored('payload_hash')},
    payload_sample Nullable(String) {_stored('payload_sample')},
    trace_id String {_stored('trace_id')},
    span_id String {_stored('span_id')},
    correlation_id String {_stored('correlation_id')},
    tags Map(String, String) {_stored('tags')},
    created_date Date MATERIALIZED toDate(enqueue_time) {_comment('created_date')},
    schema_version LowCardinality(String) {_stored('schema_version')},
    {_index_clauses()}
) ENGINE = MergeTree()
PARTITION BY created_date
ORDER BY (queue, enqueue_time, job_id)
TTL {backstop_ttl(ttl_days)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    {DEDUP_SETTING}
COMMENT {sql_string(JOBS_ARCHIVE_COMMENT)}
"""


QUEUE_HOURLY_STATS = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS queue_hourly_stats
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (queue, hour, outcome)
SETTINGS {DEDUP_SETTING}
AS SELECT
    queue,
    toStartOfHour(enqueue_time) AS hour,
    outcome,
    count() AS job_count,
    sum(payload_size) AS total_payload_size,
    toUInt64(sumIf(dateDiff('millisecond', start_time, end_time),
                   start_time IS NOT NULL AND end_time IS NOT NULL)) AS total_duration_ms,
    countIf(start_time IS NOT NULL AND end_time IS NOT NULL) AS timed_count
FROM jobs_archive
GROUP BY queue, hour, outcome
"""

ERROR_PATTERNS = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS error_patterns (
    error_hash UInt64,
    queue LowCardinality(String),
    error_type SimpleAggregateFunction(any, String),
    error_msg SimpleAggregateFunction(any, String),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    occurrence_count SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (error_hash, queue)
SETTINGS {DEDUP_SETTING}
AS SELECT
    cityHash64(error_type, error_msg) AS error_hash,
    queue,
    error_type,
    error_msg,
    min(enqueue_time) AS first_seen,
    max(enqueue_time) AS last_seen,
    count() AS occurrence_count
FROM jobs_archive
WHERE outcome = 'failed'
GROUP BY error_hash, queue, error_type, error_msg
"""


VIEWS = ("queue_hourly_stats", "error_patterns")


def warm_schema(ttl_days: int) -> list[str]:
    """Statements that create the warm tier; each is idempotent."""
    return [jobs_archive(ttl_days), QUEUE_HOURLY_STATS, ERROR_PATTERNS]


def inner_table(view: str, create_statement: str) -> str:
    """The table holding a materialized view's rows, from the view's ``SHOW CREATE`` with UUIDs shown.

    In an Atomic database it is named by the view's UUID; in an Ordinary one by the view's name.
    """
    uuid = re.match(r"CREATE MATERIALIZED VIEW \S+ UUID '([0-9a-f-]{36})'", create_statement)
    return f".inner_id.{uuid.group(1)}" if uuid else f".inner.{view}"
