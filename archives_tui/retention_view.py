"""`archives retention show` and `apply` as text: the policy, what the hot tier holds, and each tier's
report (what was removed, what was refused and why)."""

from __future__ import annotations

from datetime import UTC, datetime

from archives_tui.render import human_size
from exporter.units import format_duration


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else "-"


def _iso(text: str | None) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC") if text else "-"


def _share(part: int | None, whole: int) -> str:
    return f" ({100 * part / whole:.0f}% of Redis)" if part and whole else ""


def retention_text(shown: dict) -> str:
    policy, held = shown["policy"], shown["redis"]
    memory = held["memory"]
    limit = human_size(memory["maxmemory"]) if memory["maxmemory"] else "no maxmemory"
    lines = [
        f"policy: Redis keeps {format_duration(policy['redis_ttl'])} of the stream (never an entry not yet "
        f"archived); dead letters {format_duration(policy['dlq_ttl'])}, at most {policy['dlq_max_length']:,}; "
        f"applied every {format_duration(policy['interval'])} by a running exporter",
        f"  protected groups: {', '.join(policy['protect_groups']) or 'none'}; "
        f"job keys given the TTL: {policy['job_key_pattern'] or 'none'}",
        f"redis: {human_size(memory['used'])} used of {limit}",
    ]
    for name, key in (("stream", "stream"), ("dead letters", "dead_letters")):
        state = held[key]
        lines.append(f"  {name:<13} {state['entries']:,} entries, {human_size(state['bytes'])}"
                     f"{_share(state['bytes'], memory['used'])}; {_when(state['oldest_ms'])} to "
                     f"{_when(state['newest_ms'])}")
    warm = shown["warm"]
    if warm.get("down"):
        lines.append(f"warm: keeps {format_duration(policy['clickhouse_ttl'])}; DOWN: {warm['unavailable']}")
    elif warm["unavailable"]:
        lines.append(f"warm: keeps {format_duration(policy['clickhouse_ttl'])}; {warm['unavailable']}")
    else:
        lines.append(f"warm: keeps {format_duration(policy['clickhouse_ttl'])} (days leave once the cold tier is "
                     f"proven to hold them); {warm['rows']:,} rows in {warm['days']} days, "
                     f"{human_size(warm['bytes'])}; {warm['oldest_day'] or '-'} to {warm['newest_day'] or '-'}")
    cold = shown["cold"]
    if cold.get("down"):
        lines.append(f"cold: DOWN: {cold['unavailable']}")
    elif cold["unavailable"]:
        lines.append(f"cold: {cold['unavailable']}")
    else:
        lines.append(f"cold: keeps {format_duration(policy['s3_archive_ttl'])}, compacts hours "
                     f"{format_duration(policy['compact_after'])} after they end; {cold['records']:,} records in "
                     f"{cold['files']:,} files over {cold['hours']:,} hours, {human_size(cold['bytes'])}; "
                     f"{_iso(cold['oldest'])} to {_iso(cold['newest'])}")
    if shown.get("lifecycle"):
        lines.append(_lifecycle_line(shown["lifecycle"]))
    lines.append(_cost_line(shown["costs"]))
    last = shown.get("last_run")
    if last:
        when = datetime.fromtimestamp(last["started_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"last run ({when}): " + run_text(last))
    lines.append("next run: " + run_text(shown["next_run"]).removeprefix("dry run: "))
    return "\n".join(lines)


def _lifecycle_line(rules: dict) -> str:
    def text(rule: dict | None) -> str:
        if not rule:
            return "none"
        moves = "".join(f"to {t['StorageClass']} after {t['Days']} days, " for t in rule.get("Transitions", []))
        return f"{moves}deleted after {rule['Expiration']['Days']} days"

    if rules.get("unavailable"):
        return f"s3 lifecycle: not known, {rules['unavailable']} (the next run sets: {text(rules['wanted'])})"
    now, wanted = text(rules["current"]), text(rules["wanted"])
    return f"s3 lifecycle: {now}" + ("" if now == wanted else f" (the next run sets: {wanted})")


def _cost_line(view: dict) -> str:
    tiers = view["tiers"]
    held = "; ".join(f"{name} unknown (down)" if t["bytes"] is None else
                     f"{name} {human_size(t['bytes'])} ${t['usd_per_month']:,.4f}"
                     + (f" ({t['bytes_per_record']:,.0f} B/record)" if t["bytes_per_record"] else "")
                     for name, t in tiers.items())
    line = f"cost a month: {held}"
    if view["in_redis_usd_per_month"]:
        line += (f"\n  the archive (warm + cold) ${view['archive_usd_per_month']:,.4f} a month is "
                 f"{100 * view['share_of_redis']:.0f}% of keeping its {tiers['cold']['records']:,} records in "
                 f"Redis (${view['in_redis_usd_per_month']:,.4f}; the target is under 50%)")
    return line


def run_text(run: dict) -> str:
    """A retention run (``RetentionRun.as_dict()``), a line per tier: what was (or would be) removed,
    and anything refused."""
    if run["skipped"]:
        return f"skipped: {run['skipped']}"
    verb = "would remove" if run["dry_run"] else "removed"
    lines = []
    for report in run["tiers"]:
        details = report["details"]
        parts = [f"{details[k]['removed']:,} {name}" for k, name in (("stream", "stream entries"),
                                                                    ("dead_letters", "dead letters")) if k in details]
        if "stream" in details:
            to = int(details["stream"]["trimmed_to"].partition("-")[0])
            parts[0] += f" (those before {_when(to)}, bounded by {details['stream']['decided_by']})"
        if "job_keys" in details:
            parts.append(f"{details['job_keys']['ttl_given']:,} job keys given a TTL")
        if "hours" in details:
            parts.append(f"{report['removed']:,} files in {len(details['hours']['directories'])} directories "
                         f"of hours before {details['hours']['before']}")
        if "days" in details:
            days = details["days"]["removed"]
            span = f" ({days[0]} to {days[-1]})" if days else ""
            parts.append(f"{report['removed']:,} rows in {len(days)} days before {details['days']['window_starts']}"
                         f"{span}")
        freed = f", {human_size(report['bytes_removed'])} freed" if report["bytes_removed"] else ""
        lines.append(f"{report['tier']}: {verb} {'; '.join(parts) or 'nothing'}{freed} "
                     f"in {report['seconds']:.2f}s")
        if "compaction" in details:
            lines.append("  " + _compaction_text(details["compaction"], run["dry_run"]))
        lines += [f"  refused: {reason}" for reason in report["refused"]]
    return ("dry run: " if run["dry_run"] else "") + "\n".join(lines)


def _compaction_text(done: dict, dry_run: bool) -> str:
    """What compaction did (or would do) to the cold tier's closed hours."""
    if dry_run:
        text = (f"compaction would rewrite {done['hours']:,} hours ({done['files_read']:,} files, "
                f"{human_size(done['bytes_read'])}) and delete {done['files_deleted']:,} superseded files")
    else:
        rate = f", {done['rows'] / done['seconds']:,.0f} rows/s" if done["rows"] and done["seconds"] else ""
        text = (f"compaction rewrote {done['hours']:,} hours: {done['files_read']:,} files "
                f"({human_size(done['bytes_read'])}) into {done['files_written']:,} "
                f"({human_size(done['bytes_written'])}), {done['rows']:,} rows{rate}; deleted "
                f"{done['files_deleted']:,} superseded files")
    if done.get("files_waiting"):
        text += f" ({done['files_waiting']:,} more are deleted by a later run, once no query can be reading them)"
    if done["hours_left"]:
        text += f"; {done['hours_left']:,} hours left for the next run"
    return text
