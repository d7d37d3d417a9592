"""Retention with the S3 endpoint down (a port nothing listens on, or a moto server that was stopped):
`retention show`, `dry-run` and `apply`, and the dashboard's Retention panel, still show what they can
(Redis, the warm tier), say in one sentence that the cold store at the endpoint is unreachable, and the
commands exit 2, as `status` does for a part that is down. Never a traceback, never a secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from archives_tui.app import ArchivesApp
from archives_tui.retention_view import retention_text, run_text
from exporter import runtime
from exporter.maintenance.retention import RetentionManager
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from tests.conftest import free_port
from tests.pilot import archived, quit_app, text_of, until
from tests.test_outages import run_cli, write_config

SECRET = "S3cretColdKey"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials for moto; one attempt per S3 call, so each call to a dead endpoint fails at once."""
    for name, value in {**AWS, "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def dead_endpoint(config, tmp_path: Path, redis_client, aws_env) -> tuple[Path, str]:
    """A config whose cold tier is on S3 at a port nothing listens on (its key a secret), with a stream."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    seed_stream(redis_client, "completed_jobs", 20, seed=7)
    config_file = write_config(tmp_path / "archives.yaml", config,
                               cold={"url": "s3://archive-bucket/jobs", "endpoint_url": endpoint,
                                     "access_key_id": "AKIATEST", "secret_access_key": SECRET})
    return config_file, endpoint


def unreachable(endpoint: str) -> str:
    return f"the cold store at {endpoint} (s3://archive-bucket/jobs) is unreachable: Could not connect to the endpoint"


def assert_shown_without_traceback(result, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output and SECRET not in output and "botocore" not in output
    for needle in needles:
        assert needle in result.stdout, result.stdout


def test_show_reports_redis_and_the_warm_tier_and_the_cold_store_as_down(dead_endpoint):
    config_file, endpoint = dead_endpoint
    result = run_cli(config_file, "retention", "show")
    assert_shown_without_traceback(result, "policy: Redis keeps", "  stream        20 entries",
                                   "warm: keeps 1y (days leave", f"cold: DOWN: {unreachable(endpoint)}",
                                   "cost a month: redis ", "cold unknown")
    lines = result.stdout.splitlines()
    assert not any(line.startswith("s3 lifecycle") for line in lines)  # nothing to tell of a bucket not reached
    next_run = lines[lines.index(next(line for line in lines if line.startswith("next run: "))):]
    assert any(line.startswith("cold: would remove nothing") for line in next_run)
    assert f"  refused: {unreachable(endpoint)}" in "\n".join(next_run)

    shown = json.loads(run_cli(config_file, "retention", "show", "--format", "json").stdout)
    assert shown["down"] == ["cold"] and shown["cold"]["down"] is True
    assert shown["cold"]["unavailable"].startswith(unreachable(endpoint))
    assert shown["redis"]["stream"]["entries"] == 20 and shown["warm"]["unavailable"] is None
    assert shown["costs"]["tiers"]["cold"]["bytes"] is None and shown["costs"]["in_redis_usd_per_month"] is None
    cold_plan = {t["tier"]: t for t in shown["next_run"]["tiers"]}["cold"]
    assert cold_plan["down"].startswith(unreachable(endpoint))


@pytest.mark.parametrize("dry_run", [True, False])
def test_apply_does_the_other_tiers_and_says_the_cold_store_is_down(dead_endpoint, dry_run):
    config_file, endpoint = dead_endpoint
    result = run_cli(config_file, "retention", "apply", *(["--dry-run"] if dry_run else []))
    verb = "would remove" if dry_run else "removed"
    assert_shown_without_traceback(result, f"redis: {verb} ", f"warm: {verb} ", f"cold: {verb} nothing",
                                   f"  refused: {unreachable(endpoint)}")
    code_of_cold_only = run_cli(config_file, "retention", "apply", "--tier", "cold", "--format", "json")
    assert code_of_cold_only.returncode == 2
    (tier,) = json.loads(code_of_cold_only.stdout)["tiers"]
    assert tier["tier"] == "cold" and tier["down"].startswith(unreachable(endpoint))


def test_a_warm_server_down_is_shown_down_beside_the_rest(config, tmp_path: Path, redis_client):
    """The same for the warm tier: an unreachable ClickHouse server is a DOWN line, not the whole answer."""
    url = f"clickhouse://archiver:{SECRET}@127.0.0.1:{free_port()}/archive?connect_timeout=1"
    config_file = write_config(tmp_path / "archives.yaml", config, clickhouse={"url": url})
    result = run_cli(config_file, "retention", "show")
    assert_shown_without_traceback(result, "policy: Redis keeps", "warm: keeps 1y; DOWN: cannot reach the warm tier: ",
                                   "cold: keeps 7y", "warm unknown (down)")
    applied = run_cli(config_file, "retention", "apply", "--tier", "warm")
    assert_shown_without_traceback(applied, "warm: removed nothing", "  refused: cannot reach the warm tier: ")


@pytest.fixture
def stopped_moto(aws_env):
    """A moto server of this test's own, with a bucket; call the returned function to stop it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="archive-bucket")
    stopped = []

    def stop() -> None:
        if not stopped:
            server.stop()
            stopped.append(True)

    yield endpoint, stop
    stop()


def test_a_stopped_moto_server_leaves_the_rest_of_show_and_apply(config, redis_client, stopped_moto, warm):
    endpoint, stop = stopped_moto
    config = config.replace("cold", url="s3://archive-bucket/jobs", endpoint_url=endpoint)
    seed_stream(redis_client, "completed_jobs", 50, seed=8)
    with runtime.open_cold(config) as cold:
        assert ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True).archived == 50
        stop()
        manager = RetentionManager(config, redis_client, warm=warm, cold=cold)
        shown = manager.show()
        run = manager.apply()
    assert shown["down"] == ["cold"] and shown["warm"]["rows"] == 50 and shown["redis"]["stream"]["entries"] == 50
    text = retention_text(shown)
    assert f"cold: DOWN: {unreachable(endpoint)}" in text and "; 50 rows in " in text
    reports = {t.tier: t for t in run.tiers}
    assert reports["redis"].down is None and reports["warm"].down is None
    assert reports["cold"].down.startswith(unreachable(endpoint)) and reports["cold"].refused == [reports["cold"].down]
    assert f"  refused: {unreachable(endpoint)}" in run_text(run.as_dict())
    assert manager.last_run()["tiers"][2]["down"] == reports["cold"].down  # status reads it from there
    lifecycle = manager._lifecycle()  # the bucket's rule, when S3 goes down between the listing and it
    assert lifecycle["current"] is None and lifecycle["unavailable"].startswith(unreachable(endpoint))
    assert f"s3 lifecycle: not known, {unreachable(endpoint)}" in retention_text({**shown, "lifecycle": lifecycle})


def test_the_dashboards_retention_panel_with_s3_down(quick, redis_client, stopped_moto):
    endpoint, stop = stopped_moto
    config = quick.replace("cold", url="s3://archive-bucket/jobs", endpoint_url=endpoint)
    seed_stream(redis_client, "completed_jobs", 100, days=0.5, seed=9)

    async def scenario() -> None:
        app = ArchivesApp(config)
        async with app.run_test(size=(160, 45)) as pilot:
            await archived(pilot, app, 100)
            stop()
            app.action_show_panel("status")
            await pilot.press("r")
            await until(pilot, lambda: "cold: DOWN: " in text_of(app.screen, "#retention-text"))
            shown = text_of(app.screen, "#retention-text")
            assert "policy: Redis keeps" in shown and "warm: keeps" in shown and unreachable(endpoint) in shown
            await pilot.press("d")
            await until(pilot, lambda: "would remove" in text_of(app.screen, "#retention-outcome"))
            outcome = text_of(app.screen, "#retention-outcome")
            assert f"refused: {unreachable(endpoint)}" in outcome and "Traceback" not in outcome
            await quit_app(pilot, app)

    asyncio.run(scenario())
