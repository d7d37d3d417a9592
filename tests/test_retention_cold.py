"""Cold-tier expiry: hours past s3_archive_ttl (or data_retention_max_days) leave the cold tier, a whole
directory at a time, and nothing inside the window does; on a local directory and on S3 (moto)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from exporter import runtime
from exporter.maintenance.retention import RetentionManager
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from tests.helpers import cold_table

DAY = 86400.0


def export(config, redis_client, days: int, jobs: int) -> None:
    seed_stream(redis_client, "completed_jobs", jobs, days=days, failure_rate=0.2, seed=36)
    with runtime.open_warm(config) as warm, runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)


def hours(cold) -> Counter:
    table = cold_table(cold)
    return Counter(t.replace(minute=0, second=0, microsecond=0) for t in table.column("enqueue_time").to_pylist())


def expire(config, redis_client, cold, dry_run: bool = False):
    manager = RetentionManager(config, redis_client, now=lambda: time.time() + 5 * DAY, cold=cold)
    return manager.apply(("cold",), dry_run=dry_run).tiers[0]


@pytest.mark.parametrize("where", ["file", "s3"])
def test_hours_past_the_limit_leave_and_the_rest_stay(config, redis_client, where, request):
    if where == "s3":
        endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")
        config = config.replace("cold", url=f"s3://{bucket}/archive", endpoint_url=endpoint)
    config = config.replace("retention", s3_archive_ttl=20 * DAY).replace("pipeline", batch_size=5000)
    export(config, redis_client, days=30, jobs=600)
    with runtime.open_cold(config) as cold:
        before = hours(cold)
        limit = datetime.fromtimestamp(time.time() + 5 * DAY - 20 * DAY, UTC)  # the clock moved 5 days on
        assert expire(config, redis_client, cold, dry_run=True).removed > 0 and hours(cold) == before
        report = expire(config, redis_client, cold)
        after = hours(cold)
    expected = Counter({hour: n for hour, n in before.items() if hour >= limit.replace(minute=0, second=0,
                                                                                       microsecond=0)})
    assert after == expected and 0 < sum(after.values()) < sum(before.values())
    assert report.removed > 0 and report.bytes_removed > 0 and report.details["hours"]["directories"]


def test_data_retention_max_days_wins_when_shorter(config, redis_client):
    config = config.replace("retention", s3_archive_ttl=3650 * DAY, data_retention_max_days=10)
    export(config, redis_client, days=30, jobs=300)
    with runtime.open_cold(config) as cold:
        expire(config, redis_client, cold)
        oldest = min(hours(cold))
    assert oldest >= datetime.fromtimestamp(time.time() + 5 * DAY - 10 * DAY, UTC).replace(minute=0, second=0,
                                                                                          microsecond=0)


def test_lifecycle_rules_are_written_from_the_policy_and_others_kept(config, redis_client, s3_endpoint, s3_bucket):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    theirs = {"ID": "someone-elses", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    s3.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={"Rules": [theirs]})
    config = config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)
    config = config.replace("retention", s3_archive_ttl=400 * DAY, archive_after=90 * DAY,
                            archive_class="DEEP_ARCHIVE")
    export(config, redis_client, days=2, jobs=50)
    with runtime.open_cold(config) as cold:
        first = RetentionManager(config, redis_client, cold=cold).apply(("cold",)).tiers[0]
        again = RetentionManager(config, redis_client, cold=cold).apply(("cold",)).tiers[0]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]}
    ours = rules["archives-cold-tier"]
    assert ours["Filter"] == {"Prefix": "archive/jobs/"} and ours["Expiration"] == {"Days": 400}
    assert ours["Transitions"] == [{"Days": 90, "StorageClass": "DEEP_ARCHIVE"}]
    assert rules["someone-elses"]["Expiration"] == {"Days": 3}
    assert first.details["lifecycle"]["changed"] and not again.details["lifecycle"]["changed"]
    from archives_tui.retention_view import retention_text

    shown = retention_text(RetentionManager(config, redis_client, cold=runtime.open_cold(config)).show())
    lines = shown.splitlines()
    assert "s3 lifecycle: to DEEP_ARCHIVE after 90 days, deleted after 400 days" in lines, shown


def test_a_query_needing_archived_objects_says_which_hour_and_how_to_restore(config, redis_client, s3_endpoint,
                                                                             s3_bucket, tmp_path, capsys):
    import boto3

    from archives_tui.cli import main
    from tests.test_outages import write_config

    config = config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)
    export(config, redis_client, days=1, jobs=50)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="archive/jobs/")["Contents"])
    s3.copy_object(Bucket=s3_bucket, Key=key, CopySource={"Bucket": s3_bucket, "Key": key}, StorageClass="GLACIER")
    config_file = write_config(tmp_path / "archives.yaml", config, cold={"url": config.cold.url,
                                                                       "endpoint_url": s3_endpoint})
    assert main(["--config", str(config_file), "query", "SELECT count() FROM jobs_cold"]) == 2
    err = capsys.readouterr().err
    hour = key.split("/hour=")[1][:2]
    assert err.startswith("archives: the query needs cold data that S3 has moved to an archive storage class: "
                          "the hour ") and f" {hour}:00 UTC (s3://{s3_bucket}/{key})" in err
    assert f"restore-object --bucket {s3_bucket} --key {key}" in err and err.count("\n") == 1
