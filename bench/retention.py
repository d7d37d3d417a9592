"""Retention and compaction figures: compaction throughput, bytes per record in each tier against the raw
JSON and the entropy floor, and one retention pass over a year of events.

    python bench/retention.py                       # 1M records for the storage figures, a year of 100K/day
    python bench/retention.py --skip-year           # the storage figures only (a minute)
    python bench/retention.py --records 200000 --per-day 20000

Storage: the query benchmark's records (bench/synthetic.py: uuid job ids, SHA-256 payload hashes, trace
and span ids, realistic queues, times and errors) are written as the exporter writes them, one Parquet
file per batch and hour, then compacted (``compaction.compact``) and inserted into an embedded warm
store. The same again for records without random hashes (empty payload_hash, trace_id and span_id,
sequential job ids), as a job queue without tracing sends them.

The entropy floor is what no lossless encoding can beat: the random bits of the ids and hashes (122 per
uuid job id, counted once per distinct id; 256, 128 and 64 per hash, trace and span id) plus, for the
other columns, the zeroth-order entropy of their values (time columns: of the gaps between consecutive
enqueue times, and of start minus enqueue and end minus start), measured on the data.

The year: 365 days of ``--per-day`` events in both tiers (one Parquet file per hour, as compacted) and
a week of the stream in Redis, then one RetentionManager pass as the clock says: Redis keeps 7 days,
ClickHouse 30 (the days before reconciled against the cold tier and dropped), Parquet 300 (older hours
deleted). Compaction has nothing to do there (its time is the first part's).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis

if __package__ in (None, ""):  # run as a script: make the repository importable without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.synthetic import Spec, batches
from exporter.config import Config
from exporter.embedded import PrivateRedis
from exporter.engine.registry import open_backend
from exporter.maintenance import compaction
from exporter.maintenance.retention import RetentionManager
from exporter.tiers import federation
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore

DAY = 86400.0
MB = 1_000_000


def timed(work) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


# -- the records ---------------------------------------------------------------------------------------


def bench_records(events: int) -> pa.Table:
    """``events`` rows of the query benchmark's data over one day, in time order."""
    spec = Spec(events, 1, datetime(2026, 11, 1, tzinfo=UTC))
    return pa.concat_tables(rows for _, rows in batches(spec))


def without_random_hashes(rows: pa.Table) -> pa.Table:
    """The same rows as a job queue without tracing sends them: no hashes, sequential job ids."""
    empty = pa.array([""] * rows.num_rows, pa.string())
    for name in ("payload_hash", "trace_id", "span_id"):
        rows = rows.set_column(rows.schema.get_field_index(name), rows.schema.field(name), empty)
    ids = pa.array([f"job-{n:010d}" for n in range(rows.num_rows)], pa.string())
    return rows.set_column(0, rows.schema.field("job_id"), ids)


def raw_json_bytes(rows: pa.Table, sample: int = 20_000) -> float:
    """Mean size of a row as the producer's JSON (RFC 3339 times), over a sample."""
    picked = rows.slice(0, min(sample, rows.num_rows)).to_pylist()
    total = 0
    for row in picked:
        for name in ("enqueue_time", "start_time", "end_time"):
            if row[name] is not None:
                row[name] = row[name].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        row["tags"] = dict(row["tags"])
        total += len(orjson.dumps(row))
    return total / len(picked)


def entropy_floor(rows: pa.Table) -> tuple[float, dict[str, float]]:
    """Bytes per record no lossless encoding can beat (see the module docstring), and its parts."""
    n = rows.num_rows
    parts: dict[str, float] = {}
    random_bits = {"payload_hash": 256, "trace_id": 128, "span_id": 64}
    for name, bits in random_bits.items():
        filled = pc.sum(pc.not_equal(rows[name], "")).as_py() or 0
        parts[name] = filled * bits / 8 / n
    ids = rows["job_id"]
    if pc.all(pc.starts_with(ids, "job-")).as_py():
        parts["job_id"] = 0.0  # sequential: nothing random
    else:
        parts["job_id"] = pc.count_distinct(ids).as_py() * 122 / 8 / n
    times = {name: rows[name].cast(pa.int64()).to_numpy(zero_copy_only=False) for name in
             ("enqueue_time", "start_time", "end_time")}
    started = ~np.isnan(rows["start_time"].cast(pa.int64()).to_numpy(zero_copy_only=False).astype(float))
    derived = {"enqueue_time gaps": np.diff(np.sort(times["enqueue_time"]), prepend=times["enqueue_time"].min()),
               "start - enqueue": (times["start_time"] - times["enqueue_time"])[started],
               "end - start": (times["end_time"] - times["start_time"])[started]}
    for label, values in derived.items():
        parts[label] = _entropy(Counter(values.tolist())) * len(values) / 8 / n
    skip = set(random_bits) | {"job_id", "enqueue_time", "start_time", "end_time"}
    for name in rows.column_names:
        if name in skip:
            continue
        values = rows[name].to_pylist() if name == "tags" else rows[name].to_numpy(zero_copy_only=False).tolist()
        values = [tuple(v) if isinstance(v, list) else v for v in values]
        parts[name] = _entropy(Counter(values)) / 8
    return sum(parts.values()), parts


def _entropy(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values())


# -- storage and compaction ----------------------------------------------------------------------------


def batch_ids(rows: pa.Table, size: int) -> list[tuple[str, pa.Table]]:
    """The rows cut into exporter-sized batches named as the exporter names them (entry ids rising)."""
    first_ms = 1_790_000_000_000
    return [(f"{first_ms + i}-0_{i:012x}", rows.slice(start, size))
            for i, start in enumerate(range(0, rows.num_rows, size))]


def storage(label: str, rows: pa.Table, batch_size: int, root: Path) -> None:
    """Write ``rows`` as batch files, compact them, insert them warm; print bytes per record and the
    compaction's speed."""
    n = rows.num_rows
    json_size = raw_json_bytes(rows)
    floor, parts = entropy_floor(rows)
    cold = ParquetStore.open(Config().cold, f"file://{root / 'cold'}")
    cut = batch_ids(rows, batch_size)
    _, wall, _ = timed(lambda: [cold.write_batch(batch, batch_id) for batch_id, batch in cut])
    batch_bytes = sum(int(i["size"]) for i in cold.listing())
    batch_files = len(cold.listing())

    report, wall, cpu = timed(lambda: compaction.compact(cold, (2**62, 0), time.time() + 400 * DAY, 3600.0,
                                                         Config().retention.compact_target_size, 0.0,
                                                         budget=math.inf))
    compacted = sum(int(i["size"]) for i in cold.files())
    assert report.rows == n and report.hours > 0, report

    warm = WarmStore(open_backend(f"chdb://{root / 'warm'}"), 3650 * DAY)
    warm.ensure_schema()
    for batch_id, batch in cut:
        warm.insert(batch, batch_id)
    warm.backend.execute("OPTIMIZE TABLE jobs_archive FINAL")
    on_disk = warm.backend.query_arrow(
        "SELECT sum(rows) AS rows, sum(bytes_on_disk) AS disk, sum(data_compressed_bytes) AS data FROM system.parts "
        "WHERE active AND database = currentDatabase() AND table = 'jobs_archive'").to_pylist()[0]
    warm.close()

    print(f"\n{label}: {n:,} records, {batch_files:,} batch files of {batch_size:,} rows over {report.hours} hours")
    print(f"  raw JSON                         {json_size:7.1f} B/record")
    print(f"  entropy floor                    {floor:7.1f} B/record  ("
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 0.5) + ")")
    rows_of = [("Parquet, batch files", batch_bytes), ("Parquet, compacted", compacted),
               ("ClickHouse, bytes on disk", on_disk["disk"]), ("ClickHouse, column data", on_disk["data"])]
    for name, size in rows_of:
        per = size / n
        print(f"  {name:<32} {per:7.1f} B/record  {per / floor if floor else math.nan:5.2f}x floor  "
              f"{json_size / per:5.1f}x smaller than JSON")
    print(f"  compaction: {report.files_read:,} files into {report.files_written:,} in {wall:.2f} s "
          f"(CPU {cpu:.2f} s): {n / wall:,.0f} records/s, {report.bytes_read / wall / MB:.1f} MB/s of Parquet read, "
          f"{n * json_size / wall / MB:.0f} MB/s of raw JSON")


# -- a year through one retention pass -----------------------------------------------------------------


def year(per_day: int, root: Path) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    spec = Spec(per_day * 365, 365, end, seed=20261129)
    warm = WarmStore(open_backend(f"chdb://{root / 'warm'}"), 3650 * DAY)
    warm.ensure_schema()
    cold = ParquetStore.open(Config().cold, f"file://{root / 'cold'}")
    print(f"\nbuilding a year: {spec.events:,} events, one Parquet file per hour ...", flush=True)
    clock = time.perf_counter()
    for batch_id, rows in batches(spec):
        warm.insert(rows, batch_id)
        cold.write_batch(rows, batch_id)
    print(f"  built in {time.perf_counter() - clock:.0f} s: {len(cold.listing()):,} files", flush=True)

    server = PrivateRedis(root / "redis")
    try:
        client = redis.Redis.from_url(server.url)
        hot_entries = stream_week(client, per_day, end)
        config = (Config().replace("redis", url=server.url)
                  .replace("retention", redis_ttl=7 * DAY, clickhouse_ttl=30 * DAY, s3_archive_ttl=300 * DAY))
        warm.ttl_days = 30
        federation.install(warm.backend, federation.cold_source(config.cold, cold.url), 30)
        manager = RetentionManager(config, client, now=time.time, warm=warm, cold=cold)
        days_before, files_before = len(warm.days()), len(cold.listing())
        run, wall, cpu = timed(manager.apply)
        print(f"  one retention pass: {wall:.1f} s (CPU {cpu:.1f} s); Redis {hot_entries:,} entries of 8 days; "
              f"warm {days_before} days -> {len(warm.days())}; cold {files_before:,} files -> {len(cold.listing()):,}")
        for tier in run.tiers:
            print(f"    {tier.tier:<5} {tier.seconds:6.1f} s  removed {tier.removed:,}"
                  + (f"  refused: {tier.refused}" if tier.refused else ""))
    finally:
        server.stop()
        warm.close()


def stream_week(client, per_day: int, end: datetime) -> int:
    """Eight days of completions in the stream, every one archived (the group has read and acknowledged
    them all), one entry id per event time."""
    first_ms = int((end - timedelta(days=8)).timestamp() * 1000)
    step = 86_400_000 / per_day
    body = orjson.dumps({"job_id": "x" * 36, "queue": "emails", "payload_hash": "0" * 64, "trace_id": "0" * 32})
    pipe = client.pipeline(transaction=False)
    for i in range(8 * per_day):
        pipe.xadd("completed_jobs", {"data": body}, id=f"{first_ms + int(i * step)}-{i}")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.xgroup_create("completed_jobs", "archive-exporter", id="$")
    return client.xlen("completed_jobs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records for the storage figures")
    parser.add_argument("--batch", type=int, default=2_000, help="rows per exported batch")
    parser.add_argument("--per-day", type=int, default=100_000, help="events a day for the year")
    parser.add_argument("--skip-year", action="store_true", help="only the storage and compaction figures")
    parser.add_argument("--root", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="archives-bench-retention-"))
    print(f"machine: {os.cpu_count()} cores; work directory {root}")
    try:
        rows = bench_records(args.records)
        storage("bench records", rows, args.batch, root / "bench")
        storage("records without random hashes", without_random_hashes(rows), args.batch, root / "plain")
        if not args.skip_year:
            year(args.per_day, root / "year")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
