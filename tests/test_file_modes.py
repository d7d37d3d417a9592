"""Archived personal data is owner-only on disk, and a failed local write leaves no temporary file behind."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import redis

from exporter.config import ColdConfig
from exporter.engine.chdb import ChdbBackend, lock_path
from exporter.record import RECORD_SCHEMA
from exporter.tiers.cold import ParquetStore

SHARED = stat.S_IRWXG | stat.S_IRWXO


def shared_paths(root: Path) -> list[str]:
    """Every file or directory under ``root`` (itself included) that its group or others may touch."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & SHARED:
            found.append(f"{stat.filemode(mode)} {path.relative_to(root)}")
    return found


def records(rows: int = 3, sample: str = "") -> pa.Table:
    """``rows`` archive records of one hour; ``sample`` makes them as large as needed."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    row = {name: "" for name in RECORD_SCHEMA.names}
    row.update(priority=0, retries=0, payload_size=0, tags={}, enqueue_time=start, start_time=None, end_time=None,
               queue="q", outcome="success", schema_version="1.0.0", payload_sample=sample)
    return pa.Table.from_pylist([{**row, "job_id": f"j{i}"} for i in range(rows)], schema=RECORD_SCHEMA)


@pytest.fixture
def loose_umask():
    """The usual default umask, so that files created without an explicit mode would be 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archives_tui", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=240, umask=0o022)


def test_embedded_export_leaves_nothing_readable_by_others(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVES_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    try:
        for args in (["seed", "--jobs", "200"], ["export", "--once"]):
            result = run_cli(env, tmp_path, *args)
            assert result.returncode == 0, result.stderr
    finally:
        run_cli(env, tmp_path, "stop")
    base = tmp_path / "archives"
    assert list((base / "cold").rglob("*.parquet")), "the export wrote no Parquet file"
    assert (base / "redis" / "appendonly.aof").exists()
    assert (base / "warm").is_dir()
    assert shared_paths(base) == []


def make_loose(path: Path, files: list[str]) -> None:
    """A store as an earlier version left it: directories 0755, files 0644."""
    for name in files:
        file = path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"personal data")
        file.chmod(0o644)
    for directory in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)


def test_an_old_cold_store_is_tightened_when_opened(tmp_path: Path):
    root = tmp_path / "cold"
    make_loose(root, ["jobs/year=2026/month=01/day=01/hour=00/a.parquet", "notes.txt"])
    ParquetStore.open(ColdConfig(), f"file://{root}")
    assert shared_paths(root) == []


def test_an_old_warm_store_is_tightened_when_opened(tmp_path: Path):
    path = tmp_path / "warm"
    make_loose(path, ["store/abc/data.bin"])
    lock_path(path).write_text("pid 1")
    lock_path(path).chmod(0o644)
    backend = ChdbBackend(str(path))
    try:
        backend.execute("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
        backend.execute("INSERT INTO t VALUES (1)")
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert stat.S_IMODE(lock_path(path).stat().st_mode) == 0o600
    finally:
        backend.close()
    assert shared_paths(path) == []


def test_a_new_warm_store_is_owner_only(tmp_path: Path, loose_umask):
    path = tmp_path / "new" / "warm"
    ChdbBackend(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(lock_path(path).stat().st_mode) == 0o600


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_parquet_files_and_partitions_are_owner_only_whatever_the_umask(tmp_path: Path, umask: int):
    previous = os.umask(umask)
    try:
        store = ParquetStore.open(ColdConfig(), f"file://{tmp_path / 'a' / 'cold'}")
        assert store.write_batch(records(), "batch1")
    finally:
        os.umask(previous)
    assert shared_paths(tmp_path / "a") == []


def test_the_embedded_redis_files_are_owner_only(tmp_path: Path, loose_umask):
    from exporter.embedded import ensure_redis, stop_redis

    base = tmp_path / "d"
    make_loose(base / "redis", ["redis.log"])  # left by an earlier version
    try:
        redis.Redis.from_url(ensure_redis(base)).xadd("completed_jobs", {"data": "{}"})
    finally:
        stop_redis(base)
    assert (base / "redis" / "appendonly.aof").exists()
    assert shared_paths(base) == []


# --- temporary files of the local cold store ---------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_are_removed_on_open_and_live_ones_kept(tmp_path: Path):
    root = tmp_path / "cold"
    hour = root / "jobs/year=2026/month=01/day=01/hour=00"
    hour.mkdir(parents=True)
    host = socket.gethostname()
    uid = "0" * 32
    names = {  # .<name>.<pid>@<host>.<uuid>.tmp
        "mine": f".b1.parquet.{os.getpid()}@{host}.{uid}.tmp",  # a live writer (this process)
        "dead": f".b2.parquet.{dead_pid()}@{host}.{uid}.tmp",  # its writer is gone
        "other_host_fresh": f".b3.parquet.1@elsewhere.example.{uid}.tmp",  # cannot tell: too young to remove
        "other_host_old": f".b4.parquet.1@elsewhere.example.{uid}.tmp",
        "old_format_fresh": f".b5.parquet.{uid}.tmp",  # written by an earlier version
        "old_format_old": f".b6.parquet.{uid}.tmp",
    }
    for name in names.values():
        (hour / name).write_bytes(b"partial")
    day_ago = time.time() - 86400
    for key in ("other_host_old", "old_format_old"):
        os.utime(hour / names[key], (day_ago, day_ago))
    (hour / "b0.parquet").write_bytes(b"archived")

    ParquetStore.open(ColdConfig(), f"file://{root}")

    left = {path.name for path in hour.iterdir()}
    assert left == {"b0.parquet", names["mine"], names["other_host_fresh"], names["old_format_fresh"]}


def test_a_write_that_fails_for_want_of_space_leaves_no_temporary(tmp_path: Path):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk would (ENOSPC)."""
    root = tmp_path / "cold"
    script = f"""
import os, resource, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_file_modes import records
from exporter.config import ColdConfig
from exporter.tiers.cold import ParquetStore
store = ParquetStore.open(ColdConfig(), "file://{root}")
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    store.write_batch(records(50, os.urandom(4096).hex()), "batch1")
except OSError as exc:
    print("failed:", exc.strerror)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "failed: File too large" in result.stdout, result.stderr
    assert [p.name for p in root.rglob("*") if p.is_file()] == []
