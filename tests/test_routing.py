"""Routing: a time range on `jobs` reads only the tiers and the cold hours it needs, and the answer is the
same as reading everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import runtime
from exporter.pipeline import ExportPipeline
from exporter.query.layer import LocalQueries
from exporter.query.routing import route
from exporter.query.run import run
from exporter.seed import seed_stream

STREAM = "completed_jobs"

QUERIES = [
    "SELECT count() AS n FROM jobs WHERE enqueue_time >= now() - INTERVAL 7 DAY",
    "SELECT count() AS n FROM jobs WHERE enqueue_time < now() - INTERVAL 40 DAY",
    "SELECT count() AS n FROM jobs WHERE enqueue_time >= now() - INTERVAL 45 DAY AND queue != ''",
    "SELECT count() AS n FROM jobs WHERE enqueue_time BETWEEN now() - INTERVAL 50 DAY AND now() - INTERVAL 10 DAY",
    "SELECT count() AS n FROM jobs AS j WHERE j.enqueue_time > now() - INTERVAL 35 DAY "
    "AND j.enqueue_time <= now() - INTERVAL 25 DAY",
    "SELECT count() AS n FROM (SELECT job_id FROM jobs WHERE enqueue_time >= toStartOfDay(now()) - INTERVAL 40 DAY)",
    "SELECT count() AS n FROM jobs WHERE enqueue_time >= now() - INTERVAL 7 DAY OR outcome = 'failed'",
    "SELECT toString(outcome) AS o, count() AS n FROM jobs WHERE enqueue_time < now() - INTERVAL 31 DAY "
    "AND (enqueue_time >= now() - INTERVAL 55 DAY) GROUP BY o ORDER BY o",
    "SELECT count() AS n FROM jobs WHERE enqueue_time = (SELECT min(enqueue_time) FROM jobs_archive)",
    "WITH recent AS (SELECT * FROM jobs WHERE enqueue_time >= now() - INTERVAL 3 DAY) "
    "SELECT count() AS n FROM recent JOIN jobs USING job_id",
    "SELECT count() AS n, min(enqueue_time) AS first FROM jobs_cold WHERE enqueue_time >= now() - INTERVAL 45 DAY",
]


@pytest.fixture
def archive(config, redis_client):
    """60 days of completions with a 30-day warm window: the older half is in the cold tier only."""
    config = config.replace("retention", clickhouse_ttl=30 * 86400.0)
    seed_stream(redis_client, STREAM, 4000, days=60, failure_rate=0.2, seed=7)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        yield warm, Path(config.cold.url.removeprefix("file://"))


def test_a_routed_query_answers_as_reading_everything_does(archive):
    warm, _ = archive
    for sql in QUERIES:
        assert run(LocalQueries(warm.backend), sql).table == warm.backend.query_arrow(sql), sql
    rewritten = [route(warm.backend, sql).sql for sql in QUERIES]
    # Not the OR, nor a bound that is a subquery; in the last, the CTE's read is bounded, the join's is not.
    assert [new != old for new, old in zip(rewritten, QUERIES, strict=True)] == [True] * 6 + [False, True, False,
                                                                                            True, True]
    assert "jobs_cold_hours" not in rewritten[0] and "FROM jobs_archive WHERE" in rewritten[0]  # warm only
    assert rewritten[-2].count("FROM jobs_archive WHERE") == 1 and rewritten[-2].endswith("JOIN jobs USING job_id")
    assert "jobs_archive" not in rewritten[-1] and "FROM jobs_cold_hours(days = '" in rewritten[-1]
    assert "jobs_cold_hours" in rewritten[1] and "FROM jobs_archive" not in rewritten[1]  # cold only


def test_tiers_follow_the_range(archive):
    warm, _ = archive
    tiers = {sql: route(warm.backend, sql).tiers for sql in QUERIES[:4]}
    assert list(tiers.values()) == [("warm",), ("cold",), ("warm", "cold"), ("warm", "cold")]
    queries = LocalQueries(warm.backend)  # the same from the engine's normalized text, which runs
    assert [queries.run(sql).tiers for sql in QUERIES[:4]] == list(tiers.values())
    assert route(warm.backend, QUERIES[6]).tiers == ("warm", "cold")  # OR: no range, both tiers
    assert route(warm.backend, "SELECT count() FROM jobs_archive").tiers == ("warm",)
    assert route(warm.backend, "SELECT count() FROM jobs_cold").tiers == ("cold",)
    assert route(warm.backend, "SELECT 1").tiers == ()
    assert route(warm.backend, "SELECT count() AS jobs FROM jobs_archive").tiers == ("warm",)


def _plant_unreadable_hour(cold_root: Path, when: str) -> None:
    """A file no Parquet reader can open, in the hour ``when`` (YYYY/MM/DD/HH) of the cold tier."""
    year, month, day, hour = when.split("/")
    directory = cold_root / "jobs" / f"year={year}" / f"month={month}" / f"day={day}" / f"hour={hour}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "unreadable.parquet").write_bytes(b"not parquet")


def test_a_warm_range_opens_no_parquet_file(archive):
    warm, cold_root = archive
    _plant_unreadable_hour(cold_root, "2001/01/01/00")
    with pytest.raises(Exception, match=r"(?i)parquet"):
        warm.backend.query_arrow("SELECT count() FROM jobs WHERE enqueue_time >= now() - INTERVAL 7 DAY")
    result = run(LocalQueries(warm.backend),
                 "SELECT count() AS n FROM jobs WHERE enqueue_time >= now() - INTERVAL 7 DAY")
    assert result.tiers == ("warm",) and result.table.column("n")[0].as_py() > 0
    routed = route(warm.backend, "SELECT count() FROM jobs WHERE enqueue_time >= now() - INTERVAL 7 DAY").sql
    plan = "\n".join(warm.backend.query_arrow(f"EXPLAIN {routed}").column(0).to_pylist())
    assert "ReadFromMergeTree" in plan and "File" not in plan  # the cold tier is not even listed


def test_a_cold_range_opens_only_its_hours(archive):
    warm, cold_root = archive
    _plant_unreadable_hour(cold_root, "2001/01/01/00")
    sql = "SELECT count() AS n FROM jobs WHERE enqueue_time >= '2001-01-02' AND enqueue_time < now() - INTERVAL 40 DAY"
    result = run(LocalQueries(warm.backend), sql)
    assert result.tiers == ("cold",) and result.table.column("n")[0].as_py() > 0
    everything = run(LocalQueries(warm.backend), "SELECT count() AS n FROM jobs WHERE enqueue_time >= '2001-01-02'")
    assert 0 < result.stats.rows_read < everything.stats.rows_read
    cold = run(LocalQueries(warm.backend), "SELECT count() AS n FROM jobs_cold WHERE enqueue_time >= '2001-01-02'")
    assert cold.tiers == ("cold",) and cold.table.column("n")[0].as_py() > result.table.column("n")[0].as_py()


@pytest.mark.parametrize(("sql", "bounds"), [
    ("SELECT 1 FROM jobs WHERE enqueue_time >= '2026-01-01' AND enqueue_time < '2026-02-01 00:00:00'",
     ("2026-01-01 00:00:00.000", "2026-02-01 00:01:00.000")),
    ("SELECT 1 FROM jobs j WHERE queue = 'a AND b' AND j.enqueue_time <= '2026-01-01 10:00:00.0004'",
     ("1970-01-01 00:00:00.000", "2026-01-01 10:01:00.001")),
    ("SELECT 1 FROM jobs WHERE enqueue_time BETWEEN '2026-01-01' AND '2026-01-02' AND outcome = 'failed'",
     ("2026-01-01 00:00:00.000", "2026-01-02 00:01:00.001")),
    ("SELECT 1 FROM jobs WHERE enqueue_time = toDateTime64('2026-03-04 05:06:07.123', 3, 'UTC')",
     ("2026-03-04 05:06:07.123", "2026-03-04 05:07:07.124")),
    ("SELECT 1 FROM jobs WHERE enqueue_time > start_time", None),  # not a constant
    ("SELECT 1 FROM jobs WHERE enqueue_time >= '2026-01-01' AND queue = 'a' OR queue = 'b'", None),
    ("SELECT 1 FROM jobs WHERE NOT enqueue_time >= '2026-01-01'", None),
    ("SELECT 1 FROM jobs WHERE enqueue_time NOT BETWEEN '2026-01-01' AND '2026-02-01'", None),
    ("SELECT 1 FROM jobs, jobs_archive WHERE enqueue_time >= '2026-01-01'", None),
    ("SELECT 1 FROM jobs WHERE enqueue_time IN ('2026-01-01')", None),
])
def test_only_bounds_that_certainly_hold_are_read(config, sql, bounds):
    with runtime.open_warm(config) as warm:  # empty: every range is read from the cold tier
        routed = route(warm.backend, sql)
    if bounds is None:
        assert routed.sql == sql
        return
    since, until = bounds
    assert "FROM jobs " not in routed.sql and "FROM jobs_cold_hours(days = '" in routed.sql
    assert f"enqueue_time >= toDateTime64('{since}', 3, 'UTC')" in routed.sql
    assert f"enqueue_time < toDateTime64('{until}', 3, 'UTC')" in routed.sql


def test_a_cold_range_lists_only_its_days():
    from datetime import UTC, datetime

    from exporter.query.routing import _days

    assert _days(datetime(2026, 1, 31, 5, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)) == (
        "{year=2026/month=01/day=31,year=2026/month=02/day=01}")  # the end's day has no hour of the range
    assert _days(datetime(2026, 1, 31, 5, tzinfo=UTC), datetime(2026, 1, 31, 6, tzinfo=UTC)) == (
        "year=2026/month=01/day=31")
    assert _days(datetime(1970, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)) == "*/*/*"
