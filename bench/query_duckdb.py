"""The query templates in DuckDB's dialect, over the cold tier's Parquet files: the reference the issue
compares the cold tier with. DuckDB is a bench extra (``pip install -e '.[bench]'``), not a dependency.

Each statement asks what the ClickHouse template asks, with DuckDB's functions: ``approx_quantile`` for
ClickHouse's (also approximate) ``quantile``, ``count(DISTINCT)`` for ``uniqExact``, ``any_value`` for
``any``. Ranges are absolute timestamps (the ClickHouse templates count back from ``now64()``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_DURATION = "date_diff('millisecond', start_time, end_time)"

TEMPLATES = {
    "queue-health": f"""SELECT queue, outcome, count(*) AS jobs,
    round(100 * count(*) / sum(count(*)) OVER (PARTITION BY queue), 2) AS pct_of_queue,
    round(avg({_DURATION})) AS avg_ms, round(approx_quantile({_DURATION}, 0.95)) AS p95_ms
FROM jobs WHERE {{where}} GROUP BY queue, outcome ORDER BY jobs DESC""",
    "error-investigation": """SELECT queue, error_type, count(*) AS errors, count(DISTINCT job_id) AS jobs,
    any_value(error_msg) AS sample_error, min(enqueue_time) AS first_seen, max(enqueue_time) AS last_seen
FROM jobs WHERE {where} AND outcome IN ('failed', 'timeout') GROUP BY queue, error_type ORDER BY errors DESC
LIMIT 100""",
    "capacity-planning": """SELECT queue, date_trunc('hour', enqueue_time) AS hour, count(*) AS jobs,
    sum(payload_size) AS payload_bytes, count(DISTINCT worker_id) AS workers
FROM jobs WHERE {where} GROUP BY queue, hour ORDER BY jobs DESC LIMIT 200""",
    "performance-trends": f"""SELECT CAST(enqueue_time AS DATE) AS day, queue, count(*) AS jobs,
    round(100 * count_if(outcome = 'success') / count(*), 2) AS success_pct,
    approx_quantile({_DURATION}, [0.5, 0.95, 0.99]) AS p50_p95_p99_ms
FROM jobs WHERE {{where}} GROUP BY day, queue ORDER BY day, queue""",
    "retention-status": """SELECT 'cold' AS tier, count(*) AS jobs, min(enqueue_time) AS oldest,
    max(enqueue_time) AS newest FROM jobs WHERE {where}""",
    "recent-errors": """SELECT queue, error_type, count(*) AS error_count, any_value(error_msg) AS sample_error
FROM jobs WHERE {where} AND outcome = 'failed' GROUP BY queue, error_type ORDER BY error_count DESC LIMIT 100""",
    "throughput": """SELECT queue, date_trunc('hour', enqueue_time) AS hour, count(*) AS total_jobs,
    sum(payload_size) AS total_size
FROM jobs WHERE {where} GROUP BY queue, hour ORDER BY hour DESC, total_jobs DESC""",
    "worker-performance": f"""SELECT worker_id, queue, count_if(outcome = 'success') AS success_count,
    count_if(outcome = 'failed') AS failure_count, round(avg({_DURATION})) AS avg_ms
FROM jobs WHERE {{where}} AND start_time IS NOT NULL AND end_time IS NOT NULL GROUP BY worker_id, queue
HAVING success_count + failure_count >= 100 ORDER BY failure_count / (success_count + failure_count) DESC""",
    "lookup by job_id": "SELECT * FROM jobs WHERE job_id = '{job_id}'",
}


class DuckDB:
    """A DuckDB connection with ``jobs`` as a view over every Parquet file of the cold tier."""

    def __init__(self, jobs_root: str) -> None:
        import duckdb

        self.version = duckdb.__version__
        self.connection = duckdb.connect()
        self.connection.execute("SET TimeZone = 'UTC'")
        # hive_partitioning off: the path's `hour` and `day` would shadow the templates' aliases
        self.connection.execute(f"CREATE VIEW jobs AS SELECT * FROM read_parquet('{jobs_root}/**/*.parquet', "
                                "hive_partitioning = false)")

    def run(self, name: str, since: datetime, until: datetime, **values: Any) -> int:
        """Run template ``name`` over [since, until); returns the number of result rows."""
        where = (f"enqueue_time >= TIMESTAMPTZ '{since.isoformat()}' "
                 f"AND enqueue_time < TIMESTAMPTZ '{until.isoformat()}'")
        return len(self.connection.execute(TEMPLATES[name].format(where=where, **values)).fetchall())

    def close(self) -> None:
        self.connection.close()


def open_duckdb(jobs_root: str) -> DuckDB | None:
    """DuckDB over the files, or None (with the reason printed) when the bench extra is not installed."""
    try:
        return DuckDB(jobs_root)
    except ImportError:
        print("DuckDB is not installed: its column is skipped (pip install -e '.[bench]' adds it)")
        return None
