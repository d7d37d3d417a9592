"""A warm store made by an earlier version gets today's skip indexes, codecs and column comments when it is opened:
added to the table, built for the parts it already holds (also when the process stops before the build
finishes), and used by queries; opening an up-to-date store changes nothing."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

from exporter.engine.registry import open_backend
from exporter.engine.sql import sql_string
from exporter.record import FIELD_DOCS
from exporter.tiers import ddl, federation
from exporter.tiers.warm import WarmStore

TTL = 3650 * 86400.0

# jobs_archive as the first release created it: two skip indexes, none on enqueue_time or job_id.
FIRST_RELEASE = f"""
CREATE TABLE jobs_archive (
    job_id String, queue LowCardinality(String), tenant_id LowCardinality(String), priority Int8,
    enqueue_time DateTime64(3, 'UTC'), start_time Nullable(DateTime64(3, 'UTC')),
    end_time Nullable(DateTime64(3, 'UTC')),
    outcome Enum8('success' = 1, 'failed' = 2, 'timeout' = 3, 'cancelled' = 4, 'retry' = 5),
    retries UInt16, error_type LowCardinality(String), error_msg String, worker_id LowCardinality(String),
    worker_version LowCardinality(String), payload_size UInt32, payload_hash String,
    payload_sample Nullable(String), trace_id String, span_id String, correlation_id String,
    tags Map(String, String), created_date Date MATERIALIZED toDate(enqueue_time),
    schema_version LowCardinality(String),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_payload_hash payload_hash TYPE bloom_filter(0.01) GRANULARITY 4
) ENGINE = MergeTree() PARTITION BY created_date ORDER BY (queue, enqueue_time, job_id)
TTL created_date + INTERVAL 3650 DAY
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, {ddl.DEDUP_SETTING}
"""
ROWS = 300_000  # 13 granules a day over 3 days, 50 queues in each: the primary key cannot skip by time


def first_release_store(path: Path) -> None:
    backend = open_backend(f"chdb://{path}")
    try:
        for statement in (FIRST_RELEASE, ddl.QUEUE_HOURLY_STATS, ddl.ERROR_PATTERNS):
            backend.execute(statement)
        backend.execute(
            "INSERT INTO jobs_archive (job_id, queue, enqueue_time, outcome, trace_id) "
            f"SELECT concat('job-', toString(number)), concat('queue-', toString(number % 50)), "
            f"toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 864), "
            f"'success', hex(number) FROM numbers({ROWS})"
        )
    finally:
        backend.close()


def indexes(store: WarmStore) -> set[str]:
    return set(store.backend.query_arrow("SELECT name FROM system.data_skipping_indices WHERE "
                                         "table = 'jobs_archive'").column(0).to_pylist())


def mutations(store: WarmStore) -> list[dict]:
    return store.backend.query_arrow("SELECT command, is_done FROM system.mutations "
                                     "WHERE table = 'jobs_archive'").to_pylist()


def wait_for_mutations(store: WarmStore, patience: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + patience
    found = mutations(store)
    while any(not m["is_done"] for m in found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = mutations(store)
    return found


def kept_by(store: WarmStore, index: str, query: str, unit: str = "Granules") -> tuple[int, int]:
    """(kept, looked at) by skip index ``index`` for ``query``, in granules or parts, from EXPLAIN."""
    plan = "\n".join(store.backend.query_arrow(f"EXPLAIN indexes = 1 {query}").column(0).to_pylist())
    section = plan.split(f"Name: {index}", 1)[1]
    kept, total = re.search(unit + r": (\d+)/(\d+)", section).groups()
    return int(kept), int(total)


def test_a_first_release_store_gets_the_indexes_on_open_and_uses_them(tmp_path):
    path = tmp_path / "warm"
    first_release_store(path)

    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        store.ensure_schema()
        assert indexes(store) == set(ddl.SKIP_INDEXES)
    # Closed at once: the parts may not be rebuilt yet; the engine carries on when the store reopens.
    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        store.ensure_schema()
        done = wait_for_mutations(store)
        assert {m["command"].strip("()") for m in done} == {f"MATERIALIZE INDEX {name}" for name in ("idx_enqueue_time",
                                                                                          "idx_job_id")}
        assert all(m["is_done"] for m in done)

        rows = store.backend.query_arrow("SELECT count() AS n, uniqExact(job_id) AS u FROM jobs_archive").to_pylist()
        assert rows == [{"n": ROWS, "u": ROWS}]
        lookup = "SELECT * FROM jobs_archive WHERE job_id = 'job-123456'"
        kept, total = kept_by(store, "idx_job_id", lookup)
        assert kept <= 2 < total
        assert store.backend.query_arrow(lookup).num_rows == 1
        hour = ("SELECT count() FROM jobs_archive WHERE enqueue_time >= '2026-01-02 10:00:00' "
                "AND enqueue_time < '2026-01-02 11:00:00'")
        assert kept_by(store, "idx_enqueue_time", hour, "Parts") == (1, 3)  # the day's part only
        in_hour = range(math.ceil(34 * 3_600_000 / 864), math.ceil(35 * 3_600_000 / 864))
        assert store.backend.query_arrow(hour).column(0)[0].as_py() == len(in_hour)

        codecs = {row["name"]: row["compression_codec"] for row in store.backend.query_arrow(
            "SELECT name, compression_codec FROM system.columns WHERE table = 'jobs_archive'").to_pylist()}
        assert {name: codecs[name] for name in ddl.CODECS} == {n: f"CODEC({c})" for n, c in ddl.CODECS.items()}

        # Up to date: opening again neither alters the table nor starts another rebuild.
        store.ensure_schema()
        assert mutations(store) == done


def test_a_new_store_has_every_index_from_the_start(tmp_path):
    with WarmStore(open_backend(f"chdb://{tmp_path / 'warm'}"), TTL) as store:
        store.ensure_schema()
        store.ensure_schema()
        assert indexes(store) == set(ddl.SKIP_INDEXES) and mutations(store) == []


def comments(store: WarmStore) -> dict[str, str]:
    return {row["name"]: row["comment"] for row in store.backend.query_arrow(
        "SELECT name, comment FROM system.columns WHERE table = 'jobs_archive'").to_pylist()}


def table_comment(store: WarmStore) -> str:
    shown = store.backend.query_arrow("SELECT comment FROM system.tables WHERE name = 'jobs_archive'")
    return shown.column(0)[0].as_py()


def alters(store: WarmStore) -> list[str]:
    """From now on, each ALTER of jobs_archive the store's backend runs (a comment is no mutation to find)."""
    seen: list[str] = []
    execute = store.backend.execute

    def recording(sql: str, settings: dict[str, object] | None = None) -> None:
        if sql.startswith("ALTER TABLE jobs_archive"):
            seen.append(sql)
        execute(sql, settings)

    store.backend.execute = recording  # type: ignore[method-assign]
    return seen


def rows(store: WarmStore) -> dict:
    return store.backend.query_arrow("SELECT count() AS n, sum(cityHash64(job_id, queue, enqueue_time, outcome, "
                                     "trace_id)) AS h FROM jobs_archive").to_pylist()[0]


def test_a_first_release_store_gets_the_comments_on_open_and_keeps_its_rows(tmp_path):
    path = tmp_path / "warm"
    first_release_store(path)
    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        assert set(comments(store).values()) == {""} and table_comment(store) == ""
        before = rows(store)
        store.ensure_schema()
        assert comments(store) == FIELD_DOCS and table_comment(store) == ddl.JOBS_ARCHIVE_COMMENT
        assert rows(store) == before and before["n"] == ROWS
        assert not [m for m in mutations(store) if "COMMENT" in m["command"]]  # metadata only

        # A description changed in a later version: only that column is altered.
        store.backend.execute("ALTER TABLE jobs_archive COMMENT COLUMN queue 'an older description'")
        seen = alters(store)
        store.ensure_schema()
        assert seen == [f"ALTER TABLE jobs_archive COMMENT COLUMN queue {sql_string(FIELD_DOCS['queue'])}"]

    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        seen = alters(store)
        store.ensure_schema()
        assert seen == [] and comments(store) == FIELD_DOCS and rows(store) == before


def test_a_new_store_has_the_comments_and_a_second_open_alters_nothing(tmp_path):
    path = tmp_path / "warm"
    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        seen = alters(store)
        store.ensure_schema()
        assert seen == [] and comments(store) == FIELD_DOCS and table_comment(store) == ddl.JOBS_ARCHIVE_COMMENT
    with WarmStore(open_backend(f"chdb://{path}"), TTL) as store:
        seen = alters(store)
        store.ensure_schema()
        assert seen == []


def test_the_catalog_describes_the_columns_of_both_tiers_and_the_federated_table(tmp_path):
    """The views hold no comments of their own: the catalog gives theirs from jobs_archive."""
    with WarmStore(open_backend(f"chdb://{tmp_path / 'warm'}"), TTL) as store:
        store.ensure_schema()
        federation.install(store.backend, federation.ColdSource(f"{tmp_path}/cold/jobs/", "file"), store.ttl_days)
        tables = {table.name: table for table in store.backend.catalog().tables}
        stored = {name: doc for name, doc in FIELD_DOCS.items() if name != "created_date"}  # MATERIALIZED: not in views
        assert {c.name: c.comment for c in tables["jobs_archive"].columns} == FIELD_DOCS
        assert tables["jobs_archive"].comment == ddl.JOBS_ARCHIVE_COMMENT
        for view in ("jobs", "jobs_cold"):
            assert {c.name: c.comment for c in tables[view].columns} == stored, view
