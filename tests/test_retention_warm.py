"""Warm-tier retention: days past the window leave the warm tier only once the cold tier is proven to
hold them, `jobs` answers the same before and after, and the table TTL is only a backstop. The clock
the manager reads is moved forward instead of waited for."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from exporter import runtime
from exporter.maintenance.retention import RetentionManager
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from tests.test_federation import by_month, distinct

DAY = 86400.0


@pytest.fixture
def archive(config, redis_client):
    """40 days of completions with a 30-day warm window: the warm tier holds the last 30 days."""
    config = config.replace("retention", clickhouse_ttl=30 * DAY).replace("pipeline", batch_size=5000)
    seed_stream(redis_client, "completed_jobs", 4000, days=40, failure_rate=0.2, seed=35)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        yield config, warm, Path(config.cold.url.removeprefix("file://"))


def ten_days_later(config, redis_client, warm) -> RetentionManager:
    return RetentionManager(config, redis_client, now=lambda: time.time() + 10 * DAY, warm=warm)


def test_days_past_the_window_are_dropped_and_jobs_is_unchanged(archive, redis_client):
    config, warm, _ = archive
    before, counts = by_month(warm), distinct(warm)
    days_before = [date.fromisoformat(day) for day, _, _ in warm.days()]
    run = ten_days_later(config, redis_client, warm).apply(("warm",))
    report = run.tiers[0]
    first_kept = datetime.now(UTC).date() + timedelta(days=10 - 29)
    assert not report.refused and report.details["days"]["window_starts"] == str(first_kept)
    assert [date.fromisoformat(day) for day, _, _ in warm.days()] == [d for d in days_before if d >= first_kept]
    assert len(report.details["days"]["removed"]) == len([d for d in days_before if d < first_kept]) >= 9
    assert report.removed > 0 and report.bytes_removed > 0
    assert by_month(warm) == before and distinct(warm) == counts


def test_a_day_the_cold_tier_lacks_is_kept_and_said_so(archive, redis_client):
    config, warm, cold_root = archive
    oldest = date.fromisoformat(warm.days()[0][0])
    month = cold_root / "jobs" / f"year={oldest.year:04d}" / f"month={oldest.month:02d}"
    shutil.rmtree(month / f"day={oldest.day:02d}")
    report = ten_days_later(config, redis_client, warm).apply(("warm",)).tiers[0]
    assert warm.days()[0][0] == str(oldest)
    assert len(report.refused) == 1 and report.refused[0].startswith(f"{oldest}: kept, the cold tier is short (0 rows")
    assert str(oldest) not in report.details["days"]["removed"] and report.details["days"]["removed"]


def test_a_dry_run_drops_nothing(archive, redis_client):
    config, warm, _ = archive
    days = warm.days()
    report = ten_days_later(config, redis_client, warm).apply(("warm",), dry_run=True).tiers[0]
    assert warm.days() == days and report.removed > 0 and report.details["days"]["removed"]


def test_the_ttl_is_a_backstop_beyond_the_window_and_old_stores_get_it(archive):
    _, warm, _ = archive

    def ttl() -> str:
        return warm.backend.query_arrow("SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                                        "AND name = 'jobs_archive'").column(0)[0].as_py()

    assert "TTL created_date + toIntervalDay(60)" in ttl()  # 30 days of window + 30 of backstop
    warm.backend.execute("ALTER TABLE jobs_archive MODIFY TTL created_date + INTERVAL 30 DAY",
                         {"materialize_ttl_after_modify": 0})  # what earlier versions created
    rows = distinct(warm)
    warm.ensure_schema()
    assert "TTL created_date + toIntervalDay(60)" in ttl() and distinct(warm) == rows


def test_the_views_keep_their_own_window(archive, redis_client):
    config, warm, _ = archive
    # Rows of 100 days ago reach the views (they are counted as they are inserted into jobs_archive).
    warm.backend.execute("INSERT INTO jobs_archive SELECT * REPLACE (enqueue_time - INTERVAL 100 DAY AS enqueue_time, "
                         "start_time - INTERVAL 100 DAY AS start_time, end_time - INTERVAL 100 DAY AS end_time, "
                         "concat('a pattern seen only then: ', error_msg) AS error_msg) "
                         "FROM jobs_archive WHERE outcome = 'failed' LIMIT 50")
    oldest = warm.backend.query_arrow("SELECT toDate(min(hour)) AS d FROM queue_hourly_stats").column(0)[0].as_py()
    assert oldest < datetime.now(UTC).date() - timedelta(days=90)
    config = config.replace("retention", stats_ttl=60 * DAY)
    report = RetentionManager(config, redis_client, warm=warm).apply(("warm",)).tiers[0]
    first_kept = datetime.now(UTC).date() - timedelta(days=59)
    stats = report.details["stats"]
    assert stats["window_starts"] == str(first_kept) and stats["months_dropped"] and stats["error_patterns_deleted"]
    left = warm.backend.query_arrow("SELECT toDate(min(hour)) AS d FROM queue_hourly_stats").column(0)[0].as_py()
    assert left >= first_kept.replace(day=1)  # whole months only
    assert warm.backend.query_arrow(f"SELECT count() FROM error_patterns WHERE last_seen < '{first_kept}'"
                                    ).column(0)[0].as_py() == 0


def test_a_tier_that_fails_is_refused_and_the_others_still_run(archive, redis_client):
    config, warm, cold_dir = archive
    year, month, day = warm.days()[0][0].split("-")  # the oldest warm day's hours cannot be read
    hour = sorted(cold_dir.glob(f"jobs/year={year}/month={month}/day={day}/*"))[0]
    (hour / "1-0_0123456789ab.parquet").write_bytes(b"not parquet")
    days = warm.days()
    run = ten_days_later(config, redis_client, warm).apply(("warm", "redis"))
    warm_report, redis_report = run.tiers
    assert "and later days: kept, the cold tier could not be read to check them" in warm_report.refused[0]
    assert warm_report.removed == 0
    assert redis_report.tier == "redis" and not redis_report.refused
    assert warm.days() == days  # every day kept


def test_days_are_checked_together_within_the_row_budget(monkeypatch):
    from datetime import date

    from exporter.maintenance import warm_tier

    monkeypatch.setattr(warm_tier, "ROWS_PER_CHECK", 100)
    days = [(date(2026, 1, 30), 60), (date(2026, 1, 31), 60), (date(2026, 2, 1), 30), (date(2026, 2, 2), 500),
            (date(2026, 2, 3), 10)]
    chunks = [[d.day for d, _ in chunk] for chunk in warm_tier._chunks(days)]
    assert chunks == [[30], [31, 1], [2], [3]]
