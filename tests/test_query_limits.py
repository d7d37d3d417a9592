"""Limits and cancel: a runaway query stops at a configured limit or on Ctrl-C, with one sentence, and
the engine stops working on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archives_tui.cli import main
from exporter.engine.interface import Limits
from exporter.query.layer import LocalQueries
from exporter.query.run import Execution, QueryCancelled
from tests.test_outages import ROOT, write_config

RUNAWAY = "SELECT count() FROM numbers(10000000000000)"  # the engine knows up front: refused at once
ENDLESS = "SELECT count() FROM system.numbers WHERE number % 7 = 3"  # no estimate: runs until stopped


@pytest.mark.parametrize(("limits", "sql", "sentence"), [
    ({}, RUNAWAY, "the query would read more than 10,000,000,000 rows and was stopped (query.max_rows_to_read)"),
    ({"max_execution_time": "1s"}, ENDLESS,
     "the query ran longer than 1s and was stopped (query.max_execution_time)"),
    ({"max_rows_to_read": 1000}, "SELECT count() FROM numbers(10000000)",
     "the query would read more than 1,000 rows and was stopped (query.max_rows_to_read)"),
])
def test_a_limit_hit_is_one_sentence_and_exit_2(config, tmp_path, capsys, limits, sql, sentence):
    config_file = write_config(tmp_path / "archives.yaml", config, query=limits)
    out = tmp_path / "result.csv"
    assert main(["--config", str(config_file), "query", sql, "--format", "csv", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"archives: {sentence}") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("*.part"))  # nothing half-written


def test_a_shown_result_stops_at_max_result_rows_but_an_export_streams_on(config, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config, query={"max_result_rows": 10})
    sql = "SELECT number FROM numbers(100000)"
    assert main(["--config", str(config_file), "query", sql]) == 2
    err = capsys.readouterr().err
    assert err == "archives: the result has more than 10 rows (query.max_result_rows): add a LIMIT or an aggregation\n"
    out = tmp_path / "all.csv"
    assert main(["--config", str(config_file), "query", sql, "--format", "csv", "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 100001
    assert capsys.readouterr().err.startswith(f"100,000 rows to {out} in ")


def test_cancel_stops_the_engine(warm):
    execution = Execution(LocalQueries(warm.backend), ENDLESS, Limits(max_execution_time=300))
    time.sleep(0.5)
    started = time.monotonic()
    execution.cancel()
    with pytest.raises(QueryCancelled):
        execution.wait(5)
    assert time.monotonic() - started < 5
    running = warm.backend.query_arrow("SELECT count() FROM system.processes WHERE query LIKE '%number % 7 = 3%' "
                                       "AND query NOT LIKE '%system.processes%'")
    assert running.column(0).to_pylist() == [0]


def test_ctrl_c_cancels_a_query_from_the_command_line(config, tmp_path: Path):
    config_file = write_config(tmp_path / "archives.yaml", config)
    process = subprocess.Popen([sys.executable, "-m", "archives_tui", "--config", str(config_file), "query", ENDLESS],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(3)  # started, schema in place, the query running
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "query cancelled; the engine stopped working on it" in err
    assert "Traceback" not in err
