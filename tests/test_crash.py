"""SIGKILL the exporter at several points of a 200K-event export; after restarts every event is stored
exactly once in ClickHouse and in Parquet."""

from __future__ import annotations

import bisect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from exporter.engine.registry import open_backend
from exporter.seed import seed_stream
from exporter.tiers.cold import ParquetStore
from exporter.tiers.warm import WarmStore
from tests.helpers import cold_counts, warm_counts

EVENTS = 200_000


def _archived(redis_client, ids: list[tuple[int, int]]) -> int:
    """Entries acknowledged so far: delivered (position of the last delivered id) minus pending."""
    groups = redis_client.xinfo_groups("completed_jobs")
    if not groups:
        return 0
    millis, sequence = groups[0]["last-delivered-id"].decode().split("-")
    return bisect.bisect_right(ids, (int(millis), int(sequence))) - groups[0]["pending"]


@pytest.mark.slow
def test_sigkill_at_several_points_then_restart_stores_each_event_once(redis_url, redis_client, tmp_path: Path):
    config_file = tmp_path / "archives.yaml"
    config_file.write_text(yaml.safe_dump({
        "redis": {"url": redis_url},
        "clickhouse": {"url": f"chdb://{tmp_path / 'warm'}"},
        "cold": {"url": f"file://{tmp_path / 'cold'}"},
        "pipeline": {"batch_size": 2000, "min_batch_size": 500, "max_batch_size": 20000, "flush_interval": "1s",
                     "consumer_name": "crashy"},
    }))
    seed_stream(redis_client, "completed_jobs", EVENTS, days=3, seed=42)
    ids = [tuple(map(int, entry_id.decode().split("-"))) for entry_id, _ in
           redis_client.xrange("completed_jobs", count=EVENTS)]
    command = [sys.executable, "-m", "archives_tui", "--config", str(config_file), "export"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}

    kills = 0
    for target in (20_000, 70_000, 130_000):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _archived(redis_client, ids) < target and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)  # in the middle of whatever it was doing
        process.wait()
        kills += 1
        assert _archived(redis_client, ids) < EVENTS

    drain = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True, timeout=300)
    assert drain.returncode == 0, drain.stderr
    assert kills == 3

    with WarmStore(open_backend(f"chdb://{tmp_path / 'warm'}"), 365 * 86400) as warm:
        assert warm_counts(warm) == (EVENTS, EVENTS)
        hourly = warm.backend.query_arrow("SELECT sum(job_count) AS n FROM queue_hourly_stats").to_pylist()
        assert hourly[0]["n"] == EVENTS  # replayed batches were not counted twice in the view
    cold = ParquetStore.open(None, f"file://{tmp_path / 'cold'}")  # type: ignore[arg-type]
    assert cold_counts(cold) == (EVENTS, EVENTS)
    assert redis_client.xpending("completed_jobs", "archive-exporter")["pending"] == 0
    assert redis_client.hlen("completed_jobs:batches:archive-exporter") == 0
