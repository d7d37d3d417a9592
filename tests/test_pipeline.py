"""The export pipeline against a real redis-server, chdb and Parquet (local and S3 over HTTP)."""

from __future__ import annotations

import gc
import threading
import time

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from exporter.batch import Batch, read_range
from exporter.config import Config
from exporter.engine.registry import open_backend
from exporter.memory import tuned_for_export
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from exporter.tiers import ddl
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from tests.helpers import cold_counts, cold_table, warm_counts

STREAM = "completed_jobs"


def make_pipeline(config: Config, redis_client, warm, cold, consumer: str = "test-exporter") -> ExportPipeline:
    return ExportPipeline(config, redis_client, warm, cold, consumer)


def test_export_once_stores_every_event_exactly_once_in_both_tiers(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 3000, days=2, failure_rate=0.2, pii_rate=0.5, seed=1)
    metrics = make_pipeline(config, redis_client, warm, cold).run(once=True)

    assert metrics.archived == 3000 and metrics.dead_lettered == 0
    assert warm_counts(warm) == (3000, 3000)
    assert cold_counts(cold) == (3000, 3000)
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0
    assert redis_client.hlen(f"{STREAM}:batches:archive-exporter") == 0

    samples = warm.backend.query_arrow(
        "SELECT payload_sample, error_msg FROM jobs_archive WHERE outcome = 'failed'").to_pylist()
    assert samples and all(row["payload_sample"] for row in samples)  # failures always keep their sample
    text = " ".join(f"{row['payload_sample']} {row['error_msg']}" for row in samples)
    assert "@example." not in text and "[REDACTED:email]" in text and "[REDACTED:phone]" in text

    hourly = warm.backend.query_arrow("SELECT sum(job_count) AS n FROM queue_hourly_stats").to_pylist()[0]["n"]
    failed = warm.backend.query_arrow("SELECT count() AS n FROM jobs_archive WHERE outcome='failed'").to_pylist()
    patterns = warm.backend.query_arrow("SELECT sum(occurrence_count) AS n FROM error_patterns").to_pylist()
    assert hourly == 3000 and patterns[0]["n"] == failed[0]["n"] > 0

    table = cold_table(cold)
    assert table.schema.field("enqueue_time").type.unit == "ms"  # as the warm tier keeps them
    first = cold.files()[0]["name"]
    assert "/jobs/year=" in first and "/hour=" in first and first.endswith(".parquet")


def test_malformed_entries_go_to_the_dead_letter_stream_with_a_reason(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 200, seed=2)
    bad = {
        "bad json": {"data": b"{oops"},
        "missing job_id": {"data": orjson.dumps({"queue": "q", "outcome": "success",
                                                 "enqueue_time": "2024-01-15T10:30:00Z"})},
        "unknown outcome": {"data": orjson.dumps({"job_id": "x", "queue": "q", "outcome": "meh",
                                                  "enqueue_time": "2024-01-15T10:30:00Z"})},
        "bad time": {"data": orjson.dumps({"job_id": "y", "queue": "q", "outcome": "success",
                                           "enqueue_time": "tomorrow"})},
        "oversize": {"data": b'{"job_id":"z","pad":"' + b"x" * (config.pipeline.max_record_size + 1) + b'"}'},
        "unknown schema": {"data": orjson.dumps({"job_id": "w", "queue": "q", "outcome": "success",
                                                 "enqueue_time": "2024-01-15T10:30:00Z", "schema_version": "9.9"})},
    }
    for fields in bad.values():
        redis_client.xadd(STREAM, fields)
    seed_stream(redis_client, STREAM, 200, seed=3)

    metrics = make_pipeline(config, redis_client, warm, cold).run(once=True)

    assert metrics.archived == 400 and metrics.dead_lettered == len(bad)
    assert warm_counts(warm) == (400, 400) and cold_counts(cold) == (400, 400)
    dead = redis_client.xrange(f"{STREAM}:dlq")
    reasons = [fields[b"_reason"].decode() for _, fields in dead]
    assert len(dead) == len(bad)
    for expected in ("invalid JSON", "missing job_id", "unknown outcome 'meh'", "'enqueue_time'", "oversize",
                     "unknown schema_version '9.9'"):
        assert any(expected in reason for reason in reasons), expected
    assert dead[0][1][b"data"] == b"{oops" and dead[0][1][b"_source_id"]
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0


def _read_batch(pipeline: ExportPipeline, count: int) -> Batch:
    pipeline.reader.ensure_group()
    entries = pipeline.reader.read_new(count, None)
    return Batch.of_entries(entries, pipeline.consumer, ranges=[read_range(entries)])


def _manifested_batch(pipeline: ExportPipeline, count: int):
    """Read a batch and record its manifest, as the reader does before any write."""
    batch = _read_batch(pipeline, count)
    pipeline.reader.record_manifest(batch)
    records, _ = pipeline.prepare(batch)
    return batch, records


def test_batch_written_but_not_acknowledged_is_replayed_without_duplicates(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 1500, seed=4)
    batch, records = _manifested_batch(make_pipeline(config, redis_client, warm, cold), 700)
    warm.insert(records, batch.batch_id)
    cold.write_batch(records, batch.batch_id)  # ... and the process dies before XACK

    metrics = make_pipeline(config, redis_client, warm, cold).run(once=True)

    assert metrics.recovered_batches == 1
    assert warm_counts(warm) == (1500, 1500) and cold_counts(cold) == (1500, 1500)
    hourly = warm.backend.query_arrow("SELECT sum(job_count) AS n FROM queue_hourly_stats").to_pylist()[0]["n"]
    assert hourly == 1500  # the views were not fed the replayed rows again
    assert redis_client.hlen(f"{STREAM}:batches:archive-exporter") == 0


def test_half_written_batch_is_completed_on_replay(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 800, seed=5)
    batch, records = _manifested_batch(make_pipeline(config, redis_client, warm, cold), 800)
    warm.insert(records, batch.batch_id)  # warm written, cold not, then the crash

    make_pipeline(config, redis_client, warm, cold).run(once=True)
    assert warm_counts(warm) == (800, 800) and cold_counts(cold) == (800, 800)


def test_batch_cut_off_between_partitions_is_completed_on_replay(config, redis_client, warm, cold, monkeypatch):
    monkeypatch.setattr("exporter.decode._PARSE_SLICE_BYTES", 64 * 1024)  # records arrive in many chunks
    seed_stream(redis_client, STREAM, 3000, days=3, seed=7)  # one batch over four UTC days
    batch, records = _manifested_batch(make_pipeline(config, redis_client, warm, cold), 3000)
    days = pc.floor_temporal(records.column("enqueue_time"), unit="day")
    last_day = records.filter(pc.equal(days, pc.max(days)))
    warm.insert(last_day, batch.batch_id)  # the crash came after one partition's block was stored
    assert 0 < warm_counts(warm)[0] < 3000

    make_pipeline(config, redis_client, warm, cold).run(once=True)
    assert warm_counts(warm) == (3000, 3000) and cold_counts(cold) == (3000, 3000)


def _assert_each_job_counted_once(warm: WarmStore, jobs: int) -> None:
    """jobs_archive holds each job once, and both views count each once."""
    query = warm.backend.query_arrow
    assert warm_counts(warm) == (jobs, jobs)
    assert query("SELECT sum(job_count) AS n FROM queue_hourly_stats").to_pylist()[0]["n"] == jobs
    failed = query("SELECT count() AS n FROM jobs_archive WHERE outcome = 'failed'").to_pylist()[0]["n"]
    assert query("SELECT sum(occurrence_count) AS n FROM error_patterns").to_pylist()[0]["n"] == failed > 0


def test_replay_fills_in_materialized_views_a_crash_left_behind(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 1000, failure_rate=0.2, seed=8)
    batch, records = _manifested_batch(make_pipeline(config, redis_client, warm, cold), 1000)
    for view in ddl.VIEWS:  # the crash came after jobs_archive's block, before the views got theirs
        warm.backend.execute(f"DETACH TABLE {view}")
    warm.insert(records, batch.batch_id)
    for view in ddl.VIEWS:
        warm.backend.execute(f"ATTACH TABLE {view}")

    make_pipeline(config, redis_client, warm, cold).run(once=True)
    _assert_each_job_counted_once(warm, 1000)


def test_views_of_an_older_store_get_the_window_that_keeps_replays_out(config, redis_client, warm, cold):
    for view in ddl.VIEWS:  # recreate the views as stores made before they deduplicated have them
        warm.backend.execute(f"DROP TABLE {view}")
    for statement in (ddl.QUEUE_HOURLY_STATS, ddl.ERROR_PATTERNS):
        warm.backend.execute(statement.replace(f"SETTINGS {ddl.DEDUP_SETTING}\n", ""))
    warm.ensure_schema()

    seed_stream(redis_client, STREAM, 1000, failure_rate=0.2, seed=9)
    batch, records = _manifested_batch(make_pipeline(config, redis_client, warm, cold), 1000)
    warm.insert(records, batch.batch_id)
    cold.write_batch(records, batch.batch_id)  # ... and the process dies before XACK
    make_pipeline(config, redis_client, warm, cold).run(once=True)
    _assert_each_job_counted_once(warm, 1000)


def test_entries_read_before_their_manifest_was_recorded_are_recovered(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 900, seed=6)
    crashed = make_pipeline(config, redis_client, warm, cold)
    _read_batch(crashed, 400)  # delivered to this consumer, then the process died
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 400

    make_pipeline(config, redis_client, warm, cold).run(once=True)
    assert warm_counts(warm) == (900, 900) and cold_counts(cold) == (900, 900)
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0


class FlakyWarm:
    """The real warm store behind a switch that makes inserts fail, as an outage would."""

    def __init__(self, store: WarmStore) -> None:
        self.store, self.down, self.failures = store, True, 0
        self.backend = store.backend  # the archive's ledger lives beside the table

    def insert(self, records, batch_id) -> int:
        if self.down:
            self.failures += 1
            raise ConnectionError("ClickHouse is unreachable")
        return self.store.insert(records, batch_id)


def test_sink_outage_acknowledges_nothing_bounds_reading_and_resumes(config, redis_client, warm, cold):
    config = config.replace("pipeline", batch_size=100, min_batch_size=100, max_batch_size=100, worker_count=2,
                            retry_attempts=2, max_retry_backoff=0.2)
    seed_stream(redis_client, STREAM, 5000, seed=7)
    flaky = FlakyWarm(warm)
    pipeline = make_pipeline(config, redis_client, flaky, cold)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while flaky.failures < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert flaky.failures >= 6
        assert warm_counts(warm) == (0, 0)
        group = redis_client.xinfo_groups(STREAM)[0]
        # nothing acknowledged, and reading stopped after the batches in hand: workers + queued + reader's
        assert group["pending"] <= (2 + 1 + 1) * 100
        assert pipeline.breakers["clickhouse"].failures >= 2
        flaky.down = False
        deadline = time.monotonic() + 30
        while warm_counts(warm)[0] < 5000 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pipeline.stop()
        runner.join(30)
    assert warm_counts(warm) == (5000, 5000) and cold_counts(cold) == (5000, 5000)
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0
    assert "ClickHouse is unreachable" in (pipeline.metrics.last_error or "")


def test_graceful_stop_then_restart_loses_and_duplicates_nothing(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 6000, seed=8)
    pipeline = make_pipeline(config, redis_client, warm, cold)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    while pipeline.metrics.archived == 0:
        time.sleep(0.01)
    pipeline.stop()
    runner.join(30)
    assert not runner.is_alive()
    make_pipeline(config, redis_client, warm, cold).run(once=True)
    assert warm_counts(warm) == (6000, 6000) and cold_counts(cold) == (6000, 6000)


def test_batches_grow_toward_the_latency_target_under_a_backlog(config, redis_client, warm, cold):
    config = config.replace("pipeline", batch_size=100, min_batch_size=100, max_batch_size=4000, target_latency=5.0)
    seed_stream(redis_client, STREAM, 20000, seed=9)
    metrics = make_pipeline(config, redis_client, warm, cold).run(once=True)
    assert metrics.batch_size_target > 1000
    assert metrics.batches < 200  # 20000 / 100 would be 200 batches at a fixed size
    assert warm_counts(warm) == (20000, 20000)


def test_batches_close_at_max_batch_bytes_whatever_the_record_count(config, redis_client, warm, cold):
    config = config.replace("pipeline", batch_size=5000, min_batch_size=5000, max_batch_size=5000,
                            max_batch_bytes=64 * 1024, read_count=50)
    seed_stream(redis_client, STREAM, 2000, seed=5)
    sizes = [len(f[b"data"]) + 4 for _, f in redis_client.xrange(STREAM)]
    metrics = make_pipeline(config, redis_client, warm, cold).run(once=True)
    # A batch closes on the read that reaches 64 KiB, so it holds 64 KiB plus at most one read (50 entries).
    assert sum(sizes) // (64 * 1024 + 50 * max(sizes)) <= metrics.batches <= sum(sizes) // (64 * 1024) + 1
    assert metrics.last_batch_records < 5000
    assert warm_counts(warm) == (2000, 2000) and cold_counts(cold) == (2000, 2000)


def test_run_changes_no_process_wide_setting(config, redis_client, warm, cold):
    """A library user (the dashboard) keeps its collector and Arrow's memory pool while exporting."""
    seed_stream(redis_client, STREAM, 3000, seed=6)
    before = gc.get_threshold(), pa.default_memory_pool().backend_name
    seen = []

    class Watching(FlakyWarm):
        def insert(self, records, batch_id) -> int:
            seen.append((gc.get_threshold(), gc.get_freeze_count(), pa.default_memory_pool().backend_name))
            return super().insert(records, batch_id)

    watching = Watching(warm)
    watching.down = False
    make_pipeline(config, redis_client, watching, cold).run(once=True)
    assert seen and all(s == (before[0], 0, before[1]) for s in seen)


def test_the_headless_exporter_tunes_the_collector_and_restores_it():
    before = gc.get_threshold()
    with tuned_for_export():
        assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_flat_entries_are_archived_like_json_ones(config, redis_client, warm, cold):
    for i in range(50):
        redis_client.xadd(STREAM, {"job_id": f"flat-{i}", "queue": "emails", "outcome": "success",
                                   "enqueue_time": "2026-11-28T10:00:00.123456789+01:00", "priority": "2",
                                   "tags": '{"env":"prod"}'})
    make_pipeline(config, redis_client, warm, cold).run(once=True)
    row = warm.backend.query_arrow(
        "SELECT count() AS n, any(priority) AS p, any(tags['env']) AS env, toString(min(enqueue_time)) AS t "
        "FROM jobs_archive").to_pylist()[0]
    assert row == {"n": 50, "p": 2, "env": "prod", "t": "2026-11-28 09:00:00.123"}


@pytest.fixture
def s3_config(config: Config, s3_endpoint: str, s3_bucket: str) -> Config:
    return config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)


def test_cold_tier_on_s3_over_http(s3_config, redis_client, warm):
    cold = ParquetStore.open(s3_config.cold, s3_config.cold.url)
    seed_stream(redis_client, STREAM, 2000, seed=10)
    make_pipeline(s3_config, redis_client, warm, cold).run(once=True)
    assert cold_counts(cold) == (2000, 2000)
    keys = [info["name"] for info in cold.files()]
    assert all(k.startswith(f"{s3_config.cold.url.removeprefix('s3://')}/jobs/year=") for k in keys)
    assert cold.stats().records == 2000


def test_s3_outage_holds_acks_until_it_is_back(config, redis_client, warm, s3_bucket, s3_endpoint):
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="outage")
    s3 = config.replace("cold", url="s3://outage/a", endpoint_url=endpoint).replace(
        "pipeline", retry_attempts=2, max_retry_backoff=0.3)
    cold = ParquetStore.open(s3.cold, s3.cold.url)
    server.stop()  # S3 goes away before the export starts
    seed_stream(redis_client, STREAM, 1000, seed=11)
    pipeline = make_pipeline(s3, redis_client, warm, cold)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while pipeline.metrics.errors.get("parquet", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pipeline.metrics.errors.get("parquet", 0) >= 2
        assert redis_client.xpending(STREAM, "archive-exporter")["pending"] > 0
        assert pipeline.metrics.archived == 0
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # moto keeps its buckets in this process, so the bucket is still there
        deadline = time.monotonic() + 30
        while pipeline.metrics.archived < 1000 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pipeline.stop()
        runner.join(30)
        server.stop()
    assert pipeline.metrics.archived == 1000
    assert warm_counts(warm) == (1000, 1000)
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0


def test_stores_close_as_context_managers_and_free_the_embedded_directory(config):
    with WarmStore(open_backend(config.clickhouse.url), config.retention.clickhouse_ttl) as first:
        first.ensure_schema()
    with WarmStore(open_backend(config.clickhouse.url), config.retention.clickhouse_ttl) as again:  # not busy
        assert again.backend.query_arrow("EXISTS TABLE jobs_archive").column(0).to_pylist() == [1]
    with ParquetStore.open(config.cold, config.cold.url) as cold:
        assert cold.files() == []
