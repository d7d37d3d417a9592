"""Compaction of the cold tier: each closed hour's batch files become a few large files sorted by
(queue, enqueue_time), so that a year is thousands of files instead of hundreds of thousands and time
and queue predicates skip whole row groups.

An hour is rewritten as a new generation of the layout (``exporter.tiers.layout``): the previous
generation plus the batch files below the watermark, the first stream entry the archive group has not
acknowledged. The steps, each safe to be killed after:

1. remove any part of the same generation an interrupted run left (readers ignore an incomplete one);
2. write the parts, one object each; when the last lands, the hour switches to them;
3. delete what the new generation superseded, once it is older than ``grace`` (the longest a query may
   run: a query that listed the old files before the switch can still read them).

A run killed anywhere leaves an hour either as it was or switched; the next run finishes the work. Files
below the watermark are final (their batches are acknowledged), so running again with the same watermark
writes the same rows into the same names.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exporter.record import RECORD_SCHEMA, STORED_TIME, TIME_FIELDS
from exporter.tiers.cold import ParquetStore, by_directory
from exporter.tiers.layout import StreamId, batch_id_of, compacted_name, generation_of, newest_complete, superseded

# Rows per row group: small enough that a queue's hour spans few groups (their min/max let a filter on
# queue or time skip the rest), large enough that each column chunk compresses well.
ROW_GROUP_ROWS = 65_536
STORED_SCHEMA = pa.schema([f.with_type(STORED_TIME) if f.name in TIME_FIELDS else f for f in RECORD_SCHEMA])


@dataclass(frozen=True)
class HourWork:
    """What compaction would do to one hour directory."""

    directory: str
    hour: datetime
    inputs: list[dict]  # the live generation's parts and the batch files below the watermark, by name

    @property
    def input_bytes(self) -> int:
        return sum(int(info.get("size") or 0) for info in self.inputs)


@dataclass
class CompactionReport:
    hours: int = 0
    files_read: int = 0
    files_written: int = 0
    files_deleted: int = 0
    rows: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    bytes_deleted: int = 0
    seconds: float = 0.0
    files_waiting: int = 0  # superseded too recently: a query that listed them may still read them
    hours_left: int = 0  # planned but not reached within the run's time budget
    refused: list[str] = field(default_factory=list)


def plan(store: ParquetStore, watermark: StreamId, closed_before: datetime) -> list[HourWork]:
    """Every hour that has something to compact or delete, oldest first; only hours ended by
    ``closed_before`` are compacted (later ones still receive most of their batches)."""
    listing = store.listing()
    infos = {info["name"]: info for info in listing}
    work = []
    for directory, names in sorted(by_directory(listing).items()):
        hour = _hour_of(directory)
        if hour is None:
            continue  # not an hour of the layout: left alone
        skipped = superseded(names)
        live = newest_complete(names)
        inputs: list[str] = []
        if hour + timedelta(hours=1) <= closed_before:
            below = sorted(n for n in names if n not in skipped and (b := batch_id_of(n)) is not None
                           and b < watermark)
            if below:
                parts = sorted((n for n in names if (g := generation_of(n)) and g[0] == live),
                               key=lambda n: generation_of(n)[1])  # type: ignore[index]
                inputs = parts + below
        if inputs or skipped:
            work.append(HourWork(directory, hour, [infos[f"{directory}/{n}"] for n in inputs]))
    return sorted(work, key=lambda w: w.hour)


def compact(store: ParquetStore, watermark: StreamId | None, now: float, closed_after: float,
            target_bytes: int, grace: float, dry_run: bool = False, budget: float = 300.0,
            on_step: Callable[[str], None] | None = None) -> CompactionReport:
    """Compact the closed hours and delete superseded files (see the module); stops starting new hours
    after ``budget`` seconds, and the next run goes on from there."""
    report = CompactionReport()
    started = time.perf_counter()
    if watermark is None:
        if store.listing():
            report.refused.append("the archive consumer group does not exist, so no batch can be proven "
                                  "acknowledged; hours are compacted once the exporter has re-created it")
        return report
    closed_before = datetime.fromtimestamp(now - closed_after, UTC)
    work = plan(store, watermark, closed_before)
    for i, hour in enumerate(work):
        if time.perf_counter() - started > budget:
            report.hours_left = len(work) - i
            break
        if hour.inputs:
            if not dry_run:
                try:
                    _rewrite(store, hour, watermark, target_bytes, report, on_step)
                except SchemaMismatch as mismatch:
                    report.refused.append(f"{_relative(store, hour.directory)}: kept as it is: {mismatch}")
                    continue
            report.hours += 1
            report.files_read += len(hour.inputs)
            report.bytes_read += hour.input_bytes
        _delete_superseded(store, hour.directory, now - grace, report, on_step, dry_run)
    report.seconds = time.perf_counter() - started
    return report


class SchemaMismatch(Exception):
    """A file of the hour does not have the record schema this version writes (a newer exporter's):
    rewriting it here could lose a column, so the hour is left alone."""


def _rewrite(store: ParquetStore, hour: HourWork, watermark: StreamId, target_bytes: int,
             report: CompactionReport, on_step: Callable[[str], None] | None) -> None:
    rows = pa.concat_tables([_conform(_read(store, info["name"]), info["name"]) for info in hour.inputs])
    order = pc.sort_indices(rows, [("queue", "ascending"), ("enqueue_time", "ascending")])  # stable
    parts = max(1, math.ceil(hour.input_bytes / target_bytes))
    names = [f"{hour.directory}/{compacted_name(watermark, i + 1, parts)}" for i in range(parts)]
    leftovers = [n for n in names if store.fs.exists(n)]
    if leftovers:  # an interrupted run of this very generation: start it again from nothing
        store.fs.rm(leftovers)
        _step(on_step, f"removed {len(leftovers)} parts of an interrupted run")
    per_part = math.ceil(rows.num_rows / parts)
    for i, name in enumerate(names):
        part = order.slice(i * per_part, per_part)
        groups = (rows.take(part.slice(start, ROW_GROUP_ROWS)) for start in range(0, len(part), ROW_GROUP_ROWS))
        data = store.encode_compacted(groups)
        store.put(name, data)
        report.files_written += 1
        report.bytes_written += data.size
        _step(on_step, f"wrote {_relative(store, name)}")
    report.rows += rows.num_rows


def _delete_superseded(store: ParquetStore, directory: str, written_before: float, report: CompactionReport,
                       on_step: Callable[[str], None] | None, dry_run: bool) -> None:
    """Delete the directory's superseded files, if its live generation was written before
    ``written_before`` (read afresh: the rewrite may just have switched it)."""
    store.fs.invalidate_cache(directory)
    found = {info["name"].rsplit("/", 1)[1]: info for info in store.fs.ls(directory, detail=True)
             if info["name"].endswith(".parquet")}
    live = newest_complete(list(found))
    if live is None:
        return
    switched = max(_modified(info) for name, info in found.items() if (g := generation_of(name)) and g[0] == live)
    doomed = [found[name] for name in sorted(superseded(list(found)))]
    if switched > written_before:
        report.files_waiting += len(doomed)
        return
    if doomed:
        if not dry_run:
            store.fs.rm([info["name"] for info in doomed])  # one request per thousand objects on S3
        report.files_deleted += len(doomed)
        report.bytes_deleted += sum(int(info.get("size") or 0) for info in doomed)
        _step(on_step, f"deleted {len(doomed)} superseded files of {_relative(store, directory)}")


def _read(store: ParquetStore, path: str) -> pa.Table:
    with store.fs.open(path, "rb") as handle:
        return pq.read_table(handle)


def _conform(table: pa.Table, path: str) -> pa.Table:
    """``table`` in the stored schema (files of earlier versions hold microseconds)."""
    if set(table.column_names) != set(STORED_SCHEMA.names):
        extra = sorted(set(table.column_names) ^ set(STORED_SCHEMA.names))
        raise SchemaMismatch(f"{path.rsplit('/', 1)[1]} has other columns than this version's ({', '.join(extra)})")
    return table.select(STORED_SCHEMA.names).cast(STORED_SCHEMA, safe=False)


def _hour_of(directory: str) -> datetime | None:
    parts = dict(p.split("=", 1) for p in directory.split("/") if "=" in p)
    try:
        return datetime(int(parts["year"]), int(parts["month"]), int(parts["day"]), int(parts["hour"]), tzinfo=UTC)
    except (KeyError, ValueError):
        return None


def _modified(info: dict) -> float:
    """A file's modification time as epoch seconds (local filesystems say mtime, S3 LastModified)."""
    value = info.get("mtime", info.get("LastModified", info.get("created")))
    return value.timestamp() if isinstance(value, datetime) else float(value or 0.0)


def _relative(store: ParquetStore, path: str) -> str:
    return path.removeprefix(store.jobs_root + "/")


def _step(on_step: Callable[[str], None] | None, what: str) -> None:
    if on_step is not None:
        on_step(what)
