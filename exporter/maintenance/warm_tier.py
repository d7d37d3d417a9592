"""Retention of the warm tier: whole days past ``retention.clickhouse_ttl`` are dropped, each only once
a reconciliation proves its rows are in the cold tier.

For a day, the warm table's rows and distinct job ids are counted, and so are the cold tier's for the
same day (read through ``jobs_cold_hours``, only that day's files); every job id of the warm day must
be among the cold day's, and the cold day must hold at least as many rows. Otherwise the day is kept
and the refusal says what was short. The table TTL is only a backstop beyond the window (see
``tiers/ddl.backstop_ttl``), so nothing leaves the warm tier unreconciled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from exporter.engine.interface import ClickHouseBackend
from exporter.tiers.federation import COLD_HOURS, WARM


@dataclass(frozen=True)
class DayCheck:
    day: date
    warm_rows: int
    warm_jobs: int
    cold_rows: int
    cold_jobs: int
    missing_jobs: int  # job ids of the warm day that the cold day lacks

    @property
    def proven(self) -> bool:
        return self.missing_jobs == 0 and self.cold_rows >= self.warm_rows

    def refusal(self) -> str:
        return (f"{self.day}: kept, the cold tier is short ({self.cold_rows:,} rows and {self.cold_jobs:,} job ids "
                f"against the warm tier's {self.warm_rows:,} and {self.warm_jobs:,}; {self.missing_jobs:,} job ids "
                "missing there)")


def reconcile(backend: ClickHouseBackend, day: date) -> DayCheck:
    """Count the day in both tiers, in one query."""
    first, end = f"'{day} 00:00:00'", f"'{day + timedelta(days=1)} 00:00:00'"
    cold = (f"SELECT job_id FROM {COLD_HOURS} WHERE file_hour >= {first} AND file_hour < {end} "
            f"AND enqueue_time >= {first} AND enqueue_time < {end}")
    warm = f"SELECT job_id FROM {WARM} WHERE created_date = '{day}'"
    row = backend.query_arrow(
        f"SELECT (SELECT count() FROM ({warm})) AS warm_rows, (SELECT uniqExact(job_id) FROM ({warm})) AS warm_jobs, "
        f"(SELECT count() FROM ({cold})) AS cold_rows, (SELECT uniqExact(job_id) FROM ({cold})) AS cold_jobs, "
        f"(SELECT count() FROM (SELECT DISTINCT job_id FROM ({warm})) WHERE job_id NOT IN ({cold})) AS missing"
    ).to_pylist()[0]
    return DayCheck(day, row["warm_rows"], row["warm_jobs"], row["cold_rows"], row["cold_jobs"], row["missing"])
