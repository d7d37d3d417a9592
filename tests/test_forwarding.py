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

import pyarrow as pa
import pytest

from exporter.engine import wire
from exporter.engine.chdb import ChdbBackend
from exporter.engine.forwarded import ForwardedBackend
from exporter.engine.interface import Limits, QueryStats
from exporter.errors import ArchivesError, QueryError
from exporter.errors import QueryRefused
from exporter.query.run import Execution, QueryCancelled
from exporter.query.serve import QueryServer

ROOT = Path(__file__).resolve().parent.parent
JOBS = 300
RUNAWAY = "SELECT count() FROM system.numbers WHERE number % 7 = 3"


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
        self.config.write_text("pipeline:\n  flush_interval: 200ms\n  consumer_name: forwarding-test\n")
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
        wait_for(lambda: self.exporter.poll() is not None or ForwardedBackend.reach(self.socket), 60,
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
def forwarded(owner: Home) -> ForwardedBackend:
    backend = ForwardedBackend.reach(owner.socket)
    assert backend is not None
    return backend


def running_in_owner(backend: ForwardedBackend, where: str) -> int:
    """How many queries matching ``where`` the owner's engine is running (this one excluded)."""
    table = backend.query_arrow("SELECT count() AS n FROM system.processes "
                                f"WHERE ({where}) AND query NOT LIKE '%system.processes%'")
    return table.column(0)[0].as_py()


def test_a_second_process_queries_while_export_runs(owner: Home):
    assert owner.count() == JOBS
    assert owner.exporter.poll() is None, "the query did not go through the running exporter"
    result = owner.run("query", "SELECT job_id, outcome FROM jobs_archive ORDER BY job_id", "--format", "csv",
                       "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '"job_id","outcome"' and len(lines) == 4
    assert all(line.split(",")[1].strip('"') in ("success", "failed", "timeout", "cancelled") for line in lines[1:])


def test_the_exporter_goes_on_archiving_while_a_forwarded_query_runs(owner: Home, forwarded: ForwardedBackend):
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


def test_writes_over_the_socket_are_refused_and_change_nothing(owner: Home, forwarded: ForwardedBackend):
    for statement in ("DROP TABLE jobs_archive", "INSERT INTO jobs_archive (job_id) VALUES ('x')",
                      "SELECT 1; DROP TABLE jobs_archive", "SELECT * FROM file('/etc/passwd')"):
        with pytest.raises(QueryRefused):
            forwarded.query_arrow(statement)
        with pytest.raises(QueryRefused):
            forwarded.query_batches(statement)
    with pytest.raises(QueryRefused, match="read-only"):
        forwarded.execute("TRUNCATE TABLE jobs_archive")
    with pytest.raises(QueryRefused, match="read-only"):
        forwarded.insert_arrow("jobs_archive", pa.table({"job_id": ["x"]}))
    # a raw client, not ours: the owner's guard, not the client's, refuses it
    with socket.socket(socket.AF_UNIX) as raw, raw.makefile("rb") as incoming, raw.makefile("wb") as outgoing:
        raw.connect(str(owner.socket))
        wire.send(outgoing, {"v": 1, "op": "query", "sql": "DROP TABLE jobs_archive", "whole": True})
        answer = wire.receive(incoming)
    assert answer["ok"] is False and answer["kind"] == "refused" and "DROP is not allowed" in answer["error"]
    cli = owner.run("query", "DROP TABLE jobs_archive")
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1 and cli.stderr.startswith("archives: ")
    assert owner.count("SELECT toUInt64(count() >= 300) AS n FROM jobs_archive") == 1


def test_limits_query_id_and_statistics_travel(forwarded: ForwardedBackend):
    sql = "SELECT number FROM system.numbers LIMIT 100000"
    stats = QueryStats()
    cut = forwarded.query_arrow(sql, limits=Limits(max_result_rows=5, cut_results=True), stats=stats)
    assert cut.num_rows == 5 and stats.rows_read > 0
    with pytest.raises(QueryError, match=r"(?i)limit for result"):
        forwarded.query_arrow(sql, limits=Limits(max_result_rows=5, cut_results=False))
    with pytest.raises(QueryError, match=r"(?i)limit for rows"):
        forwarded.query_arrow("SELECT sum(number) FROM (SELECT number FROM system.numbers LIMIT 1000000)",
                              limits=Limits(max_rows_to_read=1000))
    stats = QueryStats()
    reader = forwarded.query_batches(sql, stats=stats, batch_rows=10_000)
    sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 100_000 and max(sizes) <= 10_000 and len(sizes) >= 10
    assert stats.rows_read >= 100_000
    empty = forwarded.query_arrow("SELECT job_id, retries FROM jobs_archive WHERE job_id = 'none'")
    assert empty.num_rows == 0 and empty.column_names == ["job_id", "retries"]
    table = forwarded.catalog().table("jobs_archive")
    assert table is not None and "job_id" in [c.name for c in table.columns]


def test_a_forwarded_runaway_query_is_cancelled_and_the_owner_stops_it(owner: Home, forwarded: ForwardedBackend):
    execution = Execution(forwarded, RUNAWAY)
    wait_for(lambda: running_in_owner(forwarded, f"Settings['log_comment'] = 'archives:{execution.query_id}'"),
             30, "the runaway query to run in the owner")
    started = time.monotonic()
    execution.cancel()
    with pytest.raises(QueryCancelled):
        execution.wait(10)
    assert time.monotonic() - started < 5
    assert running_in_owner(forwarded, "query LIKE '%number % 7 = 3%'") == 0


def test_ctrl_c_on_a_forwarded_query_stops_the_owners_engine(owner: Home, forwarded: ForwardedBackend):
    query = owner.start("query", RUNAWAY)
    try:
        wait_for(lambda: running_in_owner(forwarded, "query LIKE '%number % 7 = 3%'"), 60,
                 "the runaway query to run in the owner")
        started = time.monotonic()
        query.send_signal(signal.SIGINT)
        _, err = query.communicate(timeout=15)
    finally:
        if query.poll() is None:
            query.kill()
    assert query.returncode == 130 and "cancelled" in err and "Traceback" not in err
    assert time.monotonic() - started < 10
    wait_for(lambda: running_in_owner(forwarded, "query LIKE '%number % 7 = 3%'") == 0, 5,
             "the owner to stop the query")


def test_a_client_that_hangs_up_makes_the_owner_stop(forwarded: ForwardedBackend, owner: Home):
    reader = forwarded.query_batches("SELECT number FROM system.numbers", query_id="hangs-up-mid-stream",
                                     batch_rows=1000)
    assert reader.read_next_batch().num_rows == 1000
    tag = "Settings['log_comment'] = 'archives:hangs-up-mid-stream'"
    assert running_in_owner(forwarded, tag) == 1
    del reader  # the reader's connection goes with it
    wait_for(lambda: running_in_owner(forwarded, tag) == 0, 5, "the owner to abandon the stream")

    raw = socket.socket(socket.AF_UNIX)  # a client killed while its query has sent nothing yet
    raw.connect(str(owner.socket))
    with raw.makefile("wb") as outgoing:
        wire.send(outgoing, {"v": 1, "op": "query", "sql": RUNAWAY, "query_id": "hangs-up-early"})
    tag = "Settings['log_comment'] = 'archives:hangs-up-early'"
    wait_for(lambda: running_in_owner(forwarded, tag), 10, "the query to start")
    raw.close()
    wait_for(lambda: running_in_owner(forwarded, tag) == 0, 5, "the owner to stop the query")


def test_a_dead_owners_socket_is_passed_over_and_replaced(tmp_path: Path):
    home = Home(tmp_path)
    try:
        home.seed(40, seed=9)
        exporter = home.start_exporter()
        wait_for(lambda: home.count() == 40, 60, "the export")
        first = home.socket.stat().st_ino
        exporter.kill()  # SIGKILL: the socket file stays behind, nobody listens on it
        exporter.communicate()
        assert home.socket.is_socket() and ForwardedBackend.reach(home.socket) is None
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
    server = QueryServer(backend, path)
    try:
        for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x03abc", b"\x00\x00\x00\x02[]"):
            with socket.socket(socket.AF_UNIX) as raw:
                raw.connect(str(path))
                raw.sendall(junk)
        with socket.socket(socket.AF_UNIX) as raw, raw.makefile("rb") as incoming, raw.makefile("wb") as outgoing:
            raw.connect(str(path))
            wire.send(outgoing, {"v": 99, "op": "ping"})
            assert "protocol 1" in wire.receive(incoming)["error"]
        forwarded = ForwardedBackend.reach(path)
        assert forwarded is not None
        assert forwarded.query_arrow("SELECT 41 + 1 AS n").column(0)[0].as_py() == 42
        assert forwarded.cancel("nothing-running") is False
        with pytest.raises(QueryRefused, match="query id"):
            forwarded.cancel("not an id'; DROP")
    finally:
        server.close()
        backend.close()
    assert not path.exists()
    with pytest.raises(ArchivesError, match="stopped answering"):
        forwarded.query_arrow("SELECT 1")


def test_status_reads_the_warm_tier_through_the_running_exporter(owner: Home):
    result = owner.run("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    warm = json.loads(result.stdout)["warm"]
    assert warm["state"] == "up" and warm["records"] >= JOBS and warm["bytes"] > 0
