"""Export counters, shared by the pipeline's threads and published to Redis for other processes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields

import orjson
import redis

from exporter.redact import redact

# An exporter publishes its snapshot every HEARTBEAT seconds from a thread of its own; one not heard
# from for LIVENESS seconds is taken for dead, and its pending work may be claimed at once.
HEARTBEAT = 1.0
LIVENESS = 15.0


@dataclass
class ExportMetrics:
    """Counters of one exporter. ``archived`` counts records stored in the cold tier (the complete
    record); ``warm_archived`` those also in the warm tier, ``warm_skipped`` those older than the warm
    window, which the warm tier would only drop again."""

    read: int = 0
    archived: int = 0
    warm_archived: int = 0
    warm_skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0
    recovered_batches: int = 0
    claimed: int = 0
    groups_recreated: int = 0
    group_recreated_at: float | None = None
    redis_rewinds: int = 0  # times Redis was found to have forgotten deliveries or acknowledgements
    redis_rewound_at: float | None = None
    delivered_again: int = 0  # entries delivered again that were stored or dead-lettered before: acknowledged only
    last_batch_at: float | None = None
    stopped_at: float | None = None
    batch_size_target: int = 0
    last_batch_records: int = 0
    last_batch_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    sink_errors: dict[str, tuple[float, str]] = field(default_factory=dict)  # the last of each part: when, what
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def error(self, where: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.errors[where] = self.errors.get(where, 0) + 1
            self.last_error = redact(f"{where}: {text}")[:500]
            self.last_error_at = time.time()
            self.sink_errors[where] = (self.last_error_at, redact(text)[:500])

    def snapshot(self) -> dict:
        with self._lock:
            data = {k: v for k, v in vars(self).items() if not k.startswith("_")}
            data["errors"] = dict(self.errors)
            data["sink_errors"] = dict(self.sink_errors)
            return data


def metrics_key(stream_key: str, consumer: str) -> str:
    return f"{stream_key}:exporter:{consumer}"


def publish(client: redis.Redis, stream_key: str, consumer: str, metrics: ExportMetrics) -> None:
    """Store a snapshot where `archives status` in any process can read it (kept for a day)."""
    snapshot = metrics.snapshot()
    snapshot["updated_at"] = time.time()
    key = metrics_key(stream_key, consumer)
    client.set(key, orjson.dumps(snapshot), ex=86400)


def read_published(client: redis.Redis, stream_key: str) -> list[dict]:
    """Snapshots of every exporter of this stream, newest first, each with ``alive``."""
    found = []
    prefix = f"{stream_key}:exporter:"
    for key in client.scan_iter(match=f"{prefix}*", count=100):
        raw = client.get(key)
        if raw:
            data = _snapshot(raw)
            data["consumer"] = key.decode("utf-8", "backslashreplace")[len(prefix):]
            data["alive"] = is_alive(data)
            found.append(data)
    return sorted(found, key=lambda d: d.get("updated_at") or 0, reverse=True)


def _snapshot(raw: bytes) -> dict:
    """A published snapshot; one that is not ours (another tool wrote the key) is shown as such, not skipped."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return {"last_error": "its published counters are not an exporter's (the key holds something else)"}
    for name, default in _NUMBERS.items():  # shown as numbers: a wrong type must not end status
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            data[name] = default
    if not isinstance(data.get("last_error"), str | None):
        data["last_error"] = str(data["last_error"])
    return data


# The snapshot's numeric fields and what to show for one of another type.
_NUMBERS = {f.name: f.default for f in fields(ExportMetrics) if f.type in ("int", "float", "float | None")}
_NUMBERS.update(started_at=None, updated_at=None)


def is_alive(snapshot: dict | None, now: float | None = None) -> bool:
    """Whether the exporter that published ``snapshot`` is running: heard from lately, not stopped."""
    if not snapshot or snapshot.get("stopped_at"):
        return False
    return (now or time.time()) - float(snapshot.get("updated_at") or 0) < LIVENESS
