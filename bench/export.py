"""Export throughput benchmark on real parts: a private redis-server, chdb and Parquet in temp dirs.

    python bench/export.py [--events N] [--batch-size B] [--max-batch-bytes S] [--workers W]
                           [--skip-naive] [--keep]

N events are seeded once into one stream; every stage drains the same entries through its own
consumer group (XGROUP CREATE ... 0), so all figures are measured on identical data. The script
prints figures (records/s and ratios); it never asserts anything about timing.

Stages: 1 bare drain (XREADGROUP + XACK, raw replies), 2 decode+transform (``ExportPipeline.prepare``),
3 each sink alone (``WarmStore.insert``, ``ParquetStore.write_batch``), 4 end to end
(``ExportPipeline.run(once=True)``), 5 a naive per-record reference, 6 peak RSS of the end-to-end
export in a child process.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import hashlib
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from bench.cleanup import Cleanup
from exporter.batch import Batch, read_range
from exporter.config import Config
from exporter.embedded import PrivateRedis
from exporter.engine.registry import open_backend
from exporter.memory import tuned_for_export
from exporter.pipeline import ExportPipeline
from exporter.record import CURRENT_SCHEMA_VERSION, OUTCOMES, RECORD_SCHEMA
from exporter.seed import seed_stream
from exporter.stream import StreamReader, entries_of
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from exporter.transforms import PII_PATTERNS
from exporter.units import parse_size

STREAM_KEY = "bench:completed_jobs"
CONSUMER = "bench"


# -- parts -------------------------------------------------------------------------------------------


def open_warm(directory: Path, config: Config) -> WarmStore:
    """A fresh WarmStore on chdb in ``directory`` with the schema created."""
    store = WarmStore(open_backend(f"chdb://{directory}"), config.retention.clickhouse_ttl)
    store.ensure_schema()
    return store


def open_cold(directory: Path, config: Config) -> ParquetStore:
    return ParquetStore.open(config.cold, f"file://{directory}", config.retention.compression_codec)


def bench_config(server_url: str, group: str, warm_dir: Path, cold_dir: Path, **pipeline: Any) -> Config:
    """The product's defaults on temp parts, with ``pipeline`` settings as the command line asked."""
    return (
        Config()
        .replace("redis", url=server_url)
        .replace("clickhouse", url=f"chdb://{warm_dir}")
        .replace("cold", url=f"file://{cold_dir}")
        .replace("pipeline", stream_key=STREAM_KEY, consumer_group=group, consumer_name=CONSUMER, **pipeline)
    )


def pipeline_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Pipeline settings from the command line; unset ones keep the product's defaults."""
    settings = {"batch_size": args.batch_size, "max_batch_size": max(args.max_batch_size, args.batch_size)}
    if args.max_batch_bytes is not None:
        settings["max_batch_bytes"] = parse_size(args.max_batch_bytes)
    if args.workers is not None:
        settings["worker_count"] = args.workers
    return settings


# -- results -----------------------------------------------------------------------------------------


class Meter:
    """Wall time and CPU time of a stage: this process's (all threads) plus the Redis server's.

    CPU per record says what a stage costs however busy the machine was, and the stages' sum says how
    fast the end-to-end export could go at best on this many cores.
    """

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.client = client
        self.seconds = self.cpu = 0.0

    def _server_cpu(self) -> float:
        if self.client is None:
            return 0.0
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def __enter__(self) -> Meter:
        self._server = self._server_cpu()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu + self._server_cpu() - self._server


@dataclass
class Result:
    stage: str
    records: int
    seconds: float
    note: str = ""
    cpu: float | None = None  # CPU seconds of this process and the Redis server, when measured

    @classmethod
    def of(cls, stage: str, records: int, meter: Meter, note: str = "") -> Result:
        return cls(stage, records, meter.seconds, note, meter.cpu)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_per_record(self) -> float | None:
        """Microseconds of CPU per record."""
        return None if self.cpu is None or not self.records else 1e6 * self.cpu / self.records


class Report:
    """Collects stage results and prints each as it completes, relative to the bare drain."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.ceiling: float | None = None

    def add(self, result: Result, ceiling: bool = False) -> Result:
        self.results.append(result)
        if ceiling and self.ceiling is None:
            self.ceiling = result.rate
        extra = f"  {result.note}" if result.note else ""
        print(f"  {result.stage:<34} {result.records:>10,} rec {result.seconds:>8.2f} s "
              f"{result.rate:>12,.0f} rec/s  {self.ratio(result):>6} {_cpu_text(result):>7} us CPU/rec{extra}",
              flush=True)
        return result

    def ratio(self, result: Result) -> str:
        return f"{result.rate / self.ceiling:.3f}" if self.ceiling else "-"

    def table(self) -> None:
        print("\n" + f"{'stage':<34} {'records':>10} {'seconds':>9} {'records/s':>12} {'/drain':>7} {'CPU us/rec':>11}")
        print("-" * 88)
        for r in self.results:
            print(f"{r.stage:<34} {r.records:>10,} {r.seconds:>9.2f} {r.rate:>12,.0f} {self.ratio(r):>7} "
                  f"{_cpu_text(r):>11}")

    def cpu_bound(self, stages: list[Result], end_to_end: Result, cores: int) -> None:
        """How fast the end-to-end export could go if its stages' CPU kept every core busy."""
        costs = [r.cpu_per_record for r in stages]
        if None in costs or not self.ceiling:
            return
        needed = sum(costs)
        best = cores * 1e6 / needed
        print(f"\nCPU bound: the stages need {' + '.join(f'{c:.1f}' for c in costs)} = {needed:.1f} us of CPU "
              f"per record; on {cores} cores that allows at most {best:,.0f} records/s "
              f"({best / self.ceiling:.3f} of the drain). End to end used {_cpu_text(end_to_end)} us per record "
              f"and reached {end_to_end.rate / best:.2f} of that bound.")


def _cpu_text(result: Result) -> str:
    cost = result.cpu_per_record
    return "-" if cost is None else f"{cost:.1f}"


# -- stages ------------------------------------------------------------------------------------------


def seed(client: redis.Redis, events: int) -> Result:
    """Append ``events`` synthetic completions once; every stage reads these."""
    with Meter(client) as meter:
        count = seed_stream(client, STREAM_KEY, events)
    memory = client.info("memory").get("used_memory_human", "?")
    return Result.of("seed (XADD, pipelined)", count, meter, f"stream uses {memory}")


def bare_drain(client: redis.Redis, group: str, count: int) -> Result:
    """XREADGROUP COUNT ``count`` + XACK with the reply callback bypassed: the ceiling."""
    reader = StreamReader(client, STREAM_KEY, group, CONSUMER)
    reader.ensure_group()
    total = 0
    with Meter(client) as meter:
        while entries := reader.read_new(count, None):
            reader.client.xack(STREAM_KEY, group, *[entry[0] for entry in entries])
            total += len(entries)
    return Result.of(f"1 bare drain COUNT {count}", total, meter)


def read_batches(client: redis.Redis, batch_size: int) -> list[Batch]:
    """All entries as Batches of ``batch_size`` (XRANGE, raw replies; not timed)."""
    reader = StreamReader(client, STREAM_KEY, "unused", CONSUMER)
    batches: list[Batch] = []
    start = "-"
    while True:
        entries = reader.read_range(start, "+", batch_size)
        if not entries:
            return batches
        batches.append(Batch.of_entries(entries, CONSUMER, ranges=[read_range(entries)]))
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def prepare_all(pipeline: ExportPipeline, batches: list[Batch]) -> tuple[Result, list[tuple[pa.Table, str]]]:
    """Time ``pipeline.prepare`` (decode, conform, sample, redact) over every batch."""
    prepared: list[tuple[pa.Table, str]] = []
    dead = 0
    entries = sum(len(b) for b in batches)
    with Meter() as meter:
        for batch in batches:
            records, rejects = pipeline.prepare(batch)
            prepared.append((records, batch.batch_id))
            dead += len(rejects)
    rows = sum(t.num_rows for t, _ in prepared)
    return Result.of("2 decode+transform (prepare)", entries, meter, f"{rows:,} rows, {dead} rejects"), prepared


def sink_alone(label: str, write: Callable[[pa.Table, str], object],
               prepared: list[tuple[pa.Table, str]]) -> Result:
    rows = sum(t.num_rows for t, _ in prepared)
    with Meter() as meter:
        for table, batch_id in prepared:
            write(table, batch_id)
    return Result.of(label, rows, meter)


@dataclass
class EndToEnd:
    result: Result
    warm_rows: int
    cold_rows: int
    cold_files: int
    pending: int
    dead_letters: int
    batches: int
    final_batch_target: int


def end_to_end(client: redis.Redis, config: Config, warm_dir: Path, cold_dir: Path, label: str) -> EndToEnd:
    """``ExportPipeline.run(once=True)`` on a fresh group and fresh stores; then count both tiers."""
    warm = open_warm(warm_dir, config)
    try:
        cold = open_cold(cold_dir, config)
        pipeline = ExportPipeline(config, client, warm, cold, CONSUMER)
        with Meter(client) as meter, tuned_for_export():  # as `archives export` runs it
            metrics = pipeline.run(once=True)
        warm_rows = int(warm.backend.query_arrow("SELECT count() AS n FROM jobs_archive").column("n")[0].as_py())
        cold_stats = cold.stats()
        cold_files = len(cold.files())
    finally:
        warm.close()
    p = config.pipeline
    pending = int(client.xpending(p.stream_key, p.consumer_group)["pending"])
    dlq = int(client.xlen(f"{p.stream_key}:dlq")) if client.exists(f"{p.stream_key}:dlq") else 0
    result = Result.of(label, metrics.archived + metrics.dead_lettered, meter,
                       f"{metrics.batches} batches, workers={p.worker_count}, read_count={p.read_count}")
    return EndToEnd(result, warm_rows, cold_stats.records, cold_files, pending, dlq,
                    metrics.batches, metrics.batch_size_target)


# -- naive reference ----------------------------------------------------------------------------------

_NAIVE_PII = [(re.compile(pattern), f"[REDACTED:{kind}]") for kind, pattern in PII_PATTERNS.items()]
_WARM_SCHEMA = pa.schema([
    pa.field(f.name, pa.timestamp("ms", tz="UTC"), f.nullable) if f.name.endswith("_time") else f
    for f in RECORD_SCHEMA
])


def _naive_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    return datetime.fromisoformat(value).astimezone(UTC)


def _naive_redact(text: str | None) -> str | None:
    if text is None:
        return None
    for pattern, marker in _NAIVE_PII:
        text = pattern.sub(marker, text)
    return text


def naive_record(obj: dict, rng: random.Random, rate: float) -> dict:
    """One record the straightforward way: Python objects, datetime, stdlib re."""
    outcome = obj.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    sample = obj.get("payload_sample")
    keep = sample is not None and (outcome == "failed" or rng.random() < rate)
    return {
        "job_id": obj["job_id"],
        "queue": obj["queue"],
        "tenant_id": obj.get("tenant_id") or "",
        "priority": int(obj.get("priority") or 0),
        "enqueue_time": _naive_time(obj["enqueue_time"]),
        "start_time": _naive_time(obj.get("start_time")),
        "end_time": _naive_time(obj.get("end_time")),
        "outcome": outcome,
        "retries": int(obj.get("retries") or 0),
        "error_type": obj.get("error_type") or "",
        "error_msg": _naive_redact(obj.get("error_msg") or ""),
        "worker_id": obj.get("worker_id") or "",
        "worker_version": obj.get("worker_version") or "",
        "payload_size": int(obj.get("payload_size") or 0),
        "payload_hash": obj.get("payload_hash") or "",
        "payload_sample": _naive_redact(sample) if keep else None,
        "trace_id": obj.get("trace_id") or "",
        "span_id": obj.get("span_id") or "",
        "correlation_id": obj.get("correlation_id") or "",
        "tags": list((obj.get("tags") or {}).items()),
        "schema_version": obj.get("schema_version") or CURRENT_SCHEMA_VERSION,
    }


def naive(client: redis.Redis, group: str, batch_size: int, warm_dir: Path, cold_dir: Path,
          config: Config) -> tuple[Result, int]:
    """Reference: redis-py's parsed XREADGROUP, json.loads per entry, rows of dicts, from_pylist,
    one chdb insert and one Parquet file per ``batch_size`` rows, then XACK."""
    warm = open_warm(warm_dir, config)
    cold_dir.mkdir(parents=True, exist_ok=True)
    client.xgroup_create(STREAM_KEY, group, id="0")
    rng = random.Random(7)
    rate = config.retention.payload_sampling_rate
    rows: list[dict] = []
    ids: list = []
    total = files = 0

    def flush() -> None:
        nonlocal files
        table = pa.Table.from_pylist(rows, schema=_WARM_SCHEMA)
        warm.backend.insert_arrow("jobs_archive", table)
        pq.write_table(table, cold_dir / f"batch-{files:06d}.parquet", compression="zstd")
        files += 1
        for start in range(0, len(ids), 10_000):
            client.xack(STREAM_KEY, group, *ids[start:start + 10_000])
        rows.clear()
        ids.clear()

    try:
        with Meter(client) as meter:
            while True:
                reply = client.xreadgroup(group, CONSUMER, {STREAM_KEY: ">"}, count=1000)
                entries = entries_of(reply)
                if not entries:
                    break
                for entry_id, fields in entries:
                    rows.append(naive_record(json.loads(fields[b"data"]), rng, rate))
                    ids.append(entry_id)
                total += len(entries)
                if len(rows) >= batch_size:
                    flush()
            if rows:
                flush()
        count = int(warm.backend.query_arrow("SELECT count() AS n FROM jobs_archive").column("n")[0].as_py())
    finally:
        warm.close()
    return Result.of("5 naive per-record (json+dicts)", total, meter, f"{files} inserts+files"), count


# -- peak RSS in a child --------------------------------------------------------------------------------


def _status_mb(*keys: str) -> dict[str, float]:
    """Fields of /proc/self/status, in MB."""
    found: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in keys:
                found[key] = int(value.split()[0]) / 1024
    if len(found) < len(keys):
        raise RuntimeError(f"no {', '.join(set(keys) - set(found))} in /proc/self/status: peak RSS needs Linux")
    return found


def _hwm_mb() -> float:
    """This process's peak RSS so far (VmHWM), in MB.

    Not getrusage's ru_maxrss: Linux carries the pre-exec image's high-water mark into it, so a
    child spawned by a large parent (this benchmark holds the whole backlog) reports the parent's size.
    """
    return _status_mb("VmHWM")["VmHWM"]


class RssSplit(threading.Thread):
    """Samples the peaks of anonymous (heap, buffers) and file-backed (mapped code) resident memory.

    VmHWM is one number; the split says how much of it the exporter's data could ever shrink: the
    file-backed part is mostly the pages of chdb's 550 MB library that have been executed.
    """

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks = {"RssAnon": 0.0, "RssFile": 0.0}
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.wait(self.interval):
            for key, value in _status_mb(*self.peaks).items():
                self.peaks[key] = max(self.peaks[key], value)

    def stop(self) -> dict[str, float]:
        self.finished.set()
        self.join()
        return self.peaks


def child_e2e(spec: dict) -> None:
    """Run in the child: the end-to-end export, printing one JSON line with timings and peak RSS."""
    warm_dir, cold_dir = Path(spec["warm"]), Path(spec["cold"])
    config = bench_config(spec["url"], spec["group"], warm_dir, cold_dir, **spec["pipeline"])
    client = redis.Redis.from_url(spec["url"], socket_timeout=120)
    import chdb  # noqa: F401 - imported lazily by the backend; count it in the baseline

    baseline = _hwm_mb()  # interpreter + imports (pyarrow, chdb, redis), before any store is opened
    split = RssSplit()
    split.start()
    outcome = end_to_end(client, config, warm_dir, cold_dir, "child")
    peaks = split.stop()
    print(json.dumps({
        "records": outcome.result.records, "seconds": outcome.result.seconds, "cpu": outcome.result.cpu,
        "warm_rows": outcome.warm_rows, "cold_rows": outcome.cold_rows,
        "baseline_mb": baseline, "peak_mb": _hwm_mb(),
        "peak_anon_mb": peaks["RssAnon"], "peak_file_mb": peaks["RssFile"],
    }))


def peak_rss(server: PrivateRedis, group: str, pipeline: dict[str, Any], root: Path) -> tuple[Result, dict]:
    spec = {"url": server.url, "group": group, "pipeline": pipeline,
            "warm": str(root / "rss-warm"), "cold": str(root / "rss-cold")}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-e2e", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child export failed ({done.returncode}):\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    note = (f"peak RSS {figures['peak_mb']:,.0f} MB (after imports {figures['baseline_mb']:,.0f} MB), "
            f"warm {figures['warm_rows']:,} / cold {figures['cold_rows']:,}")
    return Result("6 end to end in child process", figures["records"], figures["seconds"], note,
                  figures["cpu"]), figures


# -- main --------------------------------------------------------------------------------------------


def machine(client: redis.Redis) -> str:
    import chdb

    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return (f"nproc {os.cpu_count()} ({cpu or platform.machine()}), Python {platform.python_version()}, "
            f"redis-server {client.info('server')['redis_version']}, redis-py {redis.__version__}, "
            f"chdb {chdb.__version__}, pyarrow {pa.__version__}")


def source_digest() -> str:
    """A digest of exporter/**/*.py, to tell which code a run measured (the tree may be edited)."""
    digest = hashlib.sha1()
    package = Path(__file__).resolve().parent.parent / "exporter"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def run(args: argparse.Namespace) -> None:
    wall_started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="archives-bench-"))
    cleanup = Cleanup(root, keep=args.keep)
    atexit.register(cleanup)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        server = PrivateRedis(root / "redis")
        cleanup.closers.append(server.stop)
        client = redis.Redis.from_url(server.url, socket_timeout=120, socket_connect_timeout=5)
        cleanup.closers.append(client.close)
        n, batch_size = args.events, args.batch_size
        settings = pipeline_settings(args)
        report = Report()
        e2e_config = bench_config(server.url, "g_e2e", root / "e2e-warm", root / "e2e-cold", **settings)
        p = e2e_config.pipeline
        print(f"archives export benchmark: {n:,} events, stage batches of {batch_size:,}; end to end: batches "
              f"{p.batch_size:,} to {p.max_batch_size:,} records (dynamic) and at most {p.max_batch_bytes:,} bytes, "
              f"{p.worker_count} workers; temp {root}")
        print(f"{machine(client)}; exporter source {source_digest()}", flush=True)

        seeded = seed(client, n)
        print(f"  {seeded.stage:<34} {seeded.records:>10,} rec {seeded.seconds:>8.2f} s "
              f"{seeded.rate:>12,.0f} rec/s  {seeded.note}", flush=True)

        drain = report.add(bare_drain(client, "g_drain_1000", 1000), ceiling=True)
        report.add(bare_drain(client, "g_drain_10000", 10_000))

        config = bench_config(server.url, "g_prepare", root / "sink-warm", root / "sink-cold", **settings)
        batches = read_batches(client, batch_size)
        gc.freeze()  # the 1M read-ahead entries are not the pipeline's: keep them out of GC passes
        warm = open_warm(root / "sink-warm", config)
        try:
            cold = open_cold(root / "sink-cold", config)
            pipeline = ExportPipeline(config, client, warm, cold, CONSUMER)  # only prepare() is used
            prepared_result, prepared = prepare_all(pipeline, batches)
            report.add(prepared_result)
            del batches
            gc.unfreeze()
            gc.collect()
            warm_alone = report.add(sink_alone("3a ClickHouse (chdb) insert alone", warm.insert, prepared))
            cold_alone = report.add(sink_alone("3b Parquet write_batch alone", cold.write_batch, prepared))
            del prepared
        finally:
            warm.close()
        gc.collect()

        outcome = end_to_end(client, e2e_config, root / "e2e-warm", root / "e2e-cold", "4 end to end run(once=True)")
        e2e = report.add(outcome.result)
        ok = outcome.warm_rows == n and outcome.cold_rows == n and outcome.pending == 0
        print(f"    check: jobs_archive count() {outcome.warm_rows:,}, Parquet rows {outcome.cold_rows:,} "
              f"in {outcome.cold_files:,} files, pending {outcome.pending}, DLQ {outcome.dead_letters}, "
              f"final batch target {outcome.final_batch_target:,} -> {'OK' if ok else 'MISMATCH'} (N = {n:,})",
              flush=True)

        if not args.skip_naive:
            result, count = naive(client, "g_naive", batch_size, root / "naive-warm", root / "naive-cold", config)
            report.add(result)
            print(f"    naive check: jobs_archive count() {count:,}; end to end / naive = "
                  f"{e2e.rate / result.rate:.2f}x", flush=True)

        result, figures = peak_rss(server, "g_rss", settings, root)
        report.add(result)
        print(f"    peak RSS of the end-to-end child with a {n:,} backlog: {figures['peak_mb']:,.0f} MB "
              f"(VmHWM; {figures['baseline_mb']:,.0f} MB after imports, before opening the stores); sampled "
              f"peaks: anonymous {figures['peak_anon_mb']:,.0f} MB, file-backed {figures['peak_file_mb']:,.0f} MB",
              flush=True)

        report.table()
        report.cpu_bound([drain, prepared_result, warm_alone, cold_alone], e2e, os.cpu_count() or 1)
        print(f"\nmachine: {machine(client)}")
        print(f"wall time {time.perf_counter() - wall_started:.1f} s")
    finally:
        cleanup()
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to seed (default 1,000,000)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="records per batch (default 10,000)")
    parser.add_argument("--max-batch-size", type=int, default=100_000,
                        help="pipeline.max_batch_size for the end-to-end stages (default 100,000)")
    parser.add_argument("--max-batch-bytes", help="pipeline.max_batch_bytes, e.g. 8MiB (default: the product's)")
    parser.add_argument("--workers", type=int, help="pipeline.worker_count (default: the product's)")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive per-record reference")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (stores, redis log)")
    parser.add_argument("--child-e2e", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_e2e:
        child_e2e(json.loads(args.child_e2e))
        return
    if args.events < 1 or args.batch_size < 100:
        parser.error("--events must be >= 1 and --batch-size >= 100")
    run(args)


if __name__ == "__main__":
    main()
