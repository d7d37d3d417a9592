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

``jobs_cold_hours`` is ``jobs_cold`` with each row's file hour (``file_hour``, from the hive path): a
filter on it chooses files before any is opened, which the query layer's router uses to read only the
hours a query's time range needs (ClickHouse cannot derive that from a filter on enqueue_time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ColdSource:
    """The table function over every Parquet file of the cold tier, the same function listing the files
    (``One`` format: names, no data), and the settings reading them needs."""

    function: str
    listing: str
    settings: dict[str, object] = field(default_factory=dict)

    def select(self, columns: str) -> str:
        """Read the live files only: compaction's superseded files are never opened (``layout``)."""
        return (f"SELECT {columns} FROM {self.function} WHERE _path NOT IN ({superseded_sql(self.listing)})"
                f"{settings_clause(self.settings)}")


# S3 reads retry 100 times by default: an unreachable endpoint would hang `status` and every query for
# minutes. A few attempts still ride out a dropped connection.
_S3_SETTINGS = {"s3_retry_attempts": 3, "s3_connect_timeout_ms": 3000}


def cold_source(cold: ColdConfig, url: str, under: str = "") -> ColdSource:
    """The cold tier at ``url`` as the engine reads it; only the files ``under`` a hive prefix (such as
    ``year=2026/month=01``) when given: the engine lists every file its pattern covers, 55 µs a file
    on this machine, before it reads any."""
    structure = sql_string(cold_structure())
    parsed = urlparse(url)
    files = f"/jobs/{under.strip('/')}/**/*.parquet" if under else "/jobs/**/*.parquet"
    if parsed.scheme == "file":
        location = sql_string(parsed.path.rstrip("/") + files)
        return ColdSource(f"file({location}, 'Parquet', {structure})", f"file({location}, 'One')")
    endpoint = (cold.endpoint_url or f"https://s3.{cold.region or 'us-east-1'}.amazonaws.com").rstrip("/")
    location = sql_string(f"{endpoint}/{parsed.netloc}{parsed.path.rstrip('/')}{files}")
    key = cold.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = cold.secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    credentials = f"{sql_string(key)}, {sql_string(secret)}, " if key and secret else "NOSIGN, "
    return ColdSource(f"s3({location}, {credentials}'Parquet', {structure})", f"s3({location}, {credentials}'One')",
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
    backend.execute(f"CREATE OR REPLACE VIEW {COLD_HOURS} AS {source.select(f'{casts}, {hour} AS file_hour')}")
    backend.execute("DROP VIEW IF EXISTS jobs_between")  # a parameterized view of a development version
