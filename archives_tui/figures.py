"""The status panel's figures, each a named query of the archive: what it counts, and the rows behind it.

A figure's ``sql`` produces the number shown; its ``rows`` is what an SRE reads next (the failing jobs
behind "failed, last hour"), which Enter or o opens in the editor and runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.query.layer import QueryLayer
from exporter.query.run import run


@dataclass(frozen=True)
class Figure:
    name: str
    label: str
    sql: str  # one row, one column: the figure
    rows: str  # the rows behind it
    unit: str = ""


FIGURES = (
    Figure("today", "records today",
           "SELECT count() FROM jobs WHERE enqueue_time >= toStartOfDay(now())",
           "SELECT * FROM jobs WHERE enqueue_time >= toStartOfDay(now()) ORDER BY enqueue_time DESC LIMIT 1000"),
    Figure("failed_hour", "failed, last hour",
           "SELECT countIf(outcome != 'success') FROM jobs WHERE enqueue_time >= now() - INTERVAL 1 HOUR",
           "SELECT enqueue_time, queue, outcome, error_type, error_msg, job_id, worker_id FROM jobs\n"
           "WHERE enqueue_time >= now() - INTERVAL 1 HOUR AND outcome != 'success'\n"
           "ORDER BY enqueue_time DESC LIMIT 1000"),
    Figure("success_today", "success rate today",
           "SELECT round(100 * countIf(outcome = 'success') / greatest(count(), 1), 1) FROM jobs "
           "WHERE enqueue_time >= toStartOfDay(now())",
           "SELECT queue, count() AS jobs, round(100 * countIf(outcome = 'success') / count(), 1) AS success_pct\n"
           "FROM jobs WHERE enqueue_time >= toStartOfDay(now())\nGROUP BY queue ORDER BY success_pct", "%"),
    Figure("p95_hour", "p95 time, last hour",
           "SELECT round(quantile(0.95)(dateDiff('millisecond', start_time, end_time))) FROM jobs "
           "WHERE enqueue_time >= now() - INTERVAL 1 HOUR AND start_time IS NOT NULL",
           "SELECT queue, count() AS jobs,\n"
           "    round(quantile(0.95)(dateDiff('millisecond', start_time, end_time))) AS p95_ms\n"
           "FROM jobs WHERE enqueue_time >= now() - INTERVAL 1 HOUR AND start_time IS NOT NULL\n"
           "GROUP BY queue ORDER BY p95_ms DESC", " ms"),
    Figure("warm_rows", "warm rows",
           "SELECT sum(rows) FROM system.parts\n"
           "WHERE active AND database = currentDatabase() AND table = 'jobs_archive'",
           "SELECT partition AS day, sum(rows) AS rows, formatReadableSize(sum(bytes_on_disk)) AS on_disk\n"
           "FROM system.parts WHERE active AND database = currentDatabase() AND table = 'jobs_archive'\n"
           "GROUP BY day ORDER BY day DESC"),
)


def read_figures(queries: QueryLayer) -> dict[str, float | str | None]:
    """Each figure's value now (a figure whose query fails says why, the others are still read)."""
    values: dict[str, float | str | None] = {}
    for figure in FIGURES:
        try:
            values[figure.name] = run(queries, figure.sql).table.column(0)[0].as_py()  # routed: warm only
        except Exception as exc:  # shown in place of the number
            values[figure.name] = f"unavailable: {' '.join(str(exc).split())[:80]}"
    return values
