"""What `archives status` reports: the stream, each tier, and the exporters' last words.

Every part is asked on its own, so one that is down is reported as down (state ``down`` and a
one-sentence ``reason``) while the others are still reported in full. An embedded warm store owned by
a running exporter is read through that exporter's socket; one owned by a process that answers no
queries (an earlier version) is ``busy``, which is normal, not an outage.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime

import redis

from exporter import runtime
from exporter.batch import as_text, id_order
from exporter.config import Config
from exporter.errors import ArchivesError, StoreBusyError
from exporter.maintenance import hot
from exporter.maintenance.retention import RetentionManager
from exporter.metrics import read_published
from exporter.redact import redact
from exporter.stream import mark_key
from exporter.tiers.warm import WarmStore

EXPORTER_FIELDS = ("consumer", "alive", "archived", "warm_archived", "warm_skipped", "dead_lettered", "batches",
                   "claimed", "groups_recreated", "group_recreated_at", "redis_rewinds", "redis_rewound_at",
                   "delivered_again", "read", "updated_at", "last_batch_at",
                   "last_error", "last_error_at", "batch_size_target", "stopped_at")


# Counts undelivered entries where Redis (before 7) does not: server-side, so no entry crosses the wire,
# and capped, so a large backlog never blocks Redis for long (the reply is then the cap).
_COUNT_AFTER = """
local n, start = 0, ARGV[1]
while n < tonumber(ARGV[2]) do
  local found = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
  if #found == 0 then break end
  n = n + #found
  start = '(' .. found[#found][1]
end
return n
"""
UNDELIVERED_CAP = 100_000


def _age(entry_id, now: float) -> float:
    """Seconds since the entry was added (its id's milliseconds)."""
    return round(max(0.0, now - id_order(entry_id)[0] / 1000), 1)


def stream_status(client: redis.Redis, config: Config) -> dict:
    """Length, DLQ, and what is not archived yet: pending (delivered, unacknowledged) and undelivered.

    ``lag_seconds`` is the age of the oldest entry not yet archived, pending or undelivered.
    """
    p = config.pipeline
    key, group = p.stream_key, p.consumer_group
    now = time.time()
    info: dict = {"state": "up", "stream_key": key, "length": client.xlen(key),
                  "dlq_length": client.xlen(f"{key}:dlq"), "memory": hot.redis_memory(client),
                  "stream_bytes": hot.memory_usage(client, key), "dlq_bytes": hot.memory_usage(client, f"{key}:dlq")}
    mark = client.get(mark_key(key, group))
    info["archived_through"] = as_text(mark) if mark else None
    groups = {as_text(g["name"]): g for g in (client.xinfo_groups(key) if client.exists(key) else [])}
    found = groups.get(group)
    if found is None:
        first = client.xrange(key, count=1)
        info.update(consumer_group=None, pending=0, undelivered=info["length"], unarchived=info["length"],
                    oldest_pending_seconds=None, lag_seconds=_age(first[0][0], now) if first else 0.0)
        return info
    last = as_text(found["last-delivered-id"])
    following = client.xrange(key, min=f"({last}", count=1) if last != "0-0" else client.xrange(key, count=1)
    undelivered_age = _age(following[0][0], now) if following else None
    summary = client.xpending(key, group)
    pending = int(summary["pending"])
    oldest_pending = _age(summary["min"], now) if pending and summary.get("min") else None
    undelivered = found.get("lag")  # Redis 7+
    if undelivered is None:
        start = f"({last}" if last != "0-0" else "-"
        undelivered = int(client.eval(_COUNT_AFTER, 1, key, start, UNDELIVERED_CAP)) if following else 0
    ages = [a for a in (oldest_pending, undelivered_age) if a is not None]
    info.update(
        consumer_group=group,
        last_delivered_id=last,
        pending=pending,
        oldest_pending_seconds=oldest_pending,
        undelivered=undelivered,
        unarchived=pending + undelivered,
        undelivered_capped=undelivered >= UNDELIVERED_CAP,
        lag_seconds=max(ages) if ages else 0.0,
    )
    return info


def _down(exc: Exception) -> dict:
    state = "busy" if isinstance(exc, StoreBusyError) else "down"
    return {"state": state, "available": False, "reason": runtime.describe(exc)}


def _tier_report(url: str, open_store, close=None) -> dict:
    """Open a tier and read its figures; a failure of either step is the tier's state (busy: owned by
    an exporter; down: unreachable) and reason, and the other parts are still reported."""
    where = redact(url)
    try:
        store = open_store()
    except Exception as exc:
        return {"where": where, **_down(exc)}
    try:
        stats = asdict(store.stats())
    except Exception as exc:
        return {"where": where, **_down(exc)}
    finally:
        if close is not None:
            close(store)
    for key in ("oldest", "newest"):
        stats[key] = stats[key].isoformat() if isinstance(stats[key], datetime) else stats[key]
    return {"where": where, **stats, "state": "up", "available": True}


def _warm_store(config: Config) -> WarmStore:
    """The warm store to read figures from: through the running exporter that owns an embedded one
    (which answers over its socket), else opened here."""
    forwarded = runtime.owners_queries(config)
    if forwarded is not None:
        return WarmStore(forwarded, config.retention.clickhouse_ttl)
    return runtime.open_warm(config)


def collect(config: Config) -> dict:
    """Everything status shows, as plain data (the JSON output is this dict); never raises for an outage."""
    report: dict = {}
    try:
        client = runtime.connect_redis(config)
    except ArchivesError as exc:
        client = None
        report["stream"] = {"stream_key": config.pipeline.stream_key, **_down(exc)}
    exporters: list[dict] = []
    if client is not None:
        try:
            report["stream"] = stream_status(client, config)
            exporters = read_published(client, config.pipeline.stream_key)
            report["retention"] = {"last_run": RetentionManager(config, client).last_run()}
        except redis.RedisError as exc:
            report["stream"] = {"stream_key": config.pipeline.stream_key, **_down(exc)}
        finally:
            client.close()

    report["warm"] = _tier_report(runtime.clickhouse_url(config), lambda: _warm_store(config),
                                  close=lambda warm: warm.close())
    report["cold"] = _tier_report(runtime.cold_url(config), lambda: runtime.open_cold(config))

    report["exporters"] = [{k: e.get(k) for k in EXPORTER_FIELDS} for e in exporters]
    latest = max((e for e in exporters if e.get("last_error")), key=lambda e: e.get("last_error_at") or 0,
                 default=None)
    report["last_error"] = latest["last_error"] if latest else None
    report["last_error_at"] = latest.get("last_error_at") if latest else None
    report["down"] = [part for part in ("stream", "warm", "cold") if report[part]["state"] == "down"]
    return report
