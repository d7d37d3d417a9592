"""jobs_cold and jobs over real tiers: every row counted once whatever state retention is in, both
tiers read with the same types, and `jobs` usable anywhere a table name is."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exporter import runtime
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from exporter.tiers.cold import ParquetStore
from tests.helpers import cold_table

STREAM = "completed_jobs"


@pytest.fixture
def archive(config, redis_client):
    """60 days of completions exported with a 30-day warm window: older ones are in the cold tier only."""
    config = config.replace("retention", clickhouse_ttl=30 * 86400.0)
    seed_stream(redis_client, STREAM, 6000, days=60, failure_rate=0.2, seed=31)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        metrics = ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        assert metrics.warm_skipped > 1000  # the older half went to the cold tier only
        yield warm, cold


def oracle(cold: ParquetStore) -> Counter:
    """(month, outcome) counts straight from the Parquet files, read by pyarrow, not the engine."""
    table = cold_table(cold)
    months = [t.strftime("%Y-%m") for t in table.column("enqueue_time").to_pylist()]
    return Counter(zip(months, table.column("outcome").to_pylist(), strict=True))


def by_month(warm, table: str = "jobs") -> Counter:
    rows = warm.backend.query_arrow(f"SELECT formatDateTime(enqueue_time, '%Y-%m') AS m, toString(outcome) AS o, "
                                    f"count() AS n FROM {table} GROUP BY m, o").to_pylist()
    return Counter({(r["m"], r["o"]): r["n"] for r in rows})


def distinct(warm) -> tuple[int, int]:
    row = warm.backend.query_arrow("SELECT count() AS n, uniqExact(job_id) AS u FROM jobs").to_pylist()[0]
    return row["n"], row["u"]


def test_jobs_is_every_row_once_whatever_state_retention_is_in(archive):
    warm, cold = archive
    expected = oracle(cold)
    assert sum(expected.values()) == 6000
    assert by_month(warm) == expected and distinct(warm) == (6000, 6000)
    assert by_month(warm, "jobs_cold") == expected

    # A store of an earlier version kept rows older than the window: they must not count twice.
    warm.backend.execute("INSERT INTO jobs_archive SELECT * FROM jobs_cold "
                         "WHERE enqueue_time < now() - INTERVAL 40 DAY")
    assert by_month(warm) == expected and distinct(warm) == (6000, 6000)

    # Retention dropped the oldest partitions the warm tier held: the cold tier serves those days.
    days = warm.backend.query_arrow("SELECT DISTINCT partition FROM system.parts WHERE active AND "
                                    "table = 'jobs_archive' ORDER BY partition LIMIT 15").column(0).to_pylist()
    for day in days:
        warm.backend.execute(f"ALTER TABLE jobs_archive DROP PARTITION '{day}'")
    assert by_month(warm) == expected and distinct(warm) == (6000, 6000)

    # An empty warm tier (a new store beside an old cold one): everything from the cold tier.
    warm.backend.execute("TRUNCATE TABLE jobs_archive")
    assert by_month(warm) == expected and distinct(warm) == (6000, 6000)


def test_over_400_days_each_month_and_outcome_is_counted_once(config, redis_client):
    """Thirteen months with a 30-day warm window, in one batch (no more files than hours): month by
    outcome over jobs equals the Parquet files read by pyarrow, before and after the warm tier's
    oldest partitions are dropped the way retention will."""
    config = config.replace("retention", clickhouse_ttl=30 * 86400.0).replace("pipeline", batch_size=5000)
    seed_stream(redis_client, STREAM, 3000, days=400, failure_rate=0.2, seed=34)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        expected = oracle(cold)
        assert sum(expected.values()) == 3000 and len({month for month, _ in expected}) >= 13
        assert by_month(warm) == expected and distinct(warm) == (3000, 3000)
        days = warm.backend.query_arrow("SELECT DISTINCT partition FROM system.parts WHERE active AND "
                                        "table = 'jobs_archive' ORDER BY partition LIMIT 10").column(0).to_pylist()
        assert days
        for day in days:
            warm.backend.execute(f"ALTER TABLE jobs_archive DROP PARTITION '{day}'")
        assert by_month(warm) == expected and distinct(warm) == (3000, 3000)


def test_both_tiers_read_alike(archive):
    warm, _ = archive
    types = {t: warm.backend.query_arrow(f"DESCRIBE TABLE {t}").select(["name", "type"]).to_pylist()
             for t in ("jobs_archive", "jobs_cold", "jobs")}
    assert types["jobs_cold"] == types["jobs"] == [c for c in types["jobs_archive"] if c["name"] != "created_date"]
    job = warm.backend.query_arrow("SELECT job_id FROM jobs_archive ORDER BY enqueue_time DESC LIMIT 1").column(0)[0]
    both = [warm.backend.query_arrow(f"SELECT * FROM {t} WHERE job_id = '{job}'").to_pylist()
            for t in ("jobs_archive", "jobs_cold")]
    assert both[0] == both[1] and len(both[0]) == 1


def test_jobs_works_inside_any_query(archive):
    warm, _ = archive
    in_warm = warm.backend.query_arrow("SELECT count() FROM jobs_archive").column(0)[0].as_py()
    cte = "WITH per_queue AS (SELECT queue, count() AS c FROM jobs GROUP BY queue) SELECT sum(c) FROM per_queue"
    join = "SELECT count() FROM jobs AS a INNER JOIN jobs_archive AS b ON a.job_id = b.job_id"
    sub = ("SELECT count() FROM (SELECT job_id FROM jobs WHERE outcome = 'failed') "
           "WHERE job_id IN (SELECT job_id FROM jobs)")
    failed = warm.backend.query_arrow("SELECT countIf(outcome = 'failed') FROM jobs").column(0)[0].as_py()
    assert [warm.backend.query_arrow(q).column(0)[0].as_py() for q in (cte, join, sub)] == [6000, in_warm, failed]


def test_files_of_earlier_versions_in_microseconds_read_as_milliseconds(config, redis_client):
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        moment = datetime.now(UTC) - timedelta(days=500)
        record = {name: [None] for name in ("start_time", "end_time", "payload_sample")}
        record.update(job_id=["old-1"], queue=["q"], tenant_id=[""], priority=pa.array([0], pa.int8()),
                      enqueue_time=pa.array([moment], pa.timestamp("us", tz="UTC")), outcome=["success"])
        path = f"{cold.jobs_root}/year={moment.year}/month={moment.month:02d}/day={moment.day:02d}/hour=00/old.parquet"
        cold.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        pq.write_table(pa.table(record), path)
        row = warm.backend.query_arrow("SELECT enqueue_time, toTypeName(enqueue_time) AS t FROM jobs "
                                       "WHERE job_id = 'old-1'").to_pylist()
        assert row == [{"enqueue_time": moment.replace(microsecond=moment.microsecond // 1000 * 1000),
                        "t": "DateTime64(3, 'UTC')"}]


def test_an_s3_cold_tier_is_read_by_the_embedded_engine(config, redis_client, s3_endpoint, s3_bucket):
    config = config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)
    seed_stream(redis_client, STREAM, 700, days=3, seed=32)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)
        counts = warm.backend.query_arrow("SELECT (SELECT count() FROM jobs_cold) AS cold, (SELECT count() FROM jobs) "
                                          "AS total").to_pylist()
    assert counts == [{"cold": 700, "total": 700}]


def test_the_cli_queries_jobs_on_a_fresh_store(config, redis_client, tmp_path, capsys):
    from archives_tui.cli import main
    from tests.test_outages import write_config

    config_file = write_config(tmp_path / "archives.yaml", config)
    seed_stream(redis_client, STREAM, 80, days=2, seed=33)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config_file), "query", "SELECT count() AS n, uniqExact(job_id) AS u FROM jobs",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "80,80"
