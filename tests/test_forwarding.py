"""Queries while the exporter runs: on the embedded defaults `archives export` owns the chdb store and
answers the other processes' queries over `<data>/warm.sock`, behind the same guard, with cancel and
hang-up stopping its engine; with no live owner, `archives query` opens the store itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from exporter.engine import wire
from exporter.engine.chdb import ChdbBackend
from exporter.engine.interface import Limits, QueryStats
from exporter.errors import ArchivesError, QueryError, QueryRefused
from exporter.query.layer import LocalQueries, at_most
from exporter.query.remote import RemoteQueries
from exporter.query.run import Execution, QueryCancelled
from exporter.query.serve import MAX_CONNECTIONS, QueryServer

ROOT = Path(__file__).resolve().parent.parent
JOBS = 300
# Reads few rows (under the owner's max_rows_to_read) and keeps a core busy for minutes.
RUNAWAY = ("SELECT count() FROM numbers(1000000) AS n CROSS JOIN numbers(1000000) AS m "
           "WHERE (n.number * m.number) % 7 = 3")


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Home:
    """A private XDG data home on the embedded defaults, and the `archives` commands run in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVES_")}
        self.env["XDG_DATA_HOME"] = str(root)
        self.config = root / "archives.yaml"  # embedded defaults; only a short flush for a quick test
        self.config.write_text("pipeline:\n  flush_interval: 200ms\n  consumer_name: forwarding-test\n"
                               "query:\n  max_rows_to_read: 5000000\n")
        self.data = root / "archives"
        self.socket = wire.socket_path(self.data / "warm")
        self.exporter: subprocess.Popen | None = None

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(self.config), *args],
                              env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "archives_tui", "--config", str(self.config), *args],
                                env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start_exporter(self) -> subprocess.Popen:
        """`archives export` running continuously, once it answers on its socket."""
        self.exporter = self.start("export")
        wait_for(lambda: self.exporter.poll() is not None or RemoteQueries.reach(self.socket), 60,
                 "the exporter to answer on its socket")
        assert self.exporter.poll() is None, self.exporter.communicate()[1]
        return self.exporter

    def count(self, sql: str = "SELECT count() AS n FROM jobs_archive") -> int:
        result = self.run("query", sql, "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]["n"]

    def seed(self, jobs: int, seed: int) -> None:
        result = self.run("seed", "--jobs", str(jobs), "--seed", str(seed))
        assert result.returncode == 0, result.stderr

    def stop(self) -> None:
        if self.exporter is not None and self.exporter.poll() is None:
            self.exporter.send_signal(signal.SIGTERM)
            try:
                self.exporter.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.exporter.kill()
                self.exporter.communicate()
        self.run("stop")


@pytest.fixture(scope="module")
def owner(tmp_path_factory) -> Iterator[Home]:
    """One exporter for the module, with JOBS seeded jobs exported."""
    home = Home(tmp_path_factory.mktemp("owner"))
    try:
        home.seed(JOBS, seed=7)
        home.start_exporter()
        wait_for(lambda: home.count() == JOBS, 60, f"the exporter to archive {JOBS} jobs")
        yield home
    finally:
        home.stop()


@pytest.fixture
def forwarded(owner: Home) -> RemoteQueries:
    backend = RemoteQueries.reach(owner.socket)
    assert backend is not None
    return backend


def owner_busy(owner: Home) -> bool:
    """Whether the owner's engine is working: a runaway query keeps a core busy. (system.processes is
    not open to consoles, by design: it shows other consoles' SQL.)"""
    return psutil.Process(owner.exporter.pid).cpu_percent(interval=1.0) > 60


def test_a_second_process_queries_while_export_runs(owner: Home):
    assert owner.count() == JOBS
    assert owner.exporter.poll() is None, "the query did not go through the running exporter"
    result = owner.run("query", "SELECT job_id, outcome FROM jobs_archive ORDER BY job_id", "--format", "csv",
                       "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '"job_id","outcome"' and len(lines) == 4
    assert all(line.split(",")[1].strip('"') in ("success", "failed", "timeout", "cancelled") for line in lines[1:])


def test_the_exporter_goes_on_archiving_while_a_forwarded_query_runs(owner: Home, forwarded: RemoteQueries):
    long_query = Execution(forwarded, RUNAWAY)
    try:
        owner.seed(50, seed=8)
        wait_for(lambda: owner.count() == JOBS + 50, 60, "the new jobs to be archived")
        assert not long_query.done
    finally:
        long_query.cancel()
    assert owner.count("SELECT uniqExact(job_id) AS n FROM jobs") == JOBS + 50


def test_the_socket_is_owner_only(owner: Home):
    mode = owner.socket.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert not [p.name for p in owner.data.iterdir() if p.name.startswith(".q")], "a staging directory was left"


def test_writes_over_the_socket_are_refused_and_change_nothing(owner: Home, forwarded: RemoteQueries):
    for statement in ("DROP TABLE jobs_archive", "INSERT INTO jobs_archive (job_id) VALUES ('x')",
                      "SELECT 1; DROP TABLE jobs_archive", "SELECT * FROM file('/etc/passwd')",
                      "SELECT * FROM `file`('/etc/passwd')", "SELECT * FROM system.processes"):
        with pytest.raises(QueryRefused):
            forwarded.run(statement)
    # a raw client, not ours: the owner's guard, not the client's, refuses it; the old raw query op is gone
    for request in ({"op": "run", "sql": "DROP TABLE jobs_archive"},
                    {"op": "query", "sql": "SELECT 1", "whole": True, "limits": None}):
        with socket.socket(socket.AF_UNIX) as raw, raw.makefile("rb") as incoming, raw.makefile("wb") as outgoing:
            raw.connect(str(owner.socket))
            wire.send(outgoing, {"v": wire.VERSION, **request})
            answer = wire.receive(incoming)
        assert answer["ok"] is False
    cli = owner.run("query", "DROP TABLE jobs_archive")
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1 and cli.stderr.startswith("archives: ")
    assert owner.count("SELECT toUInt64(count() >= 300) AS n FROM jobs_archive") == 1


def test_the_owner_sets_the_limits_and_a_console_may_only_lower_them(forwarded: RemoteQueries):
    sql = "SELECT number FROM system.numbers LIMIT 100000"
    stats = QueryStats()
    cut = forwarded.run(sql, limits=Limits(max_result_rows=5, cut_results=True), stats=stats).reader.read_all()
    assert cut.num_rows == 5
    with pytest.raises(QueryError, match=r"query\.max_result_rows"):
        forwarded.run(sql, limits=Limits(max_result_rows=5, cut_results=False)).reader.read_all()
    with pytest.raises(QueryError, match=r"query\.max_rows_to_read"):
        forwarded.run("SELECT sum(number) FROM (SELECT number FROM system.numbers LIMIT 1000000)",
                      limits=Limits(max_rows_to_read=1000)).reader.read_all()
    with pytest.raises(QueryError, match=r"query\.max_rows_to_read"):  # the owner's query.max_rows_to_read: 5M
        forwarded.run("SELECT count() FROM numbers(6000000)",
                      limits=Limits(max_rows_to_read=10**12)).reader.read_all()
    stats = QueryStats()
    reader = forwarded.run(sql, stats=stats, batch_rows=10_000).reader
    sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 100_000 and max(sizes) <= 10_000 and len(sizes) >= 10
    assert stats.rows_read >= 100_000
    empty = forwarded.run("SELECT job_id, retries FROM jobs_archive WHERE job_id = 'none'").reader.read_all()
    assert empty.num_rows == 0 and empty.column_names == ["job_id", "retries"]
    table = forwarded.catalog().table("jobs_archive")
    assert table is not None and "job_id" in [c.name for c in table.columns]


def test_a_forwarded_runaway_query_is_cancelled_and_the_owner_stops_it(owner: Home, forwarded: RemoteQueries):
    execution = Execution(forwarded, RUNAWAY)
    wait_for(lambda: owner_busy(owner), 30, "the runaway query to run in the owner")
    started = time.monotonic()
    execution.cancel()
    with pytest.raises(QueryCancelled):
        execution.wait(10)
    assert time.monotonic() - started < 5
    assert forwarded.cancel(execution.query_id) is False  # nothing runs under its id any more
    wait_for(lambda: not owner_busy(owner), 10, "the owner's engine to stop")


def test_ctrl_c_on_a_forwarded_query_stops_the_owners_engine(owner: Home):
    query = owner.start("query", RUNAWAY)
    try:
        wait_for(lambda: owner_busy(owner), 60, "the runaway query to run in the owner")
        started = time.monotonic()
        query.send_signal(signal.SIGINT)
        _, err = query.communicate(timeout=15)
    finally:
        if query.poll() is None:
            query.kill()
    assert query.returncode == 130 and "cancelled" in err and "Traceback" not in err
    assert time.monotonic() - started < 10
    wait_for(lambda: not owner_busy(owner), 10, "the owner to stop the query")


def test_a_client_that_hangs_up_makes_the_owner_stop(forwarded: RemoteQueries, owner: Home):
    reader = forwarded.run("SELECT number FROM system.numbers", query_id="hangs-up-mid-stream",
                           batch_rows=1000).reader
    assert reader.read_next_batch().num_rows == 1000
    del reader  # the reader's connection goes with it
    wait_for(lambda: forwarded.cancel("hangs-up-mid-stream") is False, 5, "the owner to abandon the stream")

    raw = socket.socket(socket.AF_UNIX)  # a client killed while its query has sent nothing yet
    raw.connect(str(owner.socket))
    with raw.makefile("wb") as outgoing:
        wire.send(outgoing, {"v": wire.VERSION, "op": "run", "sql": RUNAWAY, "query_id": "hangs-up-early"})
    wait_for(lambda: owner_busy(owner), 10, "the query to start")
    raw.close()
    wait_for(lambda: not owner_busy(owner), 10, "the owner to stop the query")


def test_hostile_frames_cost_the_owner_nothing(owner: Home, forwarded: RemoteQueries):
    """An announced length past the request cap is refused before it is read; connections past the cap
    are told so; the owner answers the next console as before."""
    with socket.socket(socket.AF_UNIX) as raw:  # a 60 MiB frame announced: let go before it is read
        raw.connect(str(owner.socket))
        raw.sendall((60 << 20).to_bytes(4, "big") + b"{" * 1000)
        raw.settimeout(5)
        assert raw.recv(1) == b""
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):  # consoles holding unfinished frames
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(str(owner.socket))
            raw.sendall((1000).to_bytes(4, "big") + b"{" * 10)
            held.append(raw)
        time.sleep(0.5)
        with socket.socket(socket.AF_UNIX) as extra, extra.makefile("rb") as incoming:
            extra.connect(str(owner.socket))
            assert "consoles already" in wire.receive(incoming)["error"]
    finally:
        for raw in held:
            raw.close()
    time.sleep(0.5)
    assert psutil.Process(owner.exporter.pid).memory_info().rss < 2 << 30
    assert forwarded.run("SELECT 41 + 1 AS n").reader.read_all().column(0)[0].as_py() == 42


def test_a_dead_owners_socket_is_passed_over_and_replaced(tmp_path: Path):
    home = Home(tmp_path)
    try:
        home.seed(40, seed=9)
        exporter = home.start_exporter()
        wait_for(lambda: home.count() == 40, 60, "the export")
        first = home.socket.stat().st_ino
        exporter.kill()  # SIGKILL: the socket file stays behind, nobody listens on it
        exporter.communicate()
        assert home.socket.is_socket() and RemoteQueries.reach(home.socket) is None
        assert home.count() == 40  # opened the store itself
        home.start_exporter()
        assert home.socket.stat().st_ino != first
        assert home.count() == 40  # through the new owner: the store is held, opening it would fail
    finally:
        home.stop()
    assert not home.socket.exists(), "the exporter left its socket behind on a clean stop"


def test_an_owner_that_answers_no_queries_leaves_the_store_busy(tmp_path: Path):
    """An exporter of an earlier version holds the store and has no socket: one sentence, as before."""
    home = Home(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom exporter.engine.chdb import ChdbBackend\n"
                               f"ChdbBackend({str(home.data / 'warm')!r})\nprint('held', flush=True)\ntime.sleep(120)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        stale = socket.socket(socket.AF_UNIX)  # and a socket file nobody listens on
        stale.bind(str(home.socket))
        stale.close()
        result = home.run("query", "SELECT 1")
    finally:
        holder.kill()
        holder.communicate()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is in use by pid" in lines[0], result.stderr


def test_a_server_replaces_a_stale_socket_and_survives_garbage(tmp_path: Path):
    path = tmp_path / "warm.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    backend = ChdbBackend(str(tmp_path / "warm"))
    server = QueryServer(LocalQueries(backend), path)
    try:
        for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x02[]"):
            with socket.socket(socket.AF_UNIX) as raw:
                raw.connect(str(path))
                raw.sendall(junk)
        with socket.socket(socket.AF_UNIX) as raw, raw.makefile("rb") as incoming, raw.makefile("wb") as outgoing:
            raw.connect(str(path))
            wire.send(outgoing, {"v": 99, "op": "ping"})
            assert f"protocol {wire.VERSION}" in wire.receive(incoming)["error"]
        forwarded = RemoteQueries.reach(path)
        assert forwarded is not None
        assert forwarded.run("SELECT 41 + 1 AS n").reader.read_all().column(0)[0].as_py() == 42
        assert forwarded.cancel("nothing-running") is False
        with pytest.raises(QueryRefused, match="query id"):
            forwarded.cancel("not an id'; DROP")
    finally:
        server.close()
        backend.close()
    assert not path.exists()
    with pytest.raises(ArchivesError, match="stopped answering"):
        forwarded.run("SELECT 1")


def test_status_reads_the_warm_tier_through_the_running_exporter(owner: Home):
    result = owner.run("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    warm = json.loads(result.stdout)["warm"]
    assert warm["state"] == "up" and warm["records"] >= JOBS and warm["bytes"] > 0


def test_a_console_cannot_raise_the_owners_limits():
    owner = Limits(max_execution_time=300.0, max_rows_to_read=5_000_000)
    asked = Limits(max_execution_time=10**9, max_rows_to_read=10**15, max_result_rows=7, block_rows=10**9)
    bounded = at_most(owner, asked)
    assert (bounded.max_execution_time, bounded.max_rows_to_read) == (300.0, 5_000_000)
    assert bounded.max_result_rows == 7 and bounded.block_rows == 65536
    assert at_most(owner, Limits(max_execution_time=5, block_rows=1000)).max_execution_time == 5
    assert at_most(owner, None) == owner
