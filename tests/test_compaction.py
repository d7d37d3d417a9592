"""Compaction of the cold tier: each closed hour becomes one sorted generation with exactly the rows it
had, readers never see an hour missing or doubled (not after a SIGKILL between any two steps either),
and a batch replayed into a compacted hour is not counted twice."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exporter import runtime
from exporter.config import ColdConfig
from exporter.engine.sql import sql_string
from exporter.maintenance import compaction, hot
from exporter.maintenance.retention import RetentionManager
from exporter.pipeline import ExportPipeline
from exporter.seed import seed_stream
from exporter.tiers import federation
from exporter.tiers.cold import ParquetStore, by_directory
from exporter.tiers.federation import ALL_DAYS
from exporter.tiers.layout import compacted_name, superseded, superseded_sql
from tests.helpers import cold_table

STREAM, GROUP = "completed_jobs", "archive-exporter"
HOUR = 3600.0
FINGERPRINT = "count() AS rows, uniqExact(job_id) AS jobs, sum(cityHash64(job_id, queue, enqueue_time, outcome)) AS sum"


def export(config, redis_client, warm, jobs: int = 1500, days: float = 0.25, seed: int = 41) -> None:
    seed_stream(redis_client, STREAM, jobs, days=days, failure_rate=0.2, seed=seed)
    with runtime.open_cold(config) as cold:
        ExportPipeline(config, redis_client, warm, cold, "test-exporter").run(once=True)


def engine_view(warm, url: str, cold: ColdConfig | None = None) -> dict:
    """What the engine reads from the cold tier at ``url`` (honouring the layout's rule)."""
    source = federation.cold_source(cold or ColdConfig(), url)
    return warm.backend.query_arrow(source.select(FINGERPRINT)).to_pylist()[0]


def rows_of(cold: ParquetStore) -> list[dict]:
    table = cold_table(cold)
    return sorted(table.drop_columns([c for c in table.column_names if c in ("year", "month", "day", "hour")])
                  .to_pylist(), key=lambda r: (r["job_id"], r["enqueue_time"]))


def hour_files(cold: ParquetStore) -> dict[str, list[str]]:
    return {d.removeprefix(cold.jobs_root + "/"): sorted(n) for d, n in by_directory(cold.listing()).items()}


def run_compaction(config, redis_client, cold, later: float = HOUR * 24, dry_run: bool = False):
    manager = RetentionManager(config, redis_client, now=lambda: time.time() + later, cold=cold)
    return manager.apply(("cold",), dry_run=dry_run).tiers[0]


@pytest.mark.parametrize("where", ["file", "s3"])
def test_each_closed_hour_becomes_one_sorted_file_with_the_same_rows(config, redis_client, warm, where, request):
    if where == "s3":
        endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")
        config = config.replace("cold", url=f"s3://{bucket}/archive", endpoint_url=endpoint)
    export(config, redis_client, warm)
    with runtime.open_cold(config) as cold:
        before, seen = rows_of(cold), engine_view(warm, config.cold.url, config.cold)
        assert max(len(names) for names in hour_files(cold).values()) > 1
        assert run_compaction(config, redis_client, cold, dry_run=True).details["compaction"]["hours"] > 0
        assert rows_of(cold) == before and all(not n.startswith("compacted") for f in hour_files(cold).values()
                                               for n in f)

        report = run_compaction(config, redis_client, cold)
        files = hour_files(cold)
        watermark = hot.archived_below(redis_client, STREAM, GROUP)
        assert all(names == [compacted_name(watermark, 1, 1)] for names in files.values()), files
        assert rows_of(cold) == before and engine_view(warm, config.cold.url, config.cold) == seen
        assert report.details["compaction"]["rows"] == len(before) and not report.refused
        for info in cold.listing():
            with cold.fs.open(info["name"], "rb") as handle:
                table = pq.read_table(handle)
            keys = list(zip(table["queue"].to_pylist(), table["enqueue_time"].to_pylist(), strict=True))
            assert keys == sorted(keys)

        again = run_compaction(config, redis_client, cold).details["compaction"]
        assert (again["hours"], again["files_written"], again["files_deleted"]) == (0, 0, 0)
        assert hour_files(cold) == files


def test_a_replayed_batch_is_not_counted_twice_and_a_late_one_is_kept(config, redis_client, warm):
    export(config, redis_client, warm)
    with runtime.open_cold(config) as cold:
        first = cold.listing()[0]["name"]
        replay = cold.fs.cat_file(first)  # a batch file, as a replay would write it again
        seen = engine_view(warm, config.cold.url, config.cold)
        run_compaction(config, redis_client, cold)
        directory = first.rsplit("/", 1)[0]
        cold.fs.pipe_file(first, replay)  # the replay lands after its hour was compacted
        assert engine_view(warm, config.cold.url, config.cold) == seen
        assert first not in {i["name"] for i in cold.files()}

        late = pq.read_table(pa.BufferReader(replay)).slice(0, 3)
        late = late.set_column(0, "job_id", pa.array([f"late-{n}" for n in range(3)]))
        watermark = hot.archived_below(redis_client, STREAM, GROUP)
        late_name = f"{directory}/{watermark[0] + 1}-0_0123456789ab.parquet"  # a batch not acknowledged yet
        cold.put(late_name, cold.encode_compacted([late]))
        assert engine_view(warm, config.cold.url, config.cold)["rows"] == seen["rows"] + 3

        report = run_compaction(config, redis_client, cold).details["compaction"]
        assert report["files_deleted"] == 1 and report["hours"] == 0  # the replay; the late batch is pending
        assert engine_view(warm, config.cold.url, config.cold)["rows"] == seen["rows"] + 3
        assert late_name in {i["name"] for i in cold.files()}


def test_an_hour_with_a_file_of_another_schema_is_kept(config, redis_client, warm):
    export(config, redis_client, warm, jobs=300)
    with runtime.open_cold(config) as cold:
        victim = cold.listing()[0]["name"]
        with cold.fs.open(victim, "rb") as handle:
            table = pq.read_table(handle)
        cold.fs.pipe_file(victim, _parquet(table.append_column("new_column", pa.array(["x"] * table.num_rows))))
        report = run_compaction(config, redis_client, cold)
        assert any("new_column" in r and "kept" in r for r in report.refused), report.refused
        assert victim in {i["name"] for i in cold.files()}


def test_without_the_consumer_group_nothing_is_compacted(config, redis_client, warm):
    export(config, redis_client, warm, jobs=300)
    redis_client.xgroup_destroy(STREAM, GROUP)
    with runtime.open_cold(config) as cold:
        files = hour_files(cold)
        report = run_compaction(config, redis_client, cold)
        assert any("consumer group does not exist" in r for r in report.refused)
        assert hour_files(cold) == files


def test_the_rule_in_sql_is_the_rule_in_python(warm, tmp_path):
    rng = random.Random(5)
    root = tmp_path / "cold" / "jobs"
    for d in range(40):
        directory = root / f"year=2026/month=01/day={d // 24 + 1:02d}/hour={d % 24:02d}"
        directory.mkdir(parents=True)
        names = {f"{rng.randrange(1, 9)}-{rng.randrange(0, 3)}_{rng.randrange(16**6):06x}.parquet"
                 for _ in range(rng.randrange(0, 6))}
        for _ in range(rng.randrange(0, 4)):
            n = rng.randrange(1, 4)
            names |= {compacted_name((rng.randrange(1, 9), rng.randrange(0, 3)), p, n)
                      for p in range(1, n + 1) if rng.random() < 0.8}
        names |= {"foreign.parquet"} if rng.random() < 0.3 else set()
        for name in names:
            (directory / name).write_bytes(b"")  # listed, never opened
    listing = federation.cold_source(ColdConfig(), f"file://{tmp_path / 'cold'}").function(sql_string(ALL_DAYS), "One")
    by_sql = {r["path"] for r in warm.backend.query_arrow(superseded_sql(listing)).to_pylist()}
    by_python = {str(d / n) for d in root.glob("*/*/*/*") for n in superseded([p.name for p in d.iterdir()])}
    assert by_sql == by_python and len(by_python) > 20


KILLER = """
import os, signal, sys
from exporter.config import ColdConfig
from exporter.maintenance import compaction
from exporter.tiers.cold import ParquetStore
url, ms, seq, kill_at, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
steps = []
def step(what):
    steps.append(what)
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
store = ParquetStore.open(ColdConfig(), url)
compaction.compact(store, (ms, seq), now, 0.0, 20_000, 0.0, on_step=step)
"""


def test_a_compaction_killed_between_any_two_steps_loses_and_doubles_nothing(config, redis_client, warm, tmp_path):
    config = config.replace("pipeline", batch_size=100, max_batch_size=100)
    export(config, redis_client, warm, jobs=900, days=3 / 24)
    watermark = hot.archived_below(redis_client, STREAM, GROUP)
    origin = Path(config.cold.url.removeprefix("file://"))
    with runtime.open_cold(config) as cold:
        expected_rows, seen = rows_of(cold), engine_view(warm, config.cold.url, config.cold)
    later = time.time() + 2 * HOUR

    steps: list[str] = []
    whole = tmp_path / "whole"
    shutil.copytree(origin, whole)
    compaction.compact(ParquetStore.open(ColdConfig(), f"file://{whole}"), watermark, later, 0.0, 20_000, 0.0,
                       on_step=steps.append)
    assert sum(s.startswith("wrote") for s in steps) > sum(s.startswith("deleted") for s in steps) > 1

    for kill_at in range(1, len(steps)):
        copy = tmp_path / f"killed-{kill_at}"
        shutil.copytree(origin, copy)
        url = f"file://{copy}"
        died = subprocess.run([sys.executable, "-c", KILLER, url, str(watermark[0]), str(watermark[1]),
                               str(kill_at), str(later)], capture_output=True, text=True, timeout=120)
        assert died.returncode == -signal.SIGKILL, died.stderr
        assert engine_view(warm, url) == seen, f"killed after {steps[kill_at - 1]!r}"
        store = ParquetStore.open(ColdConfig(), url)
        compaction.compact(store, watermark, later, 0.0, 20_000, 0.0)
        assert engine_view(warm, url) == seen and rows_of(store) == expected_rows
        assert hour_files(store) == hour_files(ParquetStore.open(ColdConfig(), f"file://{whole}")), kill_at
        shutil.rmtree(copy)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_compacted_files_are_owner_only(config, redis_client, warm):
    export(config, redis_client, warm, jobs=300)
    with runtime.open_cold(config) as cold:
        run_compaction(config, redis_client, cold)
        modes = {os.stat(i["name"]).st_mode & 0o777 for i in cold.listing()}
    assert modes == {0o600}


def test_the_cli_reports_what_compaction_did_and_what_waits(config, redis_client, tmp_path, capsys):
    from archives_tui.cli import main
    from tests.test_outages import write_config

    seed_stream(redis_client, STREAM, 600, days=1, seed=43)
    config_file = write_config(tmp_path / "archives.yaml", config, retention={"compact_after": "1s"})
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config_file), "retention", "apply", "--tier", "cold", "--dry-run"]) == 0
    planned = capsys.readouterr().out
    assert "compaction would rewrite " in planned and " hours (" in planned
    assert main(["--config", str(config_file), "retention", "apply", "--tier", "cold"]) == 0
    done = capsys.readouterr().out
    rewritten = re.search(r"compaction rewrote (\d+) hours: (\d+) files .* ([\d,]+) rows", done)
    assert rewritten and int(rewritten[1]) > 0 and int(rewritten[2]) >= int(rewritten[1]), done
    assert "more are deleted by a later run, once no query can be reading them" in done
    assert main(["--config", str(config_file), "retention", "show", "--format", "json"]) == 0
    cold = json.loads(capsys.readouterr().out)["cold"]
    assert cold["records"] == 600 and cold["files"] < len(cold_files_on_disk(config))  # superseded ones wait
    assert main(["--config", str(config_file), "retention", "show"]) == 0
    assert "cold: keeps 7y, compacts hours 1s after they end; 600 records in " in capsys.readouterr().out


def cold_files_on_disk(config) -> list[Path]:
    return list(Path(config.cold.url.removeprefix("file://")).rglob("*.parquet"))
