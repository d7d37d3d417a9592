"""The export pipeline: stream -> decode -> conform -> sample -> redact -> ClickHouse + Parquet -> ack.

One reader thread forms batches and records each batch's manifest before handing it on; ``worker_count``
workers decode and write batches concurrently. The hand-off queue holds one batch: enough for a worker
that finishes to start the next at once, and no more, since every queued batch is memory. When sinks
fail the workers stop taking batches, the queue fills and reading pauses, so at most ``worker_count``
+ 2 batches are in hand. A batch is acknowledged only after both sinks hold it. The pipeline changes no
process-wide setting: a process that only exports runs it inside ``memory.tuned_for_export()``.

Redis may forget: restarted from an older snapshot or failed over to a lagging replica, it delivers
entries again that were archived and acknowledged. The archive keeps its own record of the entries it
holds (``ArchiveLedger``), and every batch read again (recovered, or delivered at or below the highest
entry archived or read) is checked against it, and its refusals against the dead-letter stream, before
anything is written: such entries are acknowledged, not stored twice.

Failures: a sink or Redis that fails is retried with backoff, forever when running as a service, and
at most ``retry_attempts`` times in a row with ``once`` (then the export gives up, sets ``failure``
and leaves what it holds pending). Once stopping, a failure ends the retries at once: the batches in
hand stay pending and are replayed on the next start. A lost consumer group is re-created where
archiving stopped (see ``StreamReader.recreate_group``).
"""

from __future__ import annotations

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

from exporter.batch import Batch, BatchBuilder, BatchOptimizer, as_text, fields_of, id_order
from exporter.config import Config
from exporter.decode import decode_bodies
from exporter.memory import release_free_memory
from exporter.metrics import HEARTBEAT, ExportMetrics, is_alive, publish, read_published
from exporter.record import with_stored_times
from exporter.redact import redact
from exporter.resilience import CircuitBreaker, backoff_delay
from exporter.schema_registry import SchemaRegistry
from exporter.stream import StreamReader, is_lost_group
from exporter.tiers.cold import ParquetStore
from exporter.tiers.ledger import ArchiveLedger
from exporter.tiers.warm import WarmStore
from exporter.transforms import PayloadSampler, PIIRedactor

log = logging.getLogger("archives.pipeline")


class Stopped(Exception):
    """The pipeline is shutting down; the batch in hand stays pending and is recovered next start."""


# A gone consumer's entries are claimed only after this long without delivery, so an exporter that
# restarts under the same name and re-reads its own pending entries keeps them.
_CLAIM_GUARD_MS = 2000
_SINK_NAMES = {"redis": "Redis", "clickhouse": "the warm tier (ClickHouse)", "parquet": "the cold tier (Parquet)"}


class ExportPipeline:
    def __init__(self, config: Config, client: redis.Redis, warm: WarmStore, cold: ParquetStore,
                 consumer: str, registry: SchemaRegistry | None = None) -> None:
        p = config.pipeline
        self.config = config
        self.client = client
        self.consumer = consumer
        self.reader = StreamReader(client, p.stream_key, p.consumer_group, consumer)
        self.warm, self.cold = warm, cold
        self.ledger = ArchiveLedger(warm.backend, p.stream_key, int(config.retention.redis_ttl // 86400) + 7)
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
        self._finished = threading.Event()
        self._lock = threading.Lock()  # guards failure and left_pending
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._parquet_writer = ThreadPoolExecutor(max_workers=p.worker_count, thread_name_prefix="parquet")
        self.once = False
        self.failure: str | None = None  # why ``once`` gave up
        self.left_pending = 0  # entries in hand when the pipeline stopped: replayed on the next start
        self._building = BatchBuilder(consumer)
        # The highest entry id archived (by any exporter, when last asked) or read here: Redis delivers
        # nothing at or below it unless it forgot deliveries.
        self._high: tuple[int, int] = (0, 0)
        self._delivering_again = False  # reading entries Redis delivers a second time
        self._redis_run: str | None = None  # the Redis server's run id: another one may have forgotten
        self._redis_doubt = threading.Event()  # a Redis call failed: check it is the same server before reading

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, once: bool = False) -> ExportMetrics:
        """Export until stopped (or, with ``once``, until nothing is new or pending); blocks."""
        p = self.config.pipeline
        self.once = once
        heartbeat = threading.Thread(target=self._heartbeat, name="export-heartbeat", daemon=True)
        heartbeat.start()
        workers = [threading.Thread(target=self._work_loop, name=f"export-worker-{i}", daemon=True)
                   for i in range(p.worker_count)]
        for worker in workers:
            worker.start()
        try:
            self._retrying("clickhouse", self.ledger.ensure)
            self._high = self._retrying("clickhouse", self.ledger.highest)
            self._redis_run = self._retrying("redis", self.reader.server_run)
            recreated = self._retrying("redis", self.reader.ensure_group)
            if recreated:
                self._lost_group(recreated)
            self._retrying("redis", self._check_delivered)
            self._recover()
            self._read_loop(once)
        except Stopped:
            self.left_pending += len(self._building)
        finally:
            for _ in workers:
                self._put(None, force=True)
            for worker in workers:
                worker.join()
            self._parquet_writer.shutdown(wait=True)
            self._finished.set()
            heartbeat.join()
        return self.metrics

    def stop(self, abort: bool = False) -> None:
        self.stopping.set()
        if abort:
            self.aborting.set()

    # -- reading ---------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Replay batches whose manifests survived a crash (ours and gone exporters'), then re-batch our
        own unmanifested pending entries and take over those of gone exporters."""
        p = self.config.pipeline
        if self.stopping.is_set():
            return  # e.g. once gave up: what is pending stays for the next run
        gone = self._retrying("redis", self._gone)
        replayed = self._retrying("redis", lambda: self._replay_manifests(gone, own=True))
        if self.stopping.is_set():
            return  # replays may have been left pending: re-batching their entries would duplicate them
        after = "0"
        while not self.stopping.is_set():
            entries = self._retrying("redis", lambda a=after: self.reader.read_own_pending(p.read_count, a))
            if not entries:
                break
            after = entries[-1][0]
            live = [e for e in entries if e[1] is not None]
            trimmed = [e[0] for e in entries if e[1] is None]  # trimmed before we archived them: nothing to keep
            if trimmed:
                self._retrying("redis", lambda t=trimmed: self.reader.client.xack(p.stream_key, p.consumer_group, *t))
            if live:
                self.metrics.add(read=len(live))
                self._dispatch(Batch.of_ids(live, self.consumer), recovered=True)
        if replayed or after != "0":
            log.info("recovered %d manifested batches and pending entries up to %s", replayed, as_text(after))
        self._retrying("redis", lambda: self._claim_gone(gone))  # last: claimed entries become our own pending

    def _gone(self) -> dict[str, float]:
        """Other consumers whose work may be taken over, each with the idle time (s) it must have had.

        An exporter that publishes a heartbeat is gone once it stopped or fell silent (its entries are
        then claimed at once); a consumer that never published one (another tool) after ``claim_idle``.
        """
        snapshots = {s["consumer"]: s for s in read_published(self.client, self.config.pipeline.stream_key)}
        consumers = set(self.reader.consumers_with_pending()) | {m.consumer for m in self.reader.manifests()}
        gone = {}
        for consumer in consumers - {self.consumer}:
            snapshot = snapshots.get(consumer)
            if snapshot is None:
                gone[consumer] = self.config.pipeline.claim_idle
            elif not is_alive(snapshot):
                gone[consumer] = _CLAIM_GUARD_MS / 1000
        return gone

    def _replay_manifests(self, gone: dict[str, float], own: bool) -> int:
        """Replay gone exporters' manifested batches, and with ``own`` ours (at start: ours in flight are
        not replayed later); wait until they are acknowledged, so no replay is ever in hand twice."""
        replayed = 0
        for manifest in self.reader.manifests():
            if manifest.consumer == self.consumer:
                if not own:
                    continue
            elif manifest.consumer not in gone or time.time() - manifest.created < gone[manifest.consumer]:
                continue
            batch = self.reader.rebuild(manifest)
            self.metrics.add(recovered_batches=1, read=len(batch))
            self._put(batch)
            replayed += 1
        if replayed:
            self._queue.join()  # their entries must be acknowledged before pending entries are re-read
        return replayed

    def _claim_gone(self, gone: dict[str, float]) -> None:
        """Take over the pending entries of gone exporters (after their manifests were replayed and
        acknowledged: when stopping, those may have been left pending, so nothing is taken)."""
        if self.stopping.is_set():
            return
        for consumer, idle in gone.items():
            while entries := self.reader.claim_from(consumer, max(_CLAIM_GUARD_MS, int(idle * 1000)),
                                                    self.config.pipeline.read_count):
                log.info("took over %d pending entries of exporter %s, which is gone", len(entries), consumer)
                self.metrics.add(read=len(entries), claimed=len(entries))
                self._dispatch(Batch.of_ids(entries, self.consumer), recovered=True)

    def _claim_stale(self) -> None:
        """Take over work of exporters that died: their manifests, then their pending entries."""
        gone = self._gone()
        if gone:
            self._replay_manifests(gone, own=False)
            self._claim_gone(gone)

    def _read_loop(self, once: bool) -> None:
        p = self.config.pipeline
        pending = self._building
        last_claim = time.monotonic()
        while not self.stopping.is_set():
            target = self.optimizer.size
            deadline = pending.started + p.flush_interval
            block = None if once else max(1, min(1000, int((deadline - time.monotonic()) * 1000) if pending else 1000))
            count = max(1, min(p.read_count, target - len(pending)))
            entries = self._retrying("redis", lambda c=count, b=block: self._read_new(c, b))
            if entries is None:
                self._resync()
                continue
            if entries:
                self._add(entries)
            full = len(pending) >= target or pending.nbytes >= p.max_batch_bytes
            due = time.monotonic() >= pending.started + p.flush_interval
            if pending and (full or due or (once and not entries)):
                self._dispatch(pending.take())
            if not once and time.monotonic() - last_claim >= min(p.claim_idle / 2, 10.0):
                self._retrying("redis", self._claim_stale)
                self._redis_doubt.set()  # a restart need not break a connection: ask now and then
                last_claim = time.monotonic()
            if once and not entries and not pending:
                self._queue.join()
                if not self._retrying("redis", self.reader.has_own_pending):
                    break
                self._recover()  # batches left pending by a failure: take them again
        if pending and not self.aborting.is_set():
            self._dispatch(pending.take())

    def _add(self, entries: list) -> None:
        """Add what a read returned to the batch being built; entries Redis delivers again go their own way."""
        again = _delivered_again(entries, self._high)
        if again:
            self._take_again(entries[:again])
        fresh = entries[again:]
        if fresh:
            self._delivering_again = False
            self._high = max(self._high, id_order(fresh[-1][0]))
            self._building.add(fresh)
            self.metrics.add(read=len(fresh))

    def _read_new(self, count: int, block: int | None) -> list | None:
        """New entries for this consumer; ``None`` when Redis is another server than before (restarted
        or failed over), which may have forgotten what was acknowledged or delivered."""
        if self._redis_doubt.is_set():
            run = self.reader.server_run()
            self._redis_doubt.clear()
            if run != self._redis_run:
                self._redis_run = run
                return None
        return self.reader.read_new(count, block)

    def _resync(self) -> None:
        """Redis restarted or another server took over: once what is in hand is stored, find what it
        forgot (deliveries, acknowledgements: pending entries and manifests come back) and take it
        again, checked against the archive."""
        log.info("Redis restarted or failed over; checking what it may have forgotten")
        self._drain()
        self._high = max(self._high, self._retrying("clickhouse", self.ledger.highest))
        self._retrying("redis", self._check_delivered)
        self._recover()

    def _take_again(self, entries: list) -> None:
        """Entries Redis delivers a second time: stored or in hand before; checked once the batches in
        hand are stored, so that the archive's record is complete for them."""
        if not self._delivering_again:
            self._delivering_again = True
            self._went_back(f"Redis delivered entries again from {as_text(entries[0][0])} on, at or below the "
                            f"highest entry archived or read ({_id_text(self._high)})")
            self._drain()
        self.metrics.add(read=len(entries))
        self._dispatch(Batch.of_ids(entries, self.consumer), recovered=True)

    def _drain(self) -> None:
        """Wait until every batch read so far is stored (or left pending when stopping)."""
        if self._building:
            self._dispatch(self._building.take())
        self._queue.join()

    def _check_delivered(self) -> None:
        """Say so when the group's last delivery lies below what the archive holds: Redis forgot."""
        delivered = self.reader.last_delivered()
        if delivered is not None and delivered < self._high:
            self._delivering_again = True  # one report for what follows
            self._went_back(f"consumer group {self.reader.group} was last delivered {_id_text(delivered)}, "
                            f"below the highest entry archived or read ({_id_text(self._high)})")

    def _went_back(self, what: str) -> None:
        message = (f"Redis went back in time: {what} (a restart from an older snapshot, a failover to a lagging "
                   "replica or a re-created group); entries it delivers again are checked against the archive, "
                   "not stored twice")
        log.warning(message)
        self.metrics.add(redis_rewinds=1)
        self.metrics.redis_rewound_at = time.time()
        self.metrics.error("redis", message)

    def _regroup(self) -> None:
        """The consumer group is gone: re-create it after what is archived or in hand (reader thread only:
        only reads meet a lost group, since XACK of a missing group is a no-op)."""
        if self._building:
            self._dispatch(self._building.take())  # recorded, so the new group starts after it
        position = self.reader.recreate_group()
        if position is None:
            log.warning("consumer group %s of %s was gone; another exporter re-created it", self.reader.group,
                        self.reader.stream_key)
        else:
            self._lost_group(position)

    def _lost_group(self, position: str) -> None:
        self.metrics.add(groups_recreated=1)
        self.metrics.group_recreated_at = time.time()
        message = (f"consumer group {self.reader.group} of {self.reader.stream_key} was gone (FLUSHDB, XGROUP "
                   "DESTROY or a restart without persistence); re-created it "
                   + ("at the start of the stream" if position == "0" else f"after entry {position}"))
        log.warning(message)
        self.metrics.error("redis", message)

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
                if self.aborting.is_set():
                    raise Stopped
                self._process(batch)
            except Stopped:
                with self._lock:
                    self.left_pending += len(batch)
                log.info("batch %s left pending for the next start", batch.batch_id)
            finally:
                self._queue.task_done()

    def _process(self, batch: Batch) -> None:
        batch_id = batch.batch_id
        handled = self._retrying("clickhouse", lambda: self.ledger.handled(batch.entry_ids)) if batch.recovered else {}
        stored_before = {entry_id for entry_id, refused in handled.items() if not refused}
        todo = batch.without(stored_before) if stored_before else batch
        try:
            records, dead = self.prepare(todo) if todo.entry_ids else (None, [])
        except Exception as exc:  # a bug must not wedge the stream: park the batch in the DLQ
            log.exception("cannot decode batch %s", batch_id)
            self.metrics.error("decode", exc)
            records = None
            reason = f"internal error while decoding: {type(exc).__name__}: {exc}"
            dead = [((entry_id, fields_of(body)), reason)
                    for entry_id, body in zip(todo.entry_ids, todo.bodies, strict=True)]
        batch.bodies = todo.bodies = []  # decoded: only the ids are needed from here on
        refused = {entry_id for (entry_id, _), _ in dead}
        skipped = len(stored_before)
        refused_before = [entry_id for entry_id in refused if entry_id in handled]
        if refused_before:  # its dead letter may have been forgotten with the acknowledgement
            kept = self._retrying("redis", lambda: self.reader.dead_lettered(refused_before))
            dead = [letter for letter in dead if letter[0][0] not in kept]
            skipped += len(kept)
        started = time.monotonic()
        stored = records.num_rows if records is not None else 0
        in_warm = 0
        if stored:
            cold = self._parquet_writer.submit(
                self._retrying, "parquet", lambda: self.cold.write_batch(records, batch_id)
            )
            try:
                in_warm = self._retrying("clickhouse", lambda: self.warm.insert(records, batch_id))
            finally:
                cold.result()
        stored_ids = [entry_id for entry_id in todo.entry_ids if entry_id not in refused]  # stored_before left out
        refused_ids = [entry_id for entry_id in refused if entry_id not in handled]
        self._retrying("clickhouse", lambda: self.ledger.record(stored_ids, refused_ids, batch_id))
        latency = time.monotonic() - started
        self._retrying("redis", lambda: self.reader.complete(batch, dead))
        target = self.optimizer.observe(latency) if stored else self.optimizer.size
        self.metrics.add(archived=stored, warm_archived=in_warm, warm_skipped=stored - in_warm,
                         dead_lettered=len(dead), batches=1,
                         delivered_again=skipped)
        self.metrics.batch_size_target = target
        self.metrics.last_batch_records = len(batch)
        self.metrics.last_batch_seconds = round(latency, 4)
        self.metrics.last_batch_at = time.time()
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
        records = with_stored_times(records)  # once here, rather than in each sink
        return records, [((batch.entry_ids[pos], fields_of(batch.bodies[pos])), reason) for pos, reason in rejects]

    # -- retries ---------------------------------------------------------------------------------

    def _retrying(self, sink: str, operation: Callable):
        """Run ``operation`` until it succeeds, pacing retries by backoff and the sink's breaker.

        A sink outage never loses or acknowledges data. The loop ends (raising Stopped) when the
        pipeline stops, or with ``once`` after ``retry_attempts`` failures in a row (``failure`` says
        why). A lost consumer group is re-created and the operation tried again.
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
                if sink == "redis" and is_lost_group(exc) and attempt < p.retry_attempts:
                    try:
                        self._regroup()
                        attempt += 1
                        continue
                    except Stopped:
                        raise
                    except Exception as failed:  # Redis failed while re-creating: a failure like any other
                        exc = failed
                breaker.record_failure(exc)
                self.metrics.error(sink, exc)
                if sink == "redis":
                    self._redis_doubt.set()
                log.warning("%s failed (attempt %d): %s", sink, attempt + 1, redact(str(exc)))
                attempt += 1
                if self.once and attempt >= p.retry_attempts:
                    self._give_up(sink, exc, attempt)
                if self.stopping.is_set():
                    raise Stopped from None  # shutting down: leave the batch pending, do not wait
                self._sleep(backoff_delay(attempt - 1, p.retry_backoff, p.max_retry_backoff))
                continue
            breaker.record_success()
            return result

    def _give_up(self, sink: str, exc: Exception, attempts: int) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = redact(f"{_SINK_NAMES[sink]} failed {attempts} times in a row: {exc}")
        self.stop()
        raise Stopped from None

    def _sleep(self, seconds: float) -> None:
        """Sleep, but end at once (raising Stopped) when the pipeline stops: retrying a failing sink
        while shutting down would only delay the exit, and what is in hand stays pending anyway."""
        if self.stopping.wait(seconds):
            raise Stopped

    def _heartbeat(self) -> None:
        """Publish the counters every HEARTBEAT seconds, and a last time, marked stopped, at the end.

        From a thread of its own, so that an exporter stuck retrying a sink is still seen alive.
        """
        key = self.config.pipeline.stream_key
        while not self._finished.wait(HEARTBEAT):
            self._publish(key)
        self.metrics.stopped_at = time.time()
        self._publish(key)

    def _publish(self, key: str) -> None:
        try:
            publish(self.client, key, self.consumer, self.metrics)
        except redis.RedisError as exc:
            log.debug("cannot publish the exporter's counters: %s", exc)


def _delivered_again(entries: list, high: tuple[int, int]) -> int:
    """How many of the entries (in stream order) lie at or below ``high``: delivered a second time."""
    count = 0
    while count < len(entries) and id_order(entries[count][0]) <= high:
        count += 1
    return count


def _id_text(order: tuple[int, int]) -> str:
    return f"{order[0]}-{order[1]}"
