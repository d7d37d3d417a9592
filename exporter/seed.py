"""Synthetic job completions for demos, tests and benchmarks (`archives seed`).

Several queues, tenants, workers and error types; durations per queue; a share of failures; payload
samples, some of which carry e-mail addresses and phone numbers for the PII redaction to find.
Times are written as Go writes them (RFC 3339 with nanoseconds, various offsets) and, for a share of
records, as epoch milliseconds. Jobs arrive in completion order, as a queue appends them: times rise
through the stream, with the small disorder that varying queue waits and durations give.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson

QUEUES = {  # queue: (median duration ms, error types)
    "payments": (240, ["CardDeclined", "GatewayTimeout", "FraudSuspected"]),
    "notifications": (90, ["ProviderUnavailable", "InvalidRecipient"]),
    "emails": (150, ["SMTPError", "MailboxFull", "InvalidRecipient"]),
    "reports": (4200, ["OutOfMemory", "QueryTimeout"]),
    "background": (2100, ["DeadlineExceeded", "DependencyFailed"]),
    "webhooks": (320, ["HTTP500", "ConnectionRefused", "TLSHandshakeFailed"]),
}
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"]
WORKERS = [f"worker-{i:02d}" for i in range(1, 13)]
VERSIONS = ["1.8.2", "1.9.0", "1.9.1"]
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)),
           timezone(timedelta(hours=5, minutes=30))]
FIRST_NAMES = ["ana", "li", "omar", "sofia", "jan", "maya", "ravi", "zoe"]


def _go_time(moment: datetime, nanos: int) -> str:
    """Go's RFC3339Nano: nanoseconds with trailing zeros trimmed, Z for UTC."""
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    offset = moment.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return f"{base}{'.' + fraction if fraction else ''}{zone}"


def synthetic_completions(jobs: int, days: float = 1.0, failure_rate: float = 0.05, pii_rate: float = 0.1,
                          seed: int = 7, now: datetime | None = None) -> Iterator[bytes]:
    """Yield ``jobs`` encoded ``data`` values, enqueued over the last ``days`` days."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    span_ms = days * 86400_000
    first = now - timedelta(milliseconds=span_ms)
    queues = list(QUEUES)
    for i in range(jobs):
        queue = rng.choice(queues)
        median, errors = QUEUES[queue]
        waited = rng.expovariate(1 / 2000)  # queue wait before this job's turn, ms
        enqueue = first + timedelta(milliseconds=max(0.0, i * span_ms / jobs - waited))
        start = enqueue + timedelta(milliseconds=rng.expovariate(1 / 50))
        end = start + timedelta(milliseconds=rng.lognormvariate(0, 0.6) * median)
        roll = rng.random()
        if roll >= failure_rate:
            outcome = "success"
        else:
            outcome = rng.choices(["failed", "timeout", "retry", "cancelled"], [60, 20, 15, 5])[0]
        error_type = rng.choice(errors) if outcome in ("failed", "timeout", "retry") else ""
        person = rng.choice(FIRST_NAMES)
        has_pii = rng.random() < pii_rate
        payload = {"order": rng.randrange(10**8), "amount_cents": rng.randrange(100, 10**6),
                   "currency": rng.choice(["EUR", "USD", "GBP"]), "items": rng.randrange(1, 9),
                   "note": "priority customer" if rng.random() < 0.1 else "standard"}
        if has_pii:
            payload["customer_email"] = f"{person}.{rng.randrange(1000)}@example.com"
            payload["customer_phone"] = f"+1 415-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
        sample = orjson.dumps(payload).decode()
        job_id = f"job-{seed:x}-{i:09d}"
        zone = rng.choice(OFFSETS)
        as_epoch = rng.random() < 0.1
        record = {
            "job_id": job_id,
            "queue": queue,
            "tenant_id": rng.choice(TENANTS),
            "priority": rng.choice([0, 0, 0, 1, 2, 5, 9]),
            "enqueue_time": int(enqueue.timestamp() * 1000) if as_epoch
            else _go_time(enqueue.astimezone(zone), enqueue.microsecond * 1000 + rng.randrange(1000)),
            "start_time": _go_time(start.astimezone(zone), start.microsecond * 1000),
            "end_time": _go_time(end.astimezone(zone), end.microsecond * 1000),
            "outcome": outcome,
            "retries": rng.choice([0, 0, 0, 1, 2]) if outcome != "success" else 0,
            "worker_id": rng.choice(WORKERS),
            "worker_version": rng.choice(VERSIONS),
            "payload_size": len(sample) * rng.randrange(1, 40),
            "payload_hash": hashlib.sha256(sample.encode()).hexdigest(),
            "payload_sample": sample,
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "correlation_id": f"corr-{rng.getrandbits(48):012x}",
            "tags": {"region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"]), "env": "prod"},
            "schema_version": "1.0.0",
        }
        if error_type:
            record["error_type"] = error_type
            record["error_msg"] = f"{error_type}: job {job_id} for {person}@example.org failed after {end - start}"
        yield orjson.dumps(record)


def seed_stream(client, stream_key: str, jobs: int, days: float = 1.0, failure_rate: float = 0.05,
                pii_rate: float = 0.1, seed: int = 7, chunk: int = 2000) -> int:
    """Append synthetic completions with pipelined XADDs; returns how many were appended."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for value in synthetic_completions(jobs, days, failure_rate, pii_rate, seed):
        pipe.xadd(stream_key, {"data": value})
        count += 1
        if count % chunk == 0:
            pipe.execute()
    pipe.execute()
    return count
