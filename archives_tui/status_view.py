"""`archives status` as text: one line per part, DOWN or BUSY with the reason, exporters with their
counters, and the last error with when it happened.

Names, reasons and errors come from Redis (an exporter's heartbeat, a part's error quoting the data):
each passes ``visible_line``, so an escape sequence in a consumer name or an error shows as text and a
newline in one cannot start a line of its own."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from archives_tui.render import human_size, visible_line


def _when(timestamp: float | None, now: float | None = None) -> str:
    """``2026-11-28 10:00:00 UTC (5m ago)``."""
    if not timestamp:
        return "never"
    ago = max(0, int((now or time.time()) - timestamp))
    span = f"{ago}s" if ago < 120 else f"{ago // 60}m" if ago < 7200 else f"{ago // 3600}h" if ago < 172800 \
        else f"{ago // 86400}d"
    return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC ({span} ago)"


def elapsed(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3.5h``; ``?`` when unknown (the CLI's status and the dashboard's cards)."""
    if seconds is None:
        return "?"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m" if seconds < 7200 \
        else f"{seconds / 3600:.1f}h"


def _shown(value) -> str:
    """A value from Redis or a part's error, as one line of text."""
    return visible_line(str(value))


def _tier_line(name: str, tier: dict) -> str:
    where = visible_line(str(tier.get("where") or ""))
    if tier["state"] != "up":
        return f"{name:<6} {where}\n       {tier['state'].upper()}: {_shown(tier.get('reason'))}"
    span = f"{_shown(tier['oldest'])} .. {_shown(tier['newest'])}" if tier.get("oldest") else "empty"
    extra = f", {_shown(tier['detail'])}" if tier.get("detail") else ""
    return f"{name:<6} {where}\n       {tier['records']:,} records, {human_size(tier['bytes'])}{extra}; {span}"


def _stream_line(s: dict) -> str:
    if s["state"] != "up":
        return f"stream {_shown(s['stream_key'])}\n       DOWN: {_shown(s.get('reason'))}"
    if s.get("consumer_group") is None:
        backlog = f"no consumer group yet, {s['unarchived']:,} entries not archived"
    else:
        undelivered = f"{s['undelivered']:,}{'+' if s.get('undelivered_capped') else ''}"
        oldest = "" if s.get("oldest_pending_seconds") is None else \
            f" (oldest {elapsed(s['oldest_pending_seconds'])})"
        backlog = f"{s['pending']:,} pending{oldest}, {undelivered} undelivered"
    line = (f"stream {_shown(s['stream_key'])}: {s['length']:,} entries; {backlog}; "
            f"lag {elapsed(s.get('lag_seconds'))}; DLQ {s['dlq_length']:,}")
    memory = s.get("memory")
    if memory:
        limit = f" of {human_size(memory['maxmemory'])}" if memory["maxmemory"] else " (no maxmemory)"
        shares = ", ".join(f"{name} {human_size(s[key])}" for name, key in (("stream", "stream_bytes"),
                                                                           ("DLQ", "dlq_bytes")) if s.get(key))
        line += f"\n       Redis memory {human_size(memory['used'])}{limit}{f'; {shares}' if shares else ''}"
    return line


def _retention_line(retention: dict | None) -> str:
    last = (retention or {}).get("last_run")
    if not last:
        return "retention: not applied yet (a running exporter applies it every retention.interval)"
    parts = [f"{t['tier']} removed {t['removed']:,}" + "".join(f" (refused: {_shown(r)})" for r in t["refused"])
             for t in last["tiers"]]
    return f"retention: last run {_when(last['started_at'])}: {'; '.join(parts)}"


def _exporter_line(e: dict) -> str:
    state = "running" if e.get("alive") else "stopped" if e.get("stopped_at") else "silent"
    line = (f"exporter {_shown(e['consumer'])} ({state}, last seen {_when(e.get('updated_at'))}): archived "
            f"{e.get('archived') or 0:,} (warm {e.get('warm_archived') or 0:,}")
    if e.get("warm_skipped"):
        line += f"; {e['warm_skipped']:,} older than the warm window, cold only"
    line += f"), dead-lettered {e.get('dead_lettered') or 0:,}"
    if e.get("claimed"):
        line += f", took over {e['claimed']:,} entries of gone exporters"
    if e.get("groups_recreated"):
        line += (f"; re-created the lost consumer group {e['groups_recreated']} time(s), last "
                 f"{_when(e.get('group_recreated_at'))}")
    if e.get("redis_rewinds"):
        line += (f"; Redis went back in time {e['redis_rewinds']} time(s), last {_when(e.get('redis_rewound_at'))} "
                 f"(an older snapshot or a lagging replica): {e.get('delivered_again') or 0:,} entries it delivered "
                 "again were stored or dead-lettered before, acknowledged and not written twice")
    return line


def status_text(info: dict) -> str:
    lines = [_stream_line(info["stream"]), _tier_line("warm", info["warm"]), _tier_line("cold", info["cold"])]
    if info["stream"]["state"] == "up":
        lines.append(_retention_line(info.get("retention")))
    lines += [_exporter_line(e) for e in info["exporters"]]
    if info["last_error"]:
        lines.append(f"last error {_when(info.get('last_error_at'))}: {_shown(info['last_error'])}")
    else:
        lines.append("last error: none")
    if info["down"]:
        lines.append(f"down: {', '.join(info['down'])}")
    return "\n".join(lines)
