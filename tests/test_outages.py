"""Each part down in turn, seen from the command line: one sentence naming the part, exit 2, no
traceback, no password; `status` still reports every part it can reach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml

from archives_tui.cli import main
from archives_tui.status_view import status_text
from exporter.seed import seed_stream
from tests.conftest import free_port

SECRET = "S3cretRedisPw"
ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, config, **sections) -> Path:
    data = {"redis": {"url": config.redis.url}, "clickhouse": {"url": config.clickhouse.url},
            "cold": {"url": config.cold.url},
            "pipeline": {"flush_interval": "1s", "retry_backoff": "50ms", "max_retry_backoff": "200ms",
                         "retry_attempts": 3, "consumer_name": "outage-test"}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(config_file: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def assert_one_sentence(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archives: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def status_json(config_file: Path) -> tuple[int, dict]:
    result = run_cli(config_file, "status", "--format", "json")
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def unreachable_server(config, tmp_path: Path) -> Path:
    url = f"clickhouse://archiver:{SECRET}@127.0.0.1:{free_port()}/archive?connect_timeout=2"
    return write_config(tmp_path / "archives.yaml", config, clickhouse={"url": url})


def test_an_unreachable_clickhouse_server(unreachable_server, redis_client):
    seed_stream(redis_client, "completed_jobs", 10, seed=1)
    for command in (["export", "--once"], ["export"], ["query", "SELECT 1"]):
        assert_one_sentence(run_cli(unreachable_server, *command), "warm tier", "127.0.0.1", "unavailable")
    code, status = status_json(unreachable_server)
    assert code == 2 and status["down"] == ["warm"]
    assert status["warm"]["state"] == "down" and "unavailable" in status["warm"]["reason"]
    assert status["stream"]["state"] == "up" and status["stream"]["length"] == 10
    assert status["cold"]["state"] == "up" and status["cold"]["records"] == 0
    assert "DOWN:" in run_cli(unreachable_server, "status").stdout


def test_an_unreachable_s3_endpoint(config, tmp_path: Path, redis_client):
    config_file = write_config(tmp_path / "archives.yaml", config,
                               cold={"url": "s3://archive-bucket/jobs", "endpoint_url": f"http://127.0.0.1:{free_port()}"})
    env_keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env_keys)
    try:
        assert_one_sentence(run_cli(config_file, "export", "--once"), "cold tier", "s3://archive-bucket/jobs")
        code, status = status_json(config_file)
    finally:
        for key in env_keys:
            os.environ.pop(key, None)
    assert code == 2 and status["down"] == ["cold"] and "Could not connect" in status["cold"]["reason"]
    assert status["warm"]["state"] == "up" and status["stream"]["state"] == "up"


def test_a_warm_directory_that_cannot_be_created(config, tmp_path: Path, redis_client):
    config_file = write_config(tmp_path / "archives.yaml", config, clickhouse={"url": "chdb:///proc/archives/warm"})
    assert_one_sentence(run_cli(config_file, "export", "--once"), "warm tier", "/proc/archives/warm")
    code, status = status_json(config_file)
    assert code == 2 and status["down"] == ["warm"] and status["cold"]["state"] == "up"


def test_an_unreachable_redis_never_shows_its_password(config, tmp_path: Path):
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    config_file = write_config(tmp_path / "archives.yaml", config, redis={"url": url})
    for command in (["export", "--once"], ["seed", "--jobs", "5"]):
        assert_one_sentence(run_cli(config_file, *command), "cannot reach Redis", "redis://:***@127.0.0.1")
    code, status = status_json(config_file)
    assert code == 2 and status["down"] == ["stream"]
    assert status["warm"]["state"] == "up" and status["cold"]["state"] == "up"


def _broken_cold(config, tmp_path: Path, **pipeline) -> Path:
    """A cold store whose writes fail even for root: its jobs/ directory is a file."""
    cold = tmp_path / "cold"
    cold.mkdir()
    (cold / "jobs").write_text("not a directory")
    return write_config(tmp_path / "archives.yaml", config, cold={"url": f"file://{cold}"}, pipeline=pipeline)


def test_export_once_gives_up_when_a_sink_keeps_failing(config, tmp_path: Path, redis_client):
    config_file = _broken_cold(config, tmp_path)
    seed_stream(redis_client, "completed_jobs", 300, seed=2)
    result = run_cli(config_file, "export", "--once", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "gave up: the cold tier (Parquet) failed 3 times in a row" in result.stderr
    assert "300 entries stay pending" in result.stderr and "Traceback" not in result.stderr
    assert redis_client.xpending("completed_jobs", "archive-exporter")["pending"] == 300


def test_first_interrupt_during_a_cold_outage_stops_within_seconds(config, tmp_path: Path, redis_client):
    config_file = _broken_cold(config, tmp_path, retry_backoff="30s", max_retry_backoff="1m")
    seed_stream(redis_client, "completed_jobs", 300, seed=3)
    process = subprocess.Popen([sys.executable, "-m", "archives_tui", "--config", str(config_file), "export"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it has failed to write at least once
            raw = redis_client.get("completed_jobs:exporter:outage-test")
            if raw and orjson.loads(raw)["errors"].get("parquet"):
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - started < 10
    assert process.returncode == 1 and "300 entries pending" in err and "Traceback" not in err
    assert redis_client.xpending("completed_jobs", "archive-exporter")["pending"] == 300


def test_status_counts_what_is_delivered_but_not_acknowledged(config, tmp_path: Path, redis_client, capsys):
    seed_stream(redis_client, "completed_jobs", 500, seed=4)
    redis_client.xgroup_create("completed_jobs", "archive-exporter", id="0")
    redis_client.xreadgroup("archive-exporter", "slow-host", {"completed_jobs": ">"}, count=200)
    time.sleep(1.1)
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "status", "--format", "json"]) == 0
    stream = json.loads(capsys.readouterr().out)["stream"]
    assert stream["pending"] == 200 and stream["unarchived"] == 500
    assert stream["oldest_pending_seconds"] >= 1 and stream["lag_seconds"] >= 1


def test_status_says_when_the_last_error_happened():
    info = {"stream": {"state": "up", "stream_key": "s", "length": 1, "dlq_length": 0, "consumer_group": "g",
                       "pending": 0, "undelivered": 0, "lag_seconds": 0.0, "oldest_pending_seconds": None},
            "warm": {"state": "up", "records": 1, "bytes": 10, "oldest": None, "newest": None},
            "cold": {"state": "up", "records": 1, "bytes": 10, "oldest": None, "newest": None},
            "exporters": [], "last_error": "parquet: OSError: disk full", "last_error_at": time.time() - 300,
            "down": []}
    assert "last error " in status_text(info) and " UTC (5m ago): parquet: OSError: disk full" in status_text(info)
