"""EXPLAIN and formatting come from the engine, behind the same guard as every query."""

from __future__ import annotations

import pytest

from archives_tui.cli import main
from exporter.errors import QueryRefused
from exporter.query.layer import LocalQueries
from tests.test_outages import write_config


def test_explain_shows_the_indexes_a_query_uses(warm):
    warm.backend.execute("INSERT INTO jobs_archive (job_id, queue, enqueue_time, outcome) SELECT toString(number), "
                         "'payments', now64(3) - number, 'success' FROM numbers(1000)")
    queries = LocalQueries(warm.backend)
    plan = queries.explain("SELECT job_id FROM jobs_archive WHERE queue = 'payments' "
                                 "AND enqueue_time >= now() - INTERVAL 1 DAY")
    assert "ReadFromMergeTree" in plan and "PrimaryKey" in plan and "Partition" in plan
    with pytest.raises(QueryRefused, match="not allowed"):
        queries.explain("DROP TABLE jobs_archive")


def test_pretty_lays_out_without_running(warm):
    assert LocalQueries(warm.backend).pretty("select queue,count() from jobs_archive group by queue") == (
        "SELECT\n    queue,\n    count()\nFROM jobs_archive\nGROUP BY queue")


def test_cli_explain_runs_nothing(config, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "query", "--explain", "SELECT count() FROM system.numbers"]) == 0
    assert "ReadFromSystemNumbers" in capsys.readouterr().out  # an endless query, explained at once
