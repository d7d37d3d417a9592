"""Retention of the hot tier: the completions stream, its dead letters and per-job keys in Redis.

The stream is trimmed to ``retention.redis_ttl`` with XTRIM MINID, never past an entry that is not
archived. The trim point is the earliest of

* the window's start (now - redis_ttl, as a stream id: an id is the millisecond of its XADD),
* the first entry pending in the archive group (delivered, not yet acknowledged), and in each of
  ``retention.protect_groups``,
* the first entry after each of those groups' last-delivered id (not read yet).

A missing archive group (destroyed, or Redis flushed and re-filled) proves nothing archived: the stream
is then not trimmed at all, and the report says why. The dead-letter stream keeps ``dlq_ttl`` and at
most ``dlq_max_length`` entries; it has no group (people read it), so age and length are its only rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

StreamId = tuple[int, int]


def parse_id(text: str | bytes) -> StreamId:
    text = text.decode() if isinstance(text, bytes) else text
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


@dataclass(frozen=True)
class TrimPoint:
    """Where the stream may be trimmed to (MINID, exclusive), and what decided it; or why not at all."""

    minid: StreamId | None
    decided_by: str
    refused: str | None = None


def trim_point(client: redis.Redis, stream_key: str, groups: list[str], window_start_ms: int) -> TrimPoint:
    """The latest MINID that removes nothing the given groups have not acknowledged (see the module)."""
    try:
        found = {_text(g["name"]): g for g in client.xinfo_groups(stream_key)}
    except redis.ResponseError:  # no such stream: nothing to trim
        return TrimPoint(None, "the stream does not exist")
    missing = [g for g in groups if g not in found]
    if missing:
        return TrimPoint(None, "", f"consumer group {missing[0]!r} does not exist, so no entry can be proven "
                                   "archived; the stream is left whole until the exporter re-creates it")
    point, decided_by = (window_start_ms, 0), "the window (retention.redis_ttl)"
    for name in groups:
        last = parse_id(found[name]["last-delivered-id"])
        unread = (last[0], last[1] + 1)
        if unread < point:
            point, decided_by = unread, f"entries group {name!r} has not read yet"
        pending = client.xpending(stream_key, name)
        if pending and pending.get("pending") and pending.get("min"):
            first = parse_id(pending["min"])
            if first < point:
                point, decided_by = first, f"entries pending (unacknowledged) in group {name!r}"
    return TrimPoint(point, decided_by)


def archived_below(client: redis.Redis, stream_key: str, group: str) -> StreamId | None:
    """The first entry ``group`` has not acknowledged (pending, or not read yet): every entry below it is
    archived. None when the group (or stream) does not exist, which proves nothing archived."""
    point = trim_point(client, stream_key, [group], 2**63)
    return None if point.refused else point.minid


def count_before(client: redis.Redis, key: str, minid: StreamId, page: int = 10_000) -> int:
    """How many entries of ``key`` have an id below ``minid`` (what XTRIM MINID would remove), read a
    page of ids at a time."""
    if minid <= (0, 0):
        return 0
    start, end, total = "-", f"({format_id(minid)}", 0
    while True:
        entries = client.xrange(key, start, end, count=page)
        total += len(entries)
        if len(entries) < page:
            return total
        start = f"({_text(entries[-1][0])}"


def trim_stream(client: redis.Redis, key: str, minid: StreamId, dry_run: bool) -> tuple[int, int | None]:
    """Remove the entries below ``minid``: how many, and about how many bytes of memory that freed."""
    if dry_run:
        return count_before(client, key, minid), None
    before = memory_usage(client, key)
    removed = client.xtrim(key, minid=format_id(minid), approximate=False)
    after = memory_usage(client, key)
    return int(removed), (before - after) if before is not None and after is not None else None


def trim_dead_letters(client: redis.Redis, key: str, window_start_ms: int, max_length: int,
                      dry_run: bool) -> tuple[int, int | None]:
    """Age first (dlq_ttl), then length (dlq_max_length); how many entries that removes."""
    if not client.exists(key):
        return 0, None
    by_age = count_before(client, key, (window_start_ms, 0))
    by_length = max(0, client.xlen(key) - by_age - max_length)
    if dry_run:
        return by_age + by_length, None
    before = memory_usage(client, key)
    removed = client.xtrim(key, minid=f"{window_start_ms}-0", approximate=False)
    removed += client.xtrim(key, maxlen=max_length, approximate=False)
    after = memory_usage(client, key)
    return int(removed), (before - after) if before is not None and after is not None else None


def expire_job_keys(client: redis.Redis, pattern: str, seconds: float, protected_prefix: str,
                    dry_run: bool) -> int:
    """Give every key matching ``pattern`` that has no TTL one of ``seconds``; never a stream, nor a key
    of the archive's own (under ``protected_prefix``). Returns how many keys got (or would get) one."""
    given = 0
    for key in client.scan_iter(match=pattern, count=1000):
        name = _text(key)
        if name.startswith(protected_prefix) or client.ttl(key) != -1 or _text(client.type(key)) == "stream":
            continue
        if not dry_run:
            client.expire(key, max(1, int(seconds)))
        given += 1
    return given


def memory_usage(client: redis.Redis, key: str) -> int | None:
    try:
        used = client.memory_usage(key)
    except redis.ResponseError:
        return None
    return int(used) if used is not None else 0


def redis_memory(client: redis.Redis) -> dict:
    """Redis memory in use against its limit (0 = none), for status and retention show."""
    info = client.info("memory")
    return {"used": int(info.get("used_memory", 0)), "maxmemory": int(info.get("maxmemory", 0))}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
