"""The RetentionManager: applies the retention policy tier by tier and reports what it did, as data.

One manager at a time: a run holds a lease in Redis (``<stream>:retention:lease``), so two exporters
applying the policy on their schedules never trim at once; the second one reports that it skipped.
Time is a parameter (``now``), so tests move the clock instead of waiting for it.

The tiers: Redis (the stream trimmed behind the archive group, dead letters, job keys), the warm tier
(reconciled drops of days past the window) and the cold tier (expiry of hours past s3_archive_ttl or
data_retention_max_days, S3 lifecycle rules, compaction of closed hours).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import orjson
import redis

from exporter.config import Config
from exporter.errors import QueryError
from exporter.maintenance import cold_tier, compaction, costs, hot, lifecycle, warm_tier
from exporter.maintenance.lease import LeaseHeld, lease
from exporter.redact import redact
from exporter.runtime import clickhouse_url, cold_url
from exporter.tiers import federation
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore

TIERS = ("redis", "warm", "cold")
LEASE_SECONDS = 600.0  # longest a run may take; a crashed holder blocks the next run this long at most
COMPACTION_BUDGET = LEASE_SECONDS / 2  # a run stops starting hours after this; the next goes on
LAST_RUN_KEPT = 30 * 86400  # seconds the last run's report stays readable


@dataclass
class TierReport:
    """What one tier's retention did (or, in a dry run, would do), as data for the CLI, status and the TUI."""

    tier: str
    dry_run: bool
    removed: int = 0  # stream entries, rows or files, per tier
    bytes_removed: int | None = None  # None where the tier cannot tell (or a dry run)
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    down: str | None = None  # the tier's part failed (unreachable, or erring): why, and the tier was not done


@dataclass
class RetentionRun:
    """One pass over the tiers: each tier's report, or why the pass did not run."""

    started_at: float
    dry_run: bool
    tiers: list[TierReport] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class RetentionManager:
    def __init__(self, config: Config, client: redis.Redis, now: Callable[[], float] = time.time,
                 warm: WarmStore | None = None, warm_unavailable: str = "the warm store is not open here",
                 cold: ParquetStore | None = None, down: dict[str, str] | None = None) -> None:
        self.config = config
        self.client = client
        self.now = now
        self.warm = warm
        self.warm_unavailable = warm_unavailable
        self.cold = cold
        self.down = dict(down or {})  # tier -> why its store could not be opened: reported down, never asked
        self.stream_key = config.pipeline.stream_key
        self.lease_key = f"{self.stream_key}:retention:lease"
        self.last_key = f"{self.stream_key}:retention:last"

    def apply(self, tiers: tuple[str, ...] = TIERS, dry_run: bool = False) -> RetentionRun:
        """Apply the policy to ``tiers`` (a dry run changes nothing and needs no lease)."""
        run = RetentionRun(self.now(), dry_run)
        if dry_run:
            run.tiers = [self._tier(name, dry_run) for name in tiers]
            return run
        try:
            with lease(self.client, self.lease_key, LEASE_SECONDS):
                run.tiers = [self._tier(name, dry_run) for name in tiers]
        except LeaseHeld as held:
            run.skipped = str(held)
            return run
        self.client.set(self.last_key, orjson.dumps(run.as_dict()), ex=LAST_RUN_KEPT)
        return run

    def last_run(self) -> dict | None:
        """The last run that applied the policy (any process's), for status and the dashboard."""
        raw = self.client.get(self.last_key)
        return orjson.loads(raw) if raw else None

    def _tier(self, name: str, dry_run: bool, down: str | None = None) -> TierReport:
        """One tier's pass; a part that fails (down, or unable to reconcile) is that tier's refusal, and
        the other tiers still run. A part ``down`` (found so a moment ago) is not asked again: each
        call to a dead S3 endpoint takes its client's retries, seconds each."""
        down = down or self.down.get(name)
        if down is not None:
            return TierReport(name, dry_run, refused=[down], down=down)
        started = time.perf_counter()
        try:
            report = {"redis": self._redis, "warm": self._warm, "cold": self._cold}[name](dry_run)
        except Exception as exc:
            reason = self._failure(name, exc)
            report = TierReport(name, dry_run, refused=[reason], down=reason)
        report.seconds = time.perf_counter() - started
        return report

    def _failure(self, name: str, exc: Exception) -> str:
        """One sentence for a tier whose part failed; the cold store's names its endpoint."""
        if name == "cold" and self.cold is not None:
            return cold_tier.outage(self.cold.url, self.config.cold.endpoint_url, exc)
        return f"failed: {_one_line(exc)}"

    def _plan(self, down: dict[str, str]) -> RetentionRun:
        """What the next run would do (a dry run), without asking again the parts ``down`` names."""
        run = RetentionRun(self.now(), True)
        run.tiers = [self._tier(name, True, down.get(name)) for name in TIERS]
        return run

    def _redis(self, dry_run: bool) -> TierReport:
        policy, pipeline = self.config.retention, self.config.pipeline
        report = TierReport("redis", dry_run)
        now_ms = int(self.now() * 1000)
        groups = [pipeline.consumer_group, *policy.protect_groups]
        point = hot.trim_point(self.client, self.stream_key, groups, now_ms - int(policy.redis_ttl * 1000))
        if point.refused:
            report.refused.append(point.refused)
        elif point.minid is not None:
            removed, freed = hot.trim_stream(self.client, self.stream_key, point.minid, dry_run)
            report.removed += removed
            report.bytes_removed = freed
            report.details["stream"] = {"removed": removed, "trimmed_to": hot.format_id(point.minid),
                                        "decided_by": point.decided_by}
        dlq_key = f"{self.stream_key}:dlq"
        removed, freed = hot.trim_dead_letters(self.client, dlq_key, now_ms - int(policy.dlq_ttl * 1000),
                                               policy.dlq_max_length, dry_run)
        report.removed += removed
        if freed is not None:
            report.bytes_removed = (report.bytes_removed or 0) + freed
        report.details["dead_letters"] = {"removed": removed}
        if policy.job_key_pattern:
            given = hot.expire_job_keys(self.client, policy.job_key_pattern, policy.redis_ttl, self.stream_key,
                                        dry_run)
            report.details["job_keys"] = {"pattern": policy.job_key_pattern, "ttl_given": given}
        return report

    def _warm(self, dry_run: bool) -> TierReport:
        """Drop each day before the window whose rows the cold tier is proven to hold."""
        report = TierReport("warm", dry_run)
        if self.warm is None:
            report.refused.append(self.warm_unavailable)
            return report
        today = datetime.fromtimestamp(self.now(), UTC).date()
        first_kept = today - timedelta(days=self.warm.ttl_days - 1)
        dropped, freed = [], 0
        past = [(date.fromisoformat(p), rows, size) for p, rows, size in self.warm.days()
                if date.fromisoformat(p) < first_kept]
        sizes = {day: (rows, size) for day, rows, size in past}
        url = self.cold.url if self.cold is not None else cold_url(self.config)
        checks = warm_tier.reconcile_days(self.warm.backend, federation.cold_source(self.config.cold, url),
                                          [(day, rows) for day, rows, _ in past])
        checked = set()
        try:
            for check in checks:
                checked.add(check.day)
                if not check.proven:
                    report.refused.append(check.refusal())
                    continue
                if not dry_run:
                    self.warm.drop_day(str(check.day))
                dropped.append(str(check.day))
                report.removed += sizes[check.day][0]
                freed += sizes[check.day][1]
        except QueryError as exc:  # e.g. this engine cannot read the cold tier: keep every day left
            first_left = next((str(d) for d, _, _ in past if d not in checked), "")
            report.refused.append(f"{first_left} and later days: kept, the cold tier could not be read to check "
                                  f"them: {_one_line(exc)}")
        report.bytes_removed = freed
        report.details["days"] = {"removed": dropped, "window_starts": str(first_kept)}
        stats_first = today - timedelta(days=int(self.config.retention.stats_ttl // 86400) - 1)
        if not dry_run:
            report.details["stats"] = self.warm.drop_stats_before(stats_first)
        return report

    def _cold(self, dry_run: bool) -> TierReport:
        """Delete the hours past the cold tier's limit, the shorter of s3_archive_ttl and
        data_retention_max_days."""
        report = TierReport("cold", dry_run)
        if self.cold is None:
            report.refused.append("the cold store is not open here")
            return report
        policy = self.config.retention
        keep = min(policy.s3_archive_ttl, policy.data_retention_max_days * 86400.0)
        before = datetime.fromtimestamp(self.now() - keep, UTC)
        found = cold_tier.expired(self.cold, before)
        if not dry_run:
            cold_tier.delete(self.cold, found)
        report.removed = sum(e.files for e in found)
        report.bytes_removed = sum(e.size for e in found)
        report.details["hours"] = {"before": before.isoformat(timespec="seconds"),
                                   "directories": [e.path.removeprefix(self.cold.jobs_root + "/") for e in found]}
        if self.cold.url.startswith("s3://"):
            report.details["lifecycle"] = lifecycle.ensure_rules(self.cold, policy, dry_run)
        watermark = hot.archived_below(self.client, self.stream_key, self.config.pipeline.consumer_group)
        compacted = compaction.compact(self.cold, watermark, self.now(), policy.compact_after,
                                       policy.compact_target_size, self.config.query.max_execution_time, dry_run,
                                       budget=COMPACTION_BUDGET)
        report.refused += compacted.refused
        report.details["compaction"] = asdict(compacted)
        return report

    def _lifecycle(self) -> dict | None:
        """The bucket's rule for the cold tier as it is now, and as the policy wants it (S3 only); when
        the bucket does not say, ``unavailable`` says why."""
        if self.cold is None or not self.cold.url.startswith("s3://"):
            return None
        wanted = lifecycle.wanted_rule(self.cold, self.config.retention)
        try:
            rules = lifecycle.current_rules(self.cold)
        except Exception as exc:
            return {"current": None, "wanted": wanted, "unavailable": self._failure("cold", exc)}
        current = next((r for r in rules if r.get("ID") == lifecycle.RULE_ID), None)
        return {"current": current, "wanted": wanted, "unavailable": None}

    def _costs(self, holds: dict, warm: dict, cold: dict) -> dict:
        return costs.cost_view(self.config.costs, holds["stream"]["bytes"] or 0, holds["stream"]["entries"],
                               warm["bytes"], warm["rows"], cold["bytes"], cold["records"])

    def _warm_state(self) -> dict:
        """What the warm tier holds: days, rows, bytes and the days' span; ``down`` with the reason
        (figures None, not zero) when its store fails to answer."""
        state = {"days": 0, "rows": 0, "bytes": 0, "oldest_day": None, "newest_day": None,
                 "unavailable": None if self.warm is not None else self.warm_unavailable, "down": False}
        if "warm" in self.down:
            return {**dict.fromkeys(state, None), "unavailable": self.down["warm"], "down": True}
        if self.warm is None:
            return state
        try:
            days = self.warm.days()
        except Exception as exc:
            reason = f"the warm store at {redact(clickhouse_url(self.config))} cannot be read: {_one_line(exc)}"
            return {**dict.fromkeys(state, None), "unavailable": reason, "down": True}
        return {**state, "days": len(days), "rows": sum(d[1] for d in days), "bytes": sum(d[2] for d in days),
                "oldest_day": days[0][0] if days else None, "newest_day": days[-1][0] if days else None}

    def _cold_state(self) -> dict:
        """What the cold tier holds: live files, the hours they fill, records, bytes and time span;
        ``down`` with the reason (figures None, not zero) when its store fails to answer."""
        state = {"files": 0, "records": 0, "bytes": 0, "oldest": None, "newest": None, "hours": 0,
                 "unavailable": None, "down": False}
        if "cold" in self.down:
            return {**dict.fromkeys(state, None), "unavailable": self.down["cold"], "down": True}
        if self.cold is None:
            return {**state, "unavailable": "the cold store is not open here"}
        try:
            files = self.cold.files()
            stats = self.cold.stats(files)
        except Exception as exc:
            return {**dict.fromkeys(state, None), "unavailable": self._failure("cold", exc), "down": True}
        hours = {info["name"].rsplit("/", 1)[0] for info in files}
        return {**state, "files": len(files), "records": stats.records, "bytes": stats.bytes,
                "oldest": stats.oldest.isoformat() if stats.oldest else None,
                "newest": stats.newest.isoformat() if stats.newest else None, "hours": len(hours)}

    def show(self) -> dict:
        """The policy, what the hot tier holds, and what the next run would do. A tier whose store is
        down is shown as down (``down`` lists them, as status does) and the rest is still shown; Redis
        failing is the caller's (there is nothing to show without it)."""
        policy = self.config.retention
        dlq_key = f"{self.stream_key}:dlq"
        memory = hot.redis_memory(self.client)
        holds = {
            "stream": _stream_state(self.client, self.stream_key),
            "dead_letters": _stream_state(self.client, dlq_key),
            "memory": memory,
        }
        warm, cold = self._warm_state(), self._cold_state()
        down = {name: state["unavailable"] for name, state in (("warm", warm), ("cold", cold)) if state["down"]}
        return {
            "policy": {"redis_ttl": policy.redis_ttl, "dlq_ttl": policy.dlq_ttl,
                       "clickhouse_ttl": policy.clickhouse_ttl, "dlq_max_length": policy.dlq_max_length,
                       "protect_groups": list(policy.protect_groups), "job_key_pattern": policy.job_key_pattern,
                       "interval": policy.interval, "s3_archive_ttl": min(policy.s3_archive_ttl,
                                                                         policy.data_retention_max_days * 86400.0),
                       "compact_after": policy.compact_after, "compact_target_size": policy.compact_target_size},
            "redis": holds,
            "warm": warm,
            "cold": cold,
            "costs": self._costs(holds, warm, cold),
            "lifecycle": None if "cold" in down else self._lifecycle(),
            "last_run": self.last_run(),
            "next_run": self._plan(down).as_dict(),
            "down": list(down),
        }


def _stream_state(client: redis.Redis, key: str) -> dict:
    """Entries, oldest and newest entry time (ms, from their ids), and memory used."""
    length = client.xlen(key)
    if not length:
        return {"entries": 0, "oldest_ms": None, "newest_ms": None, "bytes": hot.memory_usage(client, key) or 0}
    oldest = client.xrange(key, "-", "+", count=1)[0][0]
    newest = client.xrevrange(key, "+", "-", count=1)[0][0]
    return {"entries": length, "oldest_ms": hot.parse_id(oldest)[0], "newest_ms": hot.parse_id(newest)[0],
            "bytes": hot.memory_usage(client, key)}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return redact(text) if text else type(exc).__name__
