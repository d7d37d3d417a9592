"""Hot-tier retention: the stream keeps its window and never loses an entry that is not archived; the
dead letters keep their own window and length; two managers never trim at once. The clock is injected."""

from __future__ import annotations

import pytest

from exporter.maintenance.hot import parse_id
from exporter.maintenance.lease import lease
from exporter.maintenance.retention import RetentionManager

STREAM, GROUP = "completed_jobs", "archive-exporter"
DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000  # the injected present


def ids(client, key: str = STREAM) -> list[tuple[int, int]]:
    return [parse_id(entry_id) for entry_id, _ in client.xrange(key)]


@pytest.fixture
def stream(redis_client):
    """30 days of entries, one an hour, every one delivered to the archive group and acknowledged."""
    for hour in range(30 * 24):
        redis_client.xadd(STREAM, {"data": "{}"}, id=f"{NOW_MS - 30 * DAY_MS + hour * 3_600_000}-0")
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    delivered = redis_client.xreadgroup(GROUP, "exporter-1", {STREAM: ">"}, count=100_000)
    redis_client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in delivered[0][1]])
    return redis_client


def manager(config, client, now_ms: int = NOW_MS, **retention) -> RetentionManager:
    config = config.replace("retention", redis_ttl=7 * 86400.0, **retention)
    return RetentionManager(config, client, now=lambda: now_ms / 1000)


def test_the_stream_keeps_its_window(config, stream):
    run = manager(config, stream).apply()
    kept = ids(stream)
    assert kept[0][0] >= NOW_MS - 7 * DAY_MS and len(kept) == 7 * 24
    report = run.tiers[0]
    assert report.removed == 23 * 24 and report.details["stream"]["decided_by"].startswith("the window")
    assert report.bytes_removed and report.bytes_removed > 0


def test_an_unacknowledged_entry_is_never_trimmed_whatever_its_age(config, stream):
    old = NOW_MS - 20 * DAY_MS
    stream.xadd(STREAM, {"data": "{}"}, id=f"{NOW_MS + 1}-0")  # one more, delivered but never acknowledged
    stream.xgroup_setid(STREAM, GROUP, id=f"{old}-0")  # replay from 20 days ago: those are pending again
    stream.xreadgroup(GROUP, "exporter-2", {STREAM: ">"}, count=3)
    pending = [parse_id(p["message_id"]) for p in stream.xpending_range(STREAM, GROUP, "-", "+", 10)]
    run = manager(config, stream).apply()
    kept = ids(stream)
    assert set(pending) <= set(kept) and kept[0] == pending[0]
    assert "pending" in run.tiers[0].details["stream"]["decided_by"]
    assert all(entry >= pending[0] for entry in kept)  # everything older than the first pending went


def test_unread_entries_stay(config, stream):
    stream.xgroup_setid(STREAM, GROUP, id=f"{NOW_MS - 25 * DAY_MS}-0")  # the group has read only 5 days
    before = ids(stream)
    manager(config, stream).apply()
    assert ids(stream) == [i for i in before if i > (NOW_MS - 25 * DAY_MS, 0)]


def test_a_protected_group_keeps_what_it_has_not_read(config, stream):
    stream.xgroup_create(STREAM, "analytics", id=f"{NOW_MS - 10 * DAY_MS}-0")
    manager(config, stream, protect_groups=("analytics",)).apply()
    assert ids(stream)[0] == (NOW_MS - 10 * DAY_MS + 3_600_000, 0)


def test_without_the_archive_group_nothing_is_trimmed(config, stream):
    stream.xgroup_destroy(STREAM, GROUP)
    run = manager(config, stream).apply()
    assert len(ids(stream)) == 30 * 24 and run.tiers[0].removed == 0
    assert "does not exist" in run.tiers[0].refused[0]


def test_a_dry_run_counts_and_changes_nothing(config, stream):
    stream.xadd(f"{STREAM}:dlq", {"reason": "bad json"}, id=f"{NOW_MS - 40 * DAY_MS}-0")
    run = manager(config, stream).apply(dry_run=True)
    assert run.tiers[0].removed == 23 * 24 + 1 and len(ids(stream)) == 30 * 24
    assert stream.xlen(f"{STREAM}:dlq") == 1


def test_dead_letters_keep_their_own_window_and_length(config, stream):
    dlq = f"{STREAM}:dlq"
    for day in range(40):
        stream.xadd(dlq, {"reason": "bad json"}, id=f"{NOW_MS - (40 - day) * DAY_MS}-0")
    manager(config, stream, dlq_ttl=30 * 86400.0, dlq_max_length=20).apply()
    kept = ids(stream, dlq)
    assert len(kept) == 20 and kept[-1] == (NOW_MS - DAY_MS, 0)


def test_job_keys_without_a_ttl_get_one(config, stream):
    stream.set("job:1", "x")
    stream.set("job:2", "x", ex=60)
    stream.set("other:1", "x")
    run = manager(config, stream, job_key_pattern="job:*").apply()
    assert run.tiers[0].details["job_keys"]["ttl_given"] == 1
    assert 0 < stream.ttl("job:1") <= 7 * 86400 and stream.ttl("job:2") <= 60 and stream.ttl("other:1") == -1


def test_two_managers_never_trim_at_once(config, stream):
    first = manager(config, stream)
    with lease(stream, first.lease_key, 60):  # another exporter's run in progress
        run = manager(config, stream).apply()
    assert run.skipped and "holds the lease" in run.skipped and len(ids(stream)) == 30 * 24
    assert manager(config, stream).apply().skipped is None  # given back when done


def test_the_cli_shows_and_applies_the_policy(config, stream, tmp_path, capsys):
    import json
    import time

    from archives_tui.cli import main
    from tests.test_outages import write_config

    now_ms = int(time.time() * 1000)
    stream.delete(STREAM)
    for day in range(10):  # ten entries a day apart, the newest an hour old, all archived
        stream.xadd(STREAM, {"data": "{}"}, id=f"{now_ms - (9 - day) * DAY_MS - 3_600_000}-0")
    stream.xgroup_create(STREAM, GROUP, id="$")
    config_file = write_config(tmp_path / "archives.yaml", config, retention={"redis_ttl": "7d"})
    assert main(["--config", str(config_file), "retention", "show", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["redis"]["stream"]["entries"] == 10 and shown["next_run"]["tiers"][0]["removed"] == 3
    assert main(["--config", str(config_file), "retention", "apply"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("redis: removed 3 stream entries (those before ") and stream.xlen(STREAM) == 7
    with lease(stream, f"{STREAM}:retention:lease", 60):
        assert main(["--config", str(config_file), "retention", "apply"]) == 1
    assert capsys.readouterr().out.startswith("skipped: another retention run holds the lease")


def test_the_exporters_schedule_applies_the_policy_and_keeps_the_report(config, stream):
    import time

    from exporter.maintenance.schedule import RetentionSchedule

    retention = manager(config, stream)
    schedule = RetentionSchedule(retention, interval=3600, first_after=0)
    schedule.start()
    deadline = time.monotonic() + 10
    while retention.last_run() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the thread's first run, not for the clock the policy reads
    started = time.monotonic()
    schedule.stop()
    assert time.monotonic() - started < 2
    last = retention.last_run()
    assert last is not None and last["tiers"][0]["removed"] == 23 * 24 and len(ids(stream)) == 7 * 24


def test_status_shows_redis_memory_and_the_last_run(config, stream):
    from archives_tui.status_view import status_text
    from exporter.status import collect

    manager(config, stream).apply()
    info = collect(config)
    assert info["stream"]["memory"]["used"] > 0 and info["stream"]["stream_bytes"] > 0
    assert info["retention"]["last_run"]["tiers"][0]["removed"] == 23 * 24
    text = status_text(info)
    assert "Redis memory " in text and f"redis removed {23 * 24:,}" in text
