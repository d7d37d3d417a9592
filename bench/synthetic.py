"""Synthetic archive rows generated straight as Arrow, for the query benchmark.

Going through Redis and the exporter would take most of an hour for 10M events; the query benchmark
needs the rows, not the pipeline. Distributions are chosen so that queries meet realistic data: queues
of very different volume, durations per queue (lognormal, timeouts at the queue's limit), a share of
failures with bursts (incidents), a few hundred distinct error messages, Zipf-distributed tenants,
workers per queue, diurnal and weekly load, retried jobs that share a job_id with their next attempt.

Everything is vectorized with numpy; one day of rows at a time, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from exporter.record import CURRENT_SCHEMA_VERSION, RECORD_SCHEMA, STORED_TIME, TIME_FIELDS


@dataclass(frozen=True)
class Queue:
    name: str
    share: float  # of all events
    median_ms: float  # duration
    sigma: float  # lognormal spread of the duration
    timeout_ms: int
    failure_rate: float
    errors: tuple[str, ...]


QUEUES = (
    Queue("emails", 0.28, 180, 0.7, 30_000, 0.03, ("SMTPError", "MailboxFull", "InvalidRecipient", "RateLimited")),
    Queue("webhooks", 0.20, 350, 1.1, 10_000, 0.08, ("HTTP500", "HTTP503", "ConnectionRefused", "TLSHandshakeFailed",
                                                     "DNSFailure")),
    Queue("thumbnails", 0.15, 900, 0.5, 60_000, 0.01, ("OutOfMemory", "UnsupportedFormat", "CorruptImage")),
    Queue("notifications", 0.12, 90, 0.6, 5_000, 0.02, ("ProviderUnavailable", "InvalidRecipient", "RateLimited")),
    Queue("payments", 0.10, 260, 0.8, 15_000, 0.04, ("CardDeclined", "GatewayTimeout", "FraudSuspected",
                                                     "InsufficientFunds")),
    Queue("search-index", 0.07, 1_500, 0.9, 120_000, 0.02, ("MappingConflict", "ClusterUnavailable")),
    Queue("reports", 0.05, 6_000, 1.0, 300_000, 0.05, ("OutOfMemory", "QueryTimeout", "DependencyFailed")),
    Queue("exports", 0.03, 12_000, 1.2, 600_000, 0.06, ("QuotaExceeded", "StorageUnavailable", "DependencyFailed")),
)
_MESSAGES = (  # {k} varies per message so an error type has several distinct texts
    "{t}: upstream returned an error (attempt {k})",
    "{t} while calling service-{k}.internal:8443",
    "{t}: request {k} rejected by the provider",
    "{t}: connection reset by peer after {k} ms",
)
TENANTS = 400
WORKERS_PER_QUEUE = 6
VERSIONS = ("2.3.1", "2.4.0", "2.4.1")
REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-south-1")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class Spec:
    """What to generate: ``events`` over the ``days`` days before ``end``."""

    events: int
    days: int
    end: datetime
    seed: int = 20260101

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def hourly_weights(spec: Spec) -> np.ndarray:
    """Relative load of each hour of the span: a day curve peaking mid-afternoon UTC, quieter weekends."""
    hours = np.arange(spec.days * 24)
    moments = np.datetime64(spec.start.replace(tzinfo=None), "h") + hours
    hour_of_day = (moments.astype("datetime64[h]").astype(np.int64)) % 24
    weekday = (moments.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    curve = 0.35 + np.exp(-((hour_of_day - 14) ** 2) / 18.0)
    return curve * np.where(weekday >= 5, 0.6, 1.0)


def day_counts(spec: Spec) -> np.ndarray:
    """Events per hour of the span, summing exactly to ``spec.events``."""
    weights = hourly_weights(spec)
    rng = np.random.default_rng(spec.seed)
    return rng.multinomial(spec.events, weights / weights.sum())


def batches(spec: Spec) -> Iterator[tuple[str, pa.Table]]:
    """``(batch id, rows)`` for each day of the span, in time order, with the archive's schema."""
    per_hour = day_counts(spec)
    start_ms = int(spec.start.timestamp() * 1000)
    for day in range(spec.days):
        counts = per_hour[day * 24:(day + 1) * 24]
        rng = np.random.default_rng([spec.seed, day])
        hour_starts = start_ms + (day * 24 + np.arange(24)) * 3_600_000
        enqueue = np.repeat(hour_starts, counts) + rng.integers(0, 3_600_000, int(counts.sum()))
        enqueue.sort()
        yield f"bench-{spec.seed}-day-{day:03d}", _rows(rng, enqueue, day)


def _hex(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` random lowercase hex strings of ``width`` characters, as a (n, width) uint8 array."""
    return _HEX[rng.integers(0, 16, (n, width), dtype=np.uint8)]


def _strings(chars: np.ndarray) -> pa.Array:
    """A (n, width) uint8 array as n strings, without a Python object per row."""
    n, width = chars.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(np.ascontiguousarray(chars).tobytes()))


def _uuid(rng: np.random.Generator, n: int) -> np.ndarray:
    chars = _hex(rng, n, 36)
    chars[:, [8, 13, 18, 23]] = ord("-")
    chars[:, 14] = ord("4")
    return chars


def _pool(values: list[str], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(index))


def _rows(rng: np.random.Generator, enqueue: np.ndarray, day: int) -> pa.Table:
    n = len(enqueue)
    queue = rng.choice(len(QUEUES), n, p=[q.share for q in QUEUES])
    median = np.array([q.median_ms for q in QUEUES])[queue]
    sigma = np.array([q.sigma for q in QUEUES])[queue]
    timeout = np.array([q.timeout_ms for q in QUEUES])[queue]
    failure = np.array([q.failure_rate for q in QUEUES])[queue]

    # An incident on one queue for two hours on some days: a tenth of its jobs fail then.
    if rng.random() < 0.4:
        struck = rng.integers(len(QUEUES))
        hour = rng.integers(24)
        first = enqueue[0] - enqueue[0] % 86_400_000 + hour * 3_600_000
        failure = np.where((queue == struck) & (enqueue >= first) & (enqueue < first + 7_200_000), 0.3, failure)

    roll = rng.random(n)
    outcome = np.zeros(n, np.int8)  # indexes into OUTCOME_NAMES
    outcome[roll < failure] = 1  # failed
    outcome[(roll >= failure) & (roll < failure + 0.012)] = 2  # timeout
    outcome[(roll >= failure + 0.012) & (roll < failure + 0.020)] = 3  # cancelled
    outcome[(roll >= failure + 0.020) & (roll < failure + 0.045)] = 4  # retry (attempt failed, will run again)

    wait = rng.lognormal(np.log(150), 1.3, n)
    duration = np.minimum(rng.lognormal(np.log(median), sigma), timeout)
    duration = np.where(outcome == 2, timeout, duration)
    start = enqueue + wait.astype(np.int64)
    end = start + duration.astype(np.int64)
    never_started = (outcome == 3) & (rng.random(n) < 0.5)

    errored = np.isin(outcome, (1, 2, 4))
    error_type, error_msg = _errors(rng, queue, outcome, errored)
    retries = np.where(errored, rng.geometric(0.6, n) - 1, 0).astype(np.uint16)

    job_id = _uuid(rng, n)
    # A retried attempt's job runs again shortly after: the next attempt carries the same job_id.
    again = np.flatnonzero(outcome == 4)
    later = np.minimum(again + rng.integers(1, 2000, len(again)), n - 1)
    job_id[later] = job_id[again]
    retries[later] = retries[again] + 1

    worker = queue * WORKERS_PER_QUEUE + rng.integers(0, WORKERS_PER_QUEUE, n)
    tenant = np.minimum(rng.zipf(1.3, n), TENANTS) - 1
    sampled = (outcome == 1) | (rng.random(n) < 0.01)
    sample_index = np.where(sampled, rng.integers(0, 50, n), -1)
    samples = [f'{{"order": {k}, "to": "[REDACTED:email]", "items": {k % 7}}}' for k in range(50)]
    tags = _tags(rng, n)
    times = {
        "enqueue_time": pa.array(enqueue, STORED_TIME),
        "start_time": pa.array(start, STORED_TIME, mask=never_started),
        "end_time": pa.array(end, STORED_TIME, mask=never_started),
    }
    columns = {
        "job_id": _strings(job_id),
        "queue": _pool([q.name for q in QUEUES], queue),
        "tenant_id": _pool([f"tenant-{t:04d}" for t in range(TENANTS)], tenant),
        "priority": pa.array(rng.choice(10, n, p=[.05, .1, .4, .2, .1, .05, .04, .03, .02, .01]).astype(np.int8)),
        **times,
        "outcome": _pool(list(OUTCOME_NAMES), outcome),
        "retries": pa.array(retries),
        "error_type": error_type,
        "error_msg": error_msg,
        "worker_id": _pool([f"{q.name}-worker-{w:02d}" for q in QUEUES for w in range(WORKERS_PER_QUEUE)], worker),
        "worker_version": _pool(list(VERSIONS), np.minimum(day // 20 + rng.integers(0, 2, n), len(VERSIONS) - 1)),
        "payload_size": pa.array(np.minimum(rng.lognormal(np.log(2048), 1.2, n), 2**31).astype(np.uint32)),
        "payload_hash": _strings(_hex(rng, n, 64)),
        "payload_sample": pa.array([*samples, None], pa.string()).take(pa.array(sample_index % 51)),
        "trace_id": _strings(_hex(rng, n, 32)),
        "span_id": _strings(_hex(rng, n, 16)),
        "correlation_id": _pool(["", *(f"order-{k:06d}" for k in range(1000))],
                                np.where(rng.random(n) < 0.3, rng.integers(1, 1001, n), 0)),
        "tags": tags,
        "schema_version": _pool([CURRENT_SCHEMA_VERSION], np.zeros(n, np.int64)),
    }
    schema = pa.schema([f.with_type(STORED_TIME) if f.name in TIME_FIELDS else f for f in RECORD_SCHEMA])
    return pa.table(columns, schema=schema)


OUTCOME_NAMES = ("success", "failed", "timeout", "cancelled", "retry")
_ALL_ERRORS = sorted({e for q in QUEUES for e in q.errors} | {"Timeout"})


def _errors(rng: np.random.Generator, queue: np.ndarray, outcome: np.ndarray,
            errored: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Error type and message: empty for jobs that did not fail; timeouts are ``Timeout``."""
    n = len(queue)
    pick = rng.zipf(1.6, n) - 1
    kinds = np.array([_ALL_ERRORS.index(q.errors[0]) for q in QUEUES])
    per_queue = [np.array([_ALL_ERRORS.index(e) for e in q.errors]) for q in QUEUES]
    chosen = kinds[queue]
    for index, options in enumerate(per_queue):
        rows = queue == index
        chosen[rows] = options[np.minimum(pick[rows], len(options) - 1)]
    chosen = np.where(outcome == 2, _ALL_ERRORS.index("Timeout"), chosen)
    variants = 40  # distinct texts per error type and template
    messages = [template.format(t=kind, k=k) for kind in _ALL_ERRORS for template in _MESSAGES for k in range(variants)]
    message = chosen * len(_MESSAGES) * variants + rng.integers(0, len(_MESSAGES) * variants, n)
    types = [*_ALL_ERRORS, ""]
    messages.append("")
    return (_pool(types, np.where(errored, chosen, len(types) - 1)),
            _pool(messages, np.where(errored, message, len(messages) - 1)))


def _tags(rng: np.random.Generator, n: int) -> pa.Array:
    """Two tags per row: region and environment."""
    keys = pa.array(np.tile(np.array(["region", "env"], dtype=object), n), pa.string())
    region = rng.integers(0, len(REGIONS), n)
    env = np.where(rng.random(n) < 0.97, len(REGIONS), len(REGIONS) + 1)
    values = _pool([*REGIONS, "prod", "staging"], np.column_stack([region, env]).ravel())
    offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    return pa.MapArray.from_arrays(offsets, keys, values)


def now_to_the_hour() -> datetime:
    """The end of a new data set: the current hour, so reruns in the same hour meet the same hours."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
