"""The federated tables: ``jobs_cold`` reads every Parquet file of the cold tier through the engine, and
``jobs`` is the whole archive as one table: warm rows from the warm cutoff on, cold rows before it.

The cutoff is the warm tier's real horizon, worked out by the engine on every query (a scalar
subquery, so it follows retention without re-creating anything): the later of

* the first day of the warm window (``retention.clickhouse_ttl``): older days in the warm table are
  expired, and a TTL merge may have removed part of them already, and
* the oldest day the warm table holds (a dropped partition, or a warm store newer than the cold one),

at 00:00 UTC. With an empty warm table every row comes from the cold tier. The cold tier holds every
record, so each row is counted once: a day is served by one tier only, whatever state retention is in.
Both tables have exactly jobs_archive's column types (times in milliseconds, outcome as its Enum), so a
row reads the same whichever tier serves it.

``jobs_cold_hours(days = '<pattern>')`` is ``jobs_cold`` over the day directories a pattern names
(``days_glob``), with each row's file hour (``file_hour``, from the hive path): the query layer's router
lists only the days a query's range needs, and a filter on file_hour chooses among their hours before
any file is opened (ClickHouse cannot derive either from a filter on enqueue_time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlparse

import pyarrow as pa

from exporter.config import ColdConfig
from exporter.engine.interface import ClickHouseBackend
from exporter.engine.sql import settings_clause, sql_string
from exporter.record import RECORD_SCHEMA
from exporter.tiers.layout import superseded_sql

WARM, COLD, FEDERATED, COLD_HOURS, CUTOFF = "jobs_archive", "jobs_cold", "jobs", "jobs_cold_hours", "jobs_cutoff"
_HIVE = {"year": "UInt16", "month": "UInt8", "day": "UInt8", "hour": "UInt8"}


def _clickhouse_type(kind: pa.DataType, nullable: bool) -> str:
    if pa.types.is_timestamp(kind):
        name = "DateTime64(6, 'UTC')"  # reads files in either unit: earlier versions wrote microseconds
    elif pa.types.is_map(kind):
        return "Map(String, String)"
    else:
        name = {pa.string(): "String", pa.int8(): "Int8", pa.uint16(): "UInt16", pa.uint32(): "UInt32"}[kind]
    return f"Nullable({name})" if nullable else name


def cold_structure() -> str:
    """The Parquet files' columns as the engine reads them, plus the hive path's partition columns."""
    columns = [f"{f.name} {_clickhouse_type(f.type, f.nullable)}" for f in RECORD_SCHEMA]
    return ", ".join([*columns, *(f"{name} {kind}" for name, kind in _HIVE.items())])


ALL_DAYS = "*/*/*"  # every year=/month=/day= directory


def days_glob(days: Iterable[date]) -> str:
    """A pattern of the cold tier's day directories holding ``days`` (ClickHouse's ``{a,b}``)."""
    paths = [f"year={d.year:04d}/month={d.month:02d}/day={d.day:02d}" for d in sorted(set(days))]
    return paths[0] if len(paths) == 1 else "{" + ",".join(paths) + "}"


@dataclass(frozen=True)
class ColdSource:
    """The cold tier as the engine reads it: the table function over its Parquet files, the same function
    listing them (``One`` format: names, no data), and the settings reading them needs.

    The files are chosen by a pattern of day directories (``days_glob``, or ALL_DAYS), an SQL
    expression: the engine lists every file the pattern covers before it reads any (about 55 µs a
    file here), so a query of a day names that day: 33 ms against 173 for the same query filtering a
    listing of all 1,440 hours (bench/query.py's data set).
    """

    jobs: str  # the path or URL of the jobs/ directory, ending in "/"
    function_name: str  # file or s3
    credentials: str = ""  # "key, secret, " or "NOSIGN, " for s3
    settings: dict[str, object] = field(default_factory=dict)

    def function(self, days: str, fmt: str = "Parquet") -> str:
        path = f"concat({sql_string(self.jobs)}, {days}, '/*/*.parquet')"
        structure = f", {sql_string(cold_structure())}" if fmt == "Parquet" else ""
        return f"{self.function_name}({path}, {self.credentials}'{fmt}'{structure})"

    def select(self, columns: str, days: str = sql_string(ALL_DAYS)) -> str:
        """Read the live files only: compaction's superseded files are never opened (``layout``)."""
        listing = self.function(days, "One")
        return (f"SELECT {columns} FROM {self.function(days)} WHERE _path NOT IN ({superseded_sql(listing)})"
                f"{settings_clause(self.settings)}")


# S3 reads retry 100 times by default: an unreachable endpoint would hang `status` and every query for
# minutes. A few attempts still ride out a dropped connection.
_S3_SETTINGS = {"s3_retry_attempts": 3, "s3_connect_timeout_ms": 3000}


def cold_source(cold: ColdConfig, url: str) -> ColdSource:
    """The cold tier at ``url`` as the engine reads it."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return ColdSource(parsed.path.rstrip("/") + "/jobs/", "file")
    endpoint = (cold.endpoint_url or f"https://s3.{cold.region or 'us-east-1'}.amazonaws.com").rstrip("/")
    key = cold.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = cold.secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    credentials = f"{sql_string(key)}, {sql_string(secret)}, " if key and secret else "NOSIGN, "
    return ColdSource(f"{endpoint}/{parsed.netloc}{parsed.path.rstrip('/')}/jobs/", "s3", credentials,
                      dict(_S3_SETTINGS))


@dataclass(frozen=True)
class WarmParts:
    """Where the engine finds the warm table's parts, for the cutoff: its own system.parts, or a
    server's through remote() when the engine reaching the cold tier is not the warm one."""

    parts: str = "system.parts"
    database: str = "currentDatabase()"


def cutoff_expression(ttl_days: int, warm: WarmParts = WarmParts()) -> str:
    """The warm cutoff as a scalar subquery (see the module docstring)."""
    window_start = f"toDate(now(), 'UTC') - {ttl_days - 1}"
    return (f"(SELECT toDateTime64(if(count() = 0, toDate('2149-06-06'), greatest({window_start}, "
            f"min(toDate(partition)))), 3, 'UTC') FROM {warm.parts} WHERE active AND database = {warm.database} "
            f"AND table = '{WARM}')")


def install_remote_warm(backend: ClickHouseBackend, function: str, host: str, database: str, user: str,
                        password: str) -> WarmParts:
    """Make a server's warm tables addressable by their names in a local engine (views over ``remote()``
    or ``remoteSecure()``), for a deployment whose server cannot read the cold tier (``file://``)."""
    def remote(db: str, table: str) -> str:
        return f"{function}({', '.join(sql_string(x) for x in (host, db, table, user, password))})"

    for table in (WARM, "queue_hourly_stats", "error_patterns"):
        backend.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {remote(database, table)}")
    return WarmParts(remote("system", "parts"), sql_string(database))


def install(backend: ClickHouseBackend, source: ColdSource, ttl_days: int,
            warm: WarmParts = WarmParts()) -> None:
    """Create or replace ``jobs_cold`` over ``source`` and ``jobs`` over both tiers (idempotent)."""
    described = backend.query_arrow(f"DESCRIBE TABLE {WARM}").to_pylist()
    columns = [(row["name"], row["type"]) for row in described if row["default_type"] != "MATERIALIZED"]
    names = ", ".join(f"`{name}`" for name, _ in columns)
    casts = ", ".join(f"CAST(`{name}`, {sql_string(kind)}) AS `{name}`" for name, kind in columns)
    backend.execute(f"CREATE OR REPLACE VIEW {COLD} AS {source.select(casts)}")
    cutoff = cutoff_expression(ttl_days, warm)
    backend.execute(
        f"CREATE OR REPLACE VIEW {FEDERATED} AS "
        f"SELECT {names} FROM {WARM} WHERE enqueue_time >= {cutoff} "
        f"UNION ALL SELECT {names} FROM {COLD} WHERE enqueue_time < {cutoff}"
    )
    backend.execute(f"CREATE OR REPLACE VIEW {CUTOFF} AS SELECT {cutoff} AS cutoff")
    hour = "makeDateTime(year, month, day, hour, 0, 0, 'UTC')"  # from the file's path
    backend.execute(f"CREATE OR REPLACE VIEW {COLD_HOURS} AS "
                    f"{source.select(f'{casts}, {hour} AS file_hour', days='{days:String}')}")
    backend.execute("DROP VIEW IF EXISTS jobs_between")  # a parameterized view of a development version
