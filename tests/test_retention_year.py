"""A year of completions through one retention pass over every tier (the clock moved ten days on):
Redis keeps only what is not archived, ClickHouse its window, Parquet everything in one file per hour,
and `jobs` answers exactly as before."""

from __future__ import annotations

import time

from exporter import runtime
from exporter.maintenance.retention import RetentionManager
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from tests.helpers import cold_counts
from tests.test_federation import by_month, distinct

DAY = 86400.0
STREAM, GROUP = "completed_jobs", "archive-exporter"


def test_a_year_through_retention_changes_no_answer(config, redis_client):
    config = config.replace("retention", clickhouse_ttl=30 * DAY, redis_ttl=7 * DAY)
    config = config.replace("pipeline", batch_size=5000)
    seed_stream(redis_client, STREAM, 3000, days=365, failure_rate=0.2, seed=38)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        for n in range(5):  # delivered to an exporter that never acknowledged them: not archived
            redis_client.xadd(STREAM, {"data": f'{{"job_id": "planted-{n}"}}'})
        planted = redis_client.xreadgroup(GROUP, "stalled-exporter", {STREAM: ">"}, count=10)[0][1]
        assert len(planted) == 5
        months, counts, files = by_month(warm), distinct(warm), cold_counts(cold)
        days_before = warm.days()

        run = RetentionManager(config, redis_client, now=lambda: time.time() + 10 * DAY, warm=warm,
                               cold=cold).apply()

        assert run.skipped is None and all(not t.refused for t in run.tiers), run
        assert [entry_id for entry_id, _ in redis_client.xrange(STREAM)] == [entry_id for entry_id, _ in planted]
        kept = warm.days()
        assert 0 < len(kept) < len(days_before) and {t.tier: t.removed > 0 for t in run.tiers} == {
            "redis": True, "warm": True, "cold": False}
        assert cold_counts(cold) == files == (3000, 3000)
        compacted = [tuple(info["name"].rsplit("/", 1)) for info in cold.listing()]
        assert all(name.startswith("compacted_") and name.endswith("_1of1.parquet") for _, name in compacted)
        assert len({directory for directory, _ in compacted}) == len(compacted)  # one file per hour
        assert by_month(warm) == months and distinct(warm) == counts == (3000, 3000)
