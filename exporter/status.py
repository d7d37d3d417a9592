"""What `archives status` reports: the stream, each tier, and the exporters' last words."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime

import redis

from exporter.config import Config
from exporter.errors import ArchivesError, StoreBusyError
from exporter.metrics import read_published
from exporter.storage.cold import ParquetStore
from exporter.storage.warm import TierStats, WarmStore


def stream_status(client: redis.Redis, config: Config) -> dict:
    p = config.pipeline
    key, group = p.stream_key, p.consumer_group
    info: dict = {"stream_key": key, "length": client.xlen(key), "dlq_length": client.xlen(f"{key}:dlq")}
    groups = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
              for g in (client.xinfo_groups(key) if client.exists(key) else [])}
    found = groups.get(group)
    if found is None:
        info.update(consumer_group=None, pending=0, lag=info["length"], lag_seconds=None)
        return info
    last = found["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else last
    following = client.xrange(key, min=f"({last}", count=1) if last != "0-0" else client.xrange(key, count=1)
    lag_seconds = None
    if following:
        first_id = following[0][0].decode() if isinstance(following[0][0], bytes) else following[0][0]
        lag_seconds = max(0.0, time.time() - int(first_id.split("-")[0]) / 1000)
    info.update(
        consumer_group=group,
        pending=int(found["pending"]),
        lag=found.get("lag"),  # Redis 7+; older servers do not count undelivered entries
        lag_seconds=round(lag_seconds, 1) if lag_seconds is not None else 0.0,
        last_delivered_id=last,
    )
    return info


def tier_status(open_tier) -> dict:
    try:
        stats: TierStats = open_tier()
    except StoreBusyError as exc:
        return {"available": False, "reason": str(exc)}
    except ArchivesError as exc:
        return {"available": False, "reason": str(exc)}
    data = asdict(stats)
    for key in ("oldest", "newest"):
        value = data[key]
        data[key] = value.isoformat() if isinstance(value, datetime) else value
    data["available"] = True
    return data


def gather(config: Config, client: redis.Redis, warm: WarmStore | None, cold: ParquetStore,
           warm_error: str | None = None) -> dict:
    """Everything status shows, as plain data (the JSON output is this dict)."""
    exporters = read_published(client, config.pipeline.stream_key)
    if warm is not None:
        warm_info = tier_status(warm.stats)
        warm_info["backend"] = warm.backend.description
    else:
        warm_info = {"available": False, "reason": warm_error or "not opened"}
    cold_info = tier_status(cold.stats)
    cold_info["url"] = cold.url
    last_error = next((e.get("last_error") for e in exporters if e.get("last_error")), None)
    return {
        "stream": stream_status(client, config),
        "warm": warm_info,
        "cold": cold_info,
        "exporters": [
            {k: e.get(k) for k in ("consumer", "archived", "dead_lettered", "batches", "read", "updated_at",
                                   "last_error", "last_error_at", "batch_size_target")}
            for e in exporters
        ],
        "last_error": last_error,
    }
