"""The pipeline through the faults an SRE meets: a lost consumer group, a gone exporter's pending work,
a sink down while stopping or draining once, and records older than the warm window."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from exporter.metrics import ExportMetrics, publish
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from tests.helpers import cold_counts, warm_counts
from tests.test_pipeline import FlakyWarm

STREAM, GROUP = "completed_jobs", "archive-exporter"


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _running(pipeline: ExportPipeline) -> threading.Thread:
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    return runner


@pytest.mark.parametrize("lose", ["destroy", "flushdb"])
def test_a_lost_group_is_recreated_where_archiving_stopped(config, redis_client, warm, cold, lose):
    seed_stream(redis_client, STREAM, 6000, seed=21)
    pipeline = ExportPipeline(config, redis_client, warm, cold, "test-exporter")
    runner = _running(pipeline)
    try:
        _wait(lambda: pipeline.metrics.archived >= 1500)
        if lose == "destroy":
            redis_client.xgroup_destroy(STREAM, GROUP)
        else:
            redis_client.flushdb()  # stream, marks and manifests gone: start at the new stream's beginning
        seed_stream(redis_client, STREAM, 2000, seed=22)
        _wait(lambda: pipeline.metrics.groups_recreated == 1)
        if lose == "destroy":
            _wait(lambda: warm_counts(warm)[1] == 8000)
        else:
            new = "SELECT count() AS n FROM jobs_archive WHERE job_id LIKE 'job-16-%'"
            _wait(lambda: warm.backend.query_arrow(new).column(0)[0].as_py() == 2000)
        _wait(lambda: redis_client.xpending(STREAM, GROUP)["pending"] == 0)
    finally:
        pipeline.stop()
        runner.join(30)
    rows, distinct = warm_counts(warm)
    assert rows == distinct and cold_counts(cold) == (rows, distinct)  # nothing read again into a new batch
    assert rows == 8000 if lose == "destroy" else rows >= 2000
    assert "re-created it a" in pipeline.metrics.last_error
    assert pipeline.metrics.group_recreated_at is not None


def test_the_archived_mark_only_rises(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 500, seed=23)
    pipeline = ExportPipeline(config, redis_client, warm, cold, "test-exporter")
    pipeline.run(once=True)
    last = redis_client.xrevrange(STREAM, count=1)[0][0]
    assert redis_client.get(f"{STREAM}:archived:{GROUP}") == last
    pipeline.reader.client.eval(__import__("exporter.stream", fromlist=["_RAISE_MARK"])._RAISE_MARK, 1,
                                f"{STREAM}:archived:{GROUP}", "1-0")
    assert redis_client.get(f"{STREAM}:archived:{GROUP}") == last


def test_once_takes_over_the_pending_entries_of_a_gone_exporter(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 900, seed=24)
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "crashed-host", {STREAM: ">"}, count=300)  # read, never acknowledged
    gone = ExportMetrics()
    publish(redis_client, STREAM, "crashed-host", gone)  # it ran this version: it published a heartbeat ...
    snapshot = orjson.loads(redis_client.get(f"{STREAM}:exporter:crashed-host"))
    snapshot["updated_at"] -= 120  # ... and fell silent two minutes ago
    redis_client.set(f"{STREAM}:exporter:crashed-host", orjson.dumps(snapshot))
    time.sleep(2.1)  # the guard against an exporter restarting under the same name

    metrics = ExportPipeline(config, redis_client, warm, cold, "a-new-name").run(once=True)

    assert metrics.claimed == 300 and metrics.archived == 900
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    assert warm_counts(warm) == (900, 900) and cold_counts(cold) == (900, 900)


def test_once_leaves_a_live_exporters_pending_entries_alone(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 400, seed=25)
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "busy-host", {STREAM: ">"}, count=100)
    publish(redis_client, STREAM, "busy-host", ExportMetrics())  # heard from just now
    time.sleep(2.1)
    metrics = ExportPipeline(config, redis_client, warm, cold, "a-new-name").run(once=True)
    assert metrics.claimed == 0 and metrics.archived == 300
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 100


def test_once_gives_up_after_its_retry_budget_while_a_sink_is_down(config, redis_client, warm, cold):
    config = config.replace("pipeline", retry_attempts=3, retry_backoff=0.05, max_retry_backoff=0.1)
    seed_stream(redis_client, STREAM, 1000, seed=26)
    flaky = FlakyWarm(warm)
    pipeline = ExportPipeline(config, redis_client, flaky, cold, "test-exporter")
    started = time.monotonic()
    metrics = pipeline.run(once=True)
    assert time.monotonic() - started < 30
    assert pipeline.failure and "the warm tier (ClickHouse) failed 3 times in a row" in pipeline.failure
    assert metrics.archived == 0 and pipeline.left_pending > 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] > 0  # nothing acknowledged: replayed next run
    flaky.down = False
    assert ExportPipeline(config, redis_client, flaky, cold, "test-exporter").run(once=True).archived == 1000
    assert warm_counts(warm) == (1000, 1000) and cold_counts(cold) == (1000, 1000)


def test_stop_during_a_sink_outage_returns_within_seconds(config, redis_client, warm, cold):
    config = config.replace("pipeline", retry_backoff=30.0, max_retry_backoff=60.0)  # long waits between retries
    seed_stream(redis_client, STREAM, 1000, seed=27)
    flaky = FlakyWarm(warm)
    pipeline = ExportPipeline(config, redis_client, flaky, cold, "test-exporter")
    runner = _running(pipeline)
    _wait(lambda: flaky.failures >= 2)
    started = time.monotonic()
    pipeline.stop()
    runner.join(15)
    assert not runner.is_alive() and time.monotonic() - started < 5
    assert pipeline.left_pending > 0 and pipeline.metrics.archived == 0


def test_records_older_than_the_warm_window_are_counted_cold_only(config, redis_client, warm, cold):
    now = datetime.now(UTC)
    for i, age in enumerate([400, 400, 1, 0]):
        record = {"job_id": f"aged-{i}", "queue": "q", "outcome": "success",
                  "enqueue_time": (now - timedelta(days=age)).isoformat()}
        redis_client.xadd(STREAM, {"data": orjson.dumps(record)})
    metrics = ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
    assert (metrics.archived, metrics.warm_archived, metrics.warm_skipped) == (4, 2, 2)
    assert warm_counts(warm) == (2, 2) and cold_counts(cold) == (4, 4)


def test_a_group_from_before_the_mark_gets_one_and_survives_its_loss(config, redis_client, warm, cold):
    seed_stream(redis_client, STREAM, 1000, seed=28)
    pipeline = ExportPipeline(config, redis_client, warm, cold, "test-exporter")
    pipeline.run(once=True)
    redis_client.delete(f"{STREAM}:archived:{GROUP}")  # as an earlier version left it: no mark
    seed_stream(redis_client, STREAM, 500, seed=29)
    other_cuts = config.replace("pipeline", batch_size=300, read_count=300)  # a re-read would form new batches
    pipeline = ExportPipeline(other_cuts, redis_client, warm, cold, "test-exporter")
    pipeline.reader.ensure_group()
    assert redis_client.get(f"{STREAM}:archived:{GROUP}") == redis_client.xrange(STREAM, count=1000)[-1][0]
    redis_client.xgroup_destroy(STREAM, GROUP)
    pipeline.run(once=True)
    assert warm_counts(warm) == (1500, 1500) and cold_counts(cold) == (1500, 1500)
    assert pipeline.metrics.groups_recreated == 1
