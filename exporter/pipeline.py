"""The export pipeline: stream -> decode -> conform -> sample -> redact -> ClickHouse + Parquet -> ack.

One reader thread forms batches and records each batch's manifest before handing it on; ``worker_count``
workers decode and write batches concurrently. The hand-off queue holds one batch: enough for a worker
that finishes to start the next at once, and no more, since every queued batch is memory. When sinks
fail the workers stop taking batches, the queue fills and reading pauses, so at most ``worker_count``
+ 2 batches are in hand. A batch is acknowledged only after both sinks hold it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from exporter.batch import Batch, BatchBuilder, BatchOptimizer, fields_of
from exporter.config import Config
from exporter.decode import decode_bodies
from exporter.memory import configure_allocator, release_free_memory
from exporter.metrics import ExportMetrics, publish
from exporter.resilience import CircuitBreaker, backoff_delay
from exporter.schema_registry import SchemaRegistry
from exporter.storage.cold import ParquetStore
from exporter.storage.warm import WarmStore
from exporter.stream import StreamReader
from exporter.transforms import PayloadSampler, PIIRedactor

log = logging.getLogger("archives.pipeline")


@contextlib.contextmanager
def _collector_tuned(young_threshold: int = 20_000):
    """Run the hot loop with fewer, smaller garbage collections.

    Each XREADGROUP reply is thousands of short-lived lists; at Python's default threshold (700) they
    trigger collections that rescan every long-lived object, which cost the reader a third of its
    time. Freezing what exists at start (modules, config) takes it out of those scans.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(previous[0], young_threshold), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


class Stopped(Exception):
    """The pipeline is shutting down; the batch in hand stays pending and is recovered next start."""


class ExportPipeline:
    def __init__(self, config: Config, client: redis.Redis, warm: WarmStore, cold: ParquetStore,
                 consumer: str, registry: SchemaRegistry | None = None) -> None:
        p = config.pipeline
        self.config = config
        self.client = client
        self.consumer = consumer
        self.reader = StreamReader(client, p.stream_key, p.consumer_group, consumer)
        self.warm, self.cold = warm, cold
        self.registry = registry or SchemaRegistry.default()
        self.sampler = PayloadSampler(config.retention.payload_sampling_rate, config.retention.payload_max_size)
        self.redactor = PIIRedactor() if config.retention.pii_redaction_enabled else None
        self.optimizer = BatchOptimizer(p.batch_size, p.min_batch_size, p.max_batch_size, p.target_latency,
                                        p.dynamic_batching)
        self.breakers = {name: CircuitBreaker(name, p.retry_attempts, p.max_retry_backoff)
                         for name in ("clickhouse", "parquet", "redis")}
        self.metrics = ExportMetrics(batch_size_target=p.batch_size)
        self.stopping = threading.Event()  # finish what is read, then stop
        self.aborting = threading.Event()  # stop now; unfinished batches stay pending
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._parquet_writer = ThreadPoolExecutor(max_workers=p.worker_count, thread_name_prefix="parquet")

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, once: bool = False) -> ExportMetrics:
        """Export until stopped (or, with ``once``, until nothing is new or pending); blocks."""
        p = self.config.pipeline
        configure_allocator()
        self._retrying("redis", self.reader.ensure_group)
        workers = [threading.Thread(target=self._work_loop, name=f"export-worker-{i}", daemon=True)
                   for i in range(p.worker_count)]
        for worker in workers:
            worker.start()
        try:
            with _collector_tuned():
                self._recover()
                self._read_loop(once)
        except Stopped:
            pass
        finally:
            for _ in workers:
                self._put(None, force=True)
            for worker in workers:
                worker.join()
            self._parquet_writer.shutdown(wait=True)
            self._publish()
        return self.metrics

    def stop(self, abort: bool = False) -> None:
        self.stopping.set()
        if abort:
            self.aborting.set()

    # -- reading ---------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Replay batches whose manifests survived a crash, then re-batch our own unmanifested pending."""
        p = self.config.pipeline
        replayed = 0
        for manifest in self._retrying("redis", self.reader.manifests):
            stale = time.time() - manifest.created > p.claim_idle
            if manifest.consumer != self.consumer and not stale:
                continue
            batch = self._retrying("redis", lambda m=manifest: self.reader.rebuild(m))
            self.metrics.add(recovered_batches=1, read=len(batch))
            self._put(batch)
            replayed += 1
        if replayed:
            self._queue.join()  # their entries must be acknowledged before pending is re-read
        after = "0"
        while not self.aborting.is_set():
            entries = self._retrying("redis", lambda a=after: self.reader.read_own_pending(p.read_count, a))
            if not entries:
                break
            after = entries[-1][0]
            live = [e for e in entries if e[1] is not None]
            gone = [e[0] for e in entries if e[1] is None]  # trimmed before we archived them: nothing to keep
            if gone:
                self._retrying("redis", lambda g=gone: self.reader.client.xack(p.stream_key, p.consumer_group, *g))
            if live:
                self.metrics.add(read=len(live))
                self._dispatch(Batch.of_ids(live, self.consumer), recovered=True)
        if replayed or after != "0":
            log.info("recovered %d manifested batches and pending entries up to %s", replayed, after)

    def _claim_stale(self) -> None:
        """Take over work of exporters that died: their stale manifests, then their idle entries."""
        p = self.config.pipeline
        for manifest in self.reader.manifests():
            if manifest.consumer != self.consumer and time.time() - manifest.created > p.claim_idle:
                batch = self.reader.rebuild(manifest)
                batch.consumer = self.consumer
                self.metrics.add(recovered_batches=1, read=len(batch))
                self._put(batch)
        start = "0-0"
        while True:
            start, entries = self.reader.claim_stale(int(p.claim_idle * 1000), p.read_count, start)
            if entries:
                self.metrics.add(read=len(entries))
                self._dispatch(Batch.of_ids(entries, self.consumer), recovered=True)
            if start in ("0-0", "0"):
                break

    def _read_loop(self, once: bool) -> None:
        p = self.config.pipeline
        pending = BatchBuilder(self.consumer)
        last_publish = last_claim = time.monotonic()
        failures = 0
        while not self.stopping.is_set():
            target = self.optimizer.size
            deadline = pending.started + p.flush_interval
            block = None if once else max(1, min(1000, int((deadline - time.monotonic()) * 1000) if pending else 1000))
            try:
                entries = self.reader.read_new(max(1, min(p.read_count, target - len(pending))), block)
                failures = 0
            except redis.RedisError as exc:
                self.metrics.error("redis", exc)
                self._sleep(backoff_delay(failures, p.retry_backoff, p.max_retry_backoff))
                failures += 1
                continue
            if entries:
                pending.add(entries)
                self.metrics.add(read=len(entries))
            full = len(pending) >= target or pending.nbytes >= p.max_batch_bytes
            due = time.monotonic() >= pending.started + p.flush_interval
            if pending and (full or due or (once and not entries)):
                self._dispatch(pending.take())
            if time.monotonic() - last_publish >= 1.0:
                self._publish()
                last_publish = time.monotonic()
            if not once and time.monotonic() - last_claim >= p.claim_idle / 2:
                self._guard("redis", self._claim_stale)
                last_claim = time.monotonic()
            if once and not entries and not pending:
                self._queue.join()
                if not self._retrying("redis", self.reader.has_own_pending):
                    break
                self._recover()  # batches left pending by a failure: take them again
        if pending and not self.aborting.is_set():
            self._dispatch(pending.take())

    def _dispatch(self, batch: Batch, recovered: bool = False) -> None:
        batch.recovered = recovered
        self._retrying("redis", lambda: self.reader.record_manifest(batch))
        self._put(batch)

    def _put(self, batch: Batch | None, force: bool = False) -> None:
        while True:
            if self.aborting.is_set() and not force:
                raise Stopped
            try:
                self._queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- processing ------------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if not self.aborting.is_set():
                    self._process(batch)
            except Stopped:
                log.info("batch %s left pending for the next start", batch.batch_id if batch else "-")
            finally:
                self._queue.task_done()

    def _process(self, batch: Batch) -> None:
        batch_id = batch.batch_id
        try:
            records, dead = self.prepare(batch)
        except Exception as exc:  # a bug must not wedge the stream: park the batch in the DLQ
            log.exception("cannot decode batch %s", batch_id)
            self.metrics.error("decode", exc)
            records = None
            reason = f"internal error while decoding: {type(exc).__name__}: {exc}"
            dead = [((entry_id, fields_of(body)), reason)
                    for entry_id, body in zip(batch.entry_ids, batch.bodies, strict=True)]
        batch.bodies = []  # decoded: only the ids are needed from here on
        started = time.monotonic()
        if records is not None and records.num_rows:
            cold = self._parquet_writer.submit(
                self._retrying, "parquet", lambda: self.cold.write_batch(records, batch_id)
            )
            try:
                self._retrying("clickhouse", lambda: self.warm.insert(records, batch_id))
            finally:
                cold.result()
        latency = time.monotonic() - started
        self._retrying("redis", lambda: self.reader.complete(batch, dead))
        target = self.optimizer.observe(latency) if records is not None and records.num_rows else self.optimizer.size
        self.metrics.add(archived=records.num_rows if records is not None else 0, dead_lettered=len(dead), batches=1)
        self.metrics.batch_size_target = target
        self.metrics.last_batch_records = len(batch)
        self.metrics.last_batch_seconds = round(latency, 4)
        release_free_memory()

    def prepare(self, batch: Batch) -> tuple[pa.Table, list[tuple[list, str]]]:
        """Decode and transform a batch: the records to store and the entries to dead-letter."""
        decoded = decode_bodies(batch.bodies, self.config.pipeline.max_record_size)
        records, unknown = self.registry.conform(decoded.table)
        rejects = list(decoded.rejects)
        if pc.any(unknown).as_py():
            mask = unknown.to_numpy(zero_copy_only=False)
            versions = records.column("schema_version")
            rejects += [(int(decoded.rows[r]), f"unknown schema_version {versions[int(r)].as_py()!r}")
                        for r in np.flatnonzero(mask)]
            records = records.filter(pc.invert(unknown))
        records = self.sampler.apply(records, batch.batch_id)
        if self.redactor is not None:
            records = self.redactor.apply(records)
        return records, [((batch.entry_ids[pos], fields_of(batch.bodies[pos])), reason) for pos, reason in rejects]

    # -- retries ---------------------------------------------------------------------------------

    def _retrying(self, sink: str, operation: Callable):
        """Run ``operation`` until it succeeds, pacing retries by backoff and the sink's breaker.

        Only shutdown ends the loop (raising Stopped): a sink outage never loses or acknowledges data.
        """
        breaker = self.breakers[sink]
        p = self.config.pipeline
        attempt = 0
        while True:
            wait = breaker.wait_time()
            if wait:
                self._sleep(wait)
            try:
                result = operation()
            except Stopped:
                raise
            except Exception as exc:
                breaker.record_failure(exc)
                self.metrics.error(sink, exc)
                log.warning("%s failed (attempt %d): %s", sink, attempt + 1, exc)
                if self.stopping.is_set():
                    raise Stopped from None  # shutting down: leave the batch pending, do not wait
                self._sleep(backoff_delay(attempt, p.retry_backoff, p.max_retry_backoff))
                attempt += 1
                continue
            breaker.record_success()
            return result

    def _guard(self, sink: str, operation: Callable) -> None:
        try:
            operation()
        except Exception as exc:
            self.metrics.error(sink, exc)

    def _sleep(self, seconds: float) -> None:
        """Sleep, but end at once (raising Stopped) when the pipeline is aborting."""
        if self.aborting.wait(seconds):
            raise Stopped

    def _publish(self) -> None:
        self._guard("redis", lambda: publish(self.client, self.config.pipeline.stream_key, self.consumer,
                                             self.metrics))
