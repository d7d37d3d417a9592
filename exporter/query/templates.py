"""The seed's query templates, with parameters: a time range (``since``/``until``, durations before now),
and optional ``queue`` and ``tenant`` filters.

Every template reads ``jobs``, the whole archive, so each is right over a warm-only, a cold-only or a
spanning range (the seed's throughput query read ``queue_hourly_stats``, which holds the warm window
only). Parameters are validated and rendered as literals here; a template's SQL still passes the guard.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from exporter.config import TEMPLATE_PARAMETERS, TemplateSpec
from exporter.engine.interface import Catalog, ClickHouseBackend
from exporter.engine.sql import sql_string
from exporter.errors import ArchivesError
from exporter.units import parse_duration


class TemplateError(ArchivesError):
    """An unknown template or a bad parameter."""


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    description: str
    sql: str  # {where} is the range and filters; {since}, {until} are the range's bounds
    defaults: dict[str, str]


TEMPLATES = {t.name: t for t in [
    Template("queue-health", "[1] Queue Health Analysis", "jobs, share and duration by queue and outcome",
             """SELECT queue, outcome, count() AS jobs,
    round(100 * count() / sum(count()) OVER (PARTITION BY queue), 2) AS pct_of_queue,
    round(avg(dateDiff('millisecond', start_time, end_time))) AS avg_ms,
    round(quantile(0.95)(dateDiff('millisecond', start_time, end_time))) AS p95_ms
FROM jobs
WHERE {where}
GROUP BY queue, outcome
ORDER BY jobs DESC""", {"since": "7d"}),
    Template("error-investigation", "[2] Error Investigation", "top failure kinds with a sample message",
             """SELECT queue, error_type, count() AS errors, uniqExact(job_id) AS jobs, any(error_msg) AS sample_error,
    min(enqueue_time) AS first_seen, max(enqueue_time) AS last_seen
FROM jobs
WHERE {where} AND outcome IN ('failed', 'timeout')
GROUP BY queue, error_type
ORDER BY errors DESC
LIMIT 100""", {"since": "24h"}),
    Template("capacity-planning", "[3] Capacity Planning", "jobs and payload bytes per hour, busiest first",
             """SELECT queue, toStartOfHour(enqueue_time) AS hour, count() AS jobs, sum(payload_size) AS payload_bytes,
    uniqExact(worker_id) AS workers
FROM jobs
WHERE {where}
GROUP BY queue, hour
ORDER BY jobs DESC
LIMIT 200""", {"since": "7d"}),
    Template("performance-trends", "[4] Performance Trends", "daily duration percentiles and success rate",
             """SELECT toDate(enqueue_time) AS day, queue, count() AS jobs,
    round(100 * countIf(outcome = 'success') / count(), 2) AS success_pct,
    quantiles(0.5, 0.95, 0.99)(dateDiff('millisecond', start_time, end_time)) AS p50_p95_p99_ms
FROM jobs
WHERE {where}
GROUP BY day, queue
ORDER BY day, queue""", {"since": "30d"}),
    Template("retention-status", "[5] Retention Status", "what each tier holds in the range, and the warm cutoff",
             """SELECT 'warm' AS tier, count() AS jobs, min(enqueue_time) AS oldest, max(enqueue_time) AS newest
FROM jobs_archive WHERE {where}
UNION ALL
SELECT 'cold', count(), min(enqueue_time), max(enqueue_time) FROM jobs_cold WHERE {where}
UNION ALL
SELECT 'archive (jobs)', count(), min(enqueue_time), max(enqueue_time) FROM jobs WHERE {where}""",
             {"since": "3650d"}),
    Template("recent-errors", "Recent errors", "the seed's optimized error query, over the whole archive",
             """SELECT queue, error_type, count() AS error_count, any(error_msg) AS sample_error
FROM jobs
WHERE {where} AND outcome = 'failed'
GROUP BY queue, error_type
ORDER BY error_count DESC
LIMIT 100""", {"since": "7d"}),
    Template("throughput", "Throughput", "jobs and payload bytes per queue and hour",
             """SELECT queue, toStartOfHour(enqueue_time) AS hour, count() AS total_jobs,
    sum(payload_size) AS total_size
FROM jobs
WHERE {where}
GROUP BY queue, hour
ORDER BY hour DESC, total_jobs DESC""", {"since": "24h"}),
    Template("worker-performance", "Worker performance", "failure rate and duration per worker",
             """SELECT worker_id, queue, countIf(outcome = 'success') AS success_count,
    countIf(outcome = 'failed') AS failure_count, round(avg(dateDiff('millisecond', start_time, end_time))) AS avg_ms
FROM jobs
WHERE {where} AND start_time IS NOT NULL AND end_time IS NOT NULL
GROUP BY worker_id, queue
HAVING success_count + failure_count >= {min_jobs}
ORDER BY failure_count / (success_count + failure_count) DESC""", {"since": "24h", "min_jobs": "100"}),
]}

_PARAMETERS = set(TEMPLATE_PARAMETERS)


def available(own: tuple[TemplateSpec, ...] = ()) -> dict[str, Template]:
    """The seed's templates, then the user's own from the config file (query.templates)."""
    found = dict(TEMPLATES)
    for spec in own:
        if spec.name in TEMPLATES:
            raise TemplateError(f"query.templates: {spec.name!r} is the name of a built-in template; "
                                "give yours another name")
        found[spec.name] = Template(spec.name, spec.title, spec.description, spec.sql,
                                    {"since": "7d", **dict(spec.defaults)})
    return found


def catalog(backend: ClickHouseBackend, own: tuple[TemplateSpec, ...] = ()) -> Catalog:
    """Everything completion offers in one call: the engine's tables, columns, functions and keywords,
    and the names of the templates (the seed's and the user's own)."""
    return dataclasses.replace(backend.catalog(), templates=tuple(available(own)))


def render(name: str, params: dict[str, str] | None = None, among: dict[str, Template] | None = None) -> str:
    """The template's SQL with its parameters (defaults where not given) as literals."""
    among = TEMPLATES if among is None else among
    template = among.get(name)
    if template is None:
        raise TemplateError(f"no template {name!r} (templates: {', '.join(among)})")
    given = dict(params or {})
    unknown = sorted(set(given) - _PARAMETERS)
    if unknown:
        raise TemplateError(f"template {name}: unknown parameter {unknown[0]!r} "
                            f"(parameters: {', '.join(sorted(_PARAMETERS))})")
    values = {"until": "0s", **template.defaults, **given}
    since, until = _seconds(name, "since", values["since"]), _seconds(name, "until", values["until"])
    if until >= since:
        raise TemplateError(f"template {name}: until ({values['until']}) must be more recent than since "
                            f"({values['since']})")
    where = [f"enqueue_time >= now64(3) - toIntervalMillisecond({int(since * 1000)})",
             f"enqueue_time < now64(3) - toIntervalMillisecond({int(until * 1000)})"]
    if values.get("queue"):
        where.append(f"queue = {sql_string(values['queue'])}")
    if values.get("tenant"):
        where.append(f"tenant_id = {sql_string(values['tenant'])}")
    try:
        min_jobs = int(values.get("min_jobs", "0"))
    except ValueError:
        raise TemplateError(f"template {name}: min_jobs must be a whole number, got {values['min_jobs']!r}") from None
    return template.sql.format(where=" AND ".join(where), min_jobs=min_jobs)


def _seconds(name: str, key: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise TemplateError(f"template {name}: {key}: {exc} (a time before now, e.g. 7d or 36h)") from None


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["queue=payments", "since=3d"]`` -> a dict; a pair without ``=`` is an error."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TemplateError(f"--param expects NAME=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params
