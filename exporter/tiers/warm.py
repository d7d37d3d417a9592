"""The warm tier: jobs_archive in ClickHouse, written idempotently per batch."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa

from exporter.engine.interface import ClickHouseBackend
from exporter.engine.sql import sql_string
from exporter.errors import ArchivesError, QueryError
from exporter.record import FIELD_DOCS, with_stored_times
from exporter.tiers.ddl import (
    CODECS,
    DEDUP_SETTING,
    JOBS_ARCHIVE_COMMENT,
    SKIP_INDEXES,
    VIEWS,
    backstop_ttl,
    inner_table,
    warm_schema,
)
from exporter.tiers.partitions import DAY_US, split_by_time

# DateTime64 and Map (the seed's schema) are generally available from ClickHouse 21.8 on.
MIN_SERVER_VERSION = (21, 8)


@dataclass
class TierStats:
    """What status shows for one tier."""

    records: int
    bytes: int
    oldest: datetime | None
    newest: datetime | None
    detail: str = ""


def _month_end(yyyymm: int) -> date:
    year, month = divmod(yyyymm, 100)
    return date(year + (month == 12), month % 12 + 1, 1)


class WarmStore:
    """Inserts record batches into jobs_archive; a repeated batch id is a no-op (deduplicated)."""

    table = "jobs_archive"

    def __init__(self, backend: ClickHouseBackend, ttl_seconds: float) -> None:
        self.backend = backend
        self.ttl_days = max(1, int(ttl_seconds // 86400))

    def close(self) -> None:
        """Release the backend (for chdb: the data directory, which one process owns at a time)."""
        self.backend.close()

    def __enter__(self) -> WarmStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ensure_schema(self) -> None:
        self._check_version()
        for statement in warm_schema(self.ttl_days):
            self.backend.execute(statement)
        self._give_views_a_dedup_window()
        self._add_missing_indexes()
        self.keep_the_ttl_a_backstop()
        self._use_the_codecs()
        self._describe_the_columns()

    def _check_version(self) -> None:
        """Refuse, in one sentence, a server too old for the schema (Debian's 18.16 fails at the first
        index with a bare syntax error)."""
        version = self.backend.query_arrow("SELECT version() AS v").column(0)[0].as_py()
        found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        if found < MIN_SERVER_VERSION:
            needed = ".".join(map(str, MIN_SERVER_VERSION))
            raise ArchivesError(
                f"{self.backend.description} runs ClickHouse {version}; the warm tier needs {needed} or newer "
                "(DateTime64, Map, TTL and skip indexes)"
            )

    def window_start_day(self, today: date | None = None) -> int:
        """The first UTC day (days since 1970) the table's TTL keeps: older rows would only be dropped."""
        today = today or datetime.now(UTC).date()
        return (today - date(1970, 1, 1)).days - self.ttl_days + 1

    def _give_views_a_dedup_window(self) -> None:
        """Upgrade views created before they deduplicated replays (CREATE IF NOT EXISTS keeps them).

        Without the window a replayed batch that jobs_archive drops is still counted again in them.
        A view takes no MODIFY SETTING, so the table holding its rows gets it; setting it again on a
        table that has it changes nothing.
        """
        for view in VIEWS:
            self.backend.execute(f"ALTER TABLE `{self._inner(view)}` MODIFY SETTING {DEDUP_SETTING}")

    def _add_missing_indexes(self) -> None:
        """Give a table made by an earlier version the skip indexes it lacks (CREATE IF NOT EXISTS keeps
        the old table), and build them for the parts it already holds.

        Only an index that was missing is materialized, so an up-to-date store costs one catalog read.
        MATERIALIZE INDEX is a mutation the engine runs in the background (it survives a restart): the
        store opens at once, and a part not yet rebuilt is just read without the index, never wrongly.
        """
        present = set(self.backend.query_arrow(
            "SELECT name FROM system.data_skipping_indices "
            f"WHERE database = currentDatabase() AND table = '{self.table}'").column(0).to_pylist())
        for name, definition in SKIP_INDEXES.items():
            if name not in present:
                self.backend.execute(f"ALTER TABLE {self.table} ADD INDEX IF NOT EXISTS {name} {definition}")
                self.backend.execute(f"ALTER TABLE {self.table} MATERIALIZE INDEX {name}",
                                     {"mutations_sync": 0})  # chdb waits by default: 38 s on 10M rows

    def keep_the_ttl_a_backstop(self) -> None:
        """Keep the table TTL in step with the config, well beyond the window (see ``backstop_ttl``).

        Stores of earlier versions dropped days at the window's edge with no check; a changed
        clickhouse_ttl moves the backstop too. The new TTL is not applied to existing parts at once
        (materialize_ttl_after_modify = 0): merges and retention take it from there.
        """
        wanted = backstop_ttl(self.ttl_days)
        shown = self.backend.query_arrow(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = "
            f"'{self.table}'").column(0)[0].as_py()
        if f"TTL {wanted}" not in shown:
            self.backend.execute(f"ALTER TABLE {self.table} MODIFY TTL {wanted}", {"materialize_ttl_after_modify": 0})

    def _use_the_codecs(self) -> None:
        """Give the columns of a table made by an earlier version their codecs (see ``ddl.CODECS``): a
        metadata change; new parts and merges write with them, existing parts are not rewritten."""
        found = {row["name"]: row["compression_codec"] for row in self.backend.query_arrow(
            "SELECT name, compression_codec FROM system.columns WHERE database = currentDatabase() AND "
            f"table = '{self.table}'").to_pylist()}
        for column, codec in CODECS.items():
            if found.get(column) != f"CODEC({codec})":  # as the engine shows it: Delta(8), not Delta
                self.backend.execute(f"ALTER TABLE {self.table} MODIFY COLUMN {column} CODEC({codec})")

    def _describe_the_columns(self) -> None:
        """Give a table made by an earlier version the comments the schema browser shows (``FIELD_DOCS``,
        ``JOBS_ARCHIVE_COMMENT``), and keep them in step when a description changes.

        Only a comment that differs is set, in one ALTER: a metadata change, no mutation, no part rewritten;
        an up-to-date store is not altered at all. A server without ALTER ... MODIFY COMMENT (added after
        21.8) keeps the table's comment it has; the columns' it takes on every supported version.
        """
        found = {row["name"]: row["comment"] for row in self.backend.query_arrow(
            "SELECT name, comment FROM system.columns WHERE database = currentDatabase() AND "
            f"table = '{self.table}'").to_pylist()}
        changes = [f"COMMENT COLUMN {column} {sql_string(doc)}" for column, doc in FIELD_DOCS.items()
                   if found.get(column) != doc]
        if changes:
            self.backend.execute(f"ALTER TABLE {self.table} " + ", ".join(changes))
        shown = self.backend.query_arrow(
            "SELECT comment FROM system.tables WHERE database = currentDatabase() AND "
            f"name = '{self.table}'").column(0)[0].as_py()
        if shown != JOBS_ARCHIVE_COMMENT:
            with contextlib.suppress(QueryError):  # a comment is not worth refusing an older server over
                self.backend.execute(f"ALTER TABLE {self.table} MODIFY COMMENT {sql_string(JOBS_ARCHIVE_COMMENT)}")

    def days(self) -> list[tuple[str, int, int]]:
        """The table's partitions (UTC days, 'YYYY-MM-DD') with their rows and bytes, oldest first."""
        rows = self.backend.query_arrow(
            "SELECT partition, toUInt64(sum(rows)) AS rows, toUInt64(sum(bytes_on_disk)) AS size FROM system.parts "
            f"WHERE active AND database = currentDatabase() AND table = '{self.table}' GROUP BY partition "
            "ORDER BY partition").to_pylist()
        return [(row["partition"], row["rows"], row["size"]) for row in rows]

    def drop_stats_before(self, first_kept: date) -> dict:
        """Apply the views' own window: months of queue_hourly_stats that ended before ``first_kept``
        are dropped, and error patterns last seen before it deleted. Returns what went."""
        stats = self._inner("queue_hourly_stats")
        months = self.backend.query_arrow(
            "SELECT DISTINCT partition FROM system.parts WHERE active AND database = currentDatabase() "
            f"AND table = {sql_string(stats)} ORDER BY partition").column(0).to_pylist()
        gone = [m for m in months if _month_end(int(m)) <= first_kept]
        for month in gone:
            self.backend.execute(f"ALTER TABLE `{stats}` DROP PARTITION {month}")
        patterns = self._inner("error_patterns")
        old = f"last_seen < '{first_kept}'"
        deleted = self.backend.query_arrow(f"SELECT count() FROM `{patterns}` WHERE {old}").column(0)[0].as_py()
        if deleted:
            self.backend.execute(f"ALTER TABLE `{patterns}` DELETE WHERE {old}", {"mutations_sync": 1})
        return {"months_dropped": gone, "error_patterns_deleted": deleted, "window_starts": str(first_kept)}

    def _inner(self, view: str) -> str:
        """The table holding a materialized view's rows."""
        shown = self.backend.query_arrow(f"SHOW CREATE TABLE {view}",
                                         {"show_table_uuid_in_table_create_query_if_not_nil": 1})
        return inner_table(view, shown.column(0)[0].as_py())

    def drop_day(self, partition: str) -> None:
        self.backend.execute(f"ALTER TABLE {self.table} DROP PARTITION {sql_string(partition)}")

    def insert(self, records: pa.Table, batch_id: str) -> int:
        """Insert a batch; ClickHouse drops blocks whose token it has seen, so a replay adds nothing.

        One INSERT per partition (UTC day of enqueue_time), each with its own token, from one Arrow
        chunk read by one thread. Otherwise ClickHouse cuts an insert into blocks whose order and
        content vary from run to run, so a replay of a half-written batch could meet a token already
        used for other rows and drop rows that were never stored, or store some twice. The views
        deduplicate too, so a replay neither counts a batch twice in them nor misses the blocks a
        crash kept from them.

        Days older than the window are not sent (the TTL would drop them): returns the rows inserted.
        """
        if records.num_rows == 0:
            return 0
        first_day = self.window_start_day()
        inserted = 0
        for day, rows in split_by_time(records, DAY_US):
            if day < first_day:
                continue
            inserted += rows.num_rows
            data = with_stored_times(rows.combine_chunks())
            self.backend.insert_arrow(
                self.table,
                data,
                settings={"insert_deduplication_token": f"{batch_id}_{day}", "max_threads": 1,
                          "deduplicate_blocks_in_dependent_materialized_views": 1},
            )
        return inserted

    def stats(self) -> TierStats:
        parts = self.backend.query_arrow(
            "SELECT toUInt64(sum(rows)) AS rows, toUInt64(sum(bytes_on_disk)) AS bytes FROM system.parts "
            f"WHERE active AND database = currentDatabase() AND table = '{self.table}'"
        ).to_pylist()[0]
        span = self.backend.query_arrow(
            f"SELECT count() AS n, min(enqueue_time) AS oldest, max(enqueue_time) AS newest FROM {self.table}"
        ).to_pylist()[0]
        has_rows = bool(span["n"])
        return TierStats(
            records=int(span["n"]),
            bytes=int(parts["bytes"] or 0),
            oldest=span["oldest"] if has_rows else None,
            newest=span["newest"] if has_rows else None,
        )
