"""The command line as a user runs it: exit codes, one-line errors, output formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from archives_tui.cli import main
from exporter.seed import seed_stream


@pytest.fixture
def config_file(config, tmp_path: Path) -> Path:
    path = tmp_path / "archives.yaml"
    path.write_text(yaml.safe_dump({
        "redis": {"url": config.redis.url},
        "clickhouse": {"url": config.clickhouse.url},
        "cold": {"url": config.cold.url},
        "pipeline": {"flush_interval": "1s", "batch_size": 500, "min_batch_size": 100},
    }))
    return path


def run(config_file: Path, *args: str) -> int:
    return main(["--config", str(config_file), *args])


def test_seed_export_query_status(config_file, redis_client, tmp_path, capsys):
    assert run(config_file, "seed", "--jobs", "1200", "--seed", "5") == 0
    assert "appended 1200 completions" in capsys.readouterr().out
    assert run(config_file, "export", "--once") == 0
    assert "archived 1200 records" in capsys.readouterr().out

    assert run(config_file, "query", "SELECT outcome, count() AS n FROM jobs_archive GROUP BY outcome "
               "ORDER BY n DESC", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["outcome"] == "success" and sum(r["n"] for r in rows) == 1200

    assert run(config_file, "query", "SELECT job_id, tags FROM jobs_archive ORDER BY job_id LIMIT 2",
               "--format", "jsonl") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and isinstance(json.loads(lines[0])["tags"], dict)

    assert run(config_file, "query", "SELECT queue, count() c FROM jobs_archive GROUP BY queue", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines()[0] == '"queue","c"'

    out = tmp_path / "all.parquet"
    assert run(config_file, "query", "SELECT * FROM jobs_archive", "--format", "parquet", "--output", str(out)) == 0
    assert pq.read_table(out).num_rows == 1200

    assert run(config_file, "query", "SELECT count() FROM jobs_archive") == 0
    assert "1200" in capsys.readouterr().out

    assert run(config_file, "status", "--format", "json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["stream"]["length"] == 1200 and status["stream"]["pending"] == 0
    assert status["warm"]["records"] == 1200 and status["cold"]["records"] == 1200
    assert status["exporters"][0]["archived"] == 1200 and status["last_error"] is None


def test_bad_sql_is_one_line_and_exit_2(config_file, redis_client, capsys):
    assert run(config_file, "query", "SELECT count( FROM jobs_archive") == 2
    err = capsys.readouterr().err
    assert err.startswith("archives: ") and "Syntax error" in err and err.count("\n") == 1
    assert run(config_file, "query", "SELECT nope FROM jobs_archive") == 2
    assert "nope" in capsys.readouterr().err


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("pipeline:\n  batch_size: -3\n")
    assert main(["--config", str(path), "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"archives: {path}: 'pipeline.batch_size': expected an integer >= 1, got -3"


def test_bad_arguments_exit_non_zero(config_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(config_file, "seed", "--jobs", "-5")
    assert exit_info.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err


def test_second_process_is_told_who_owns_the_embedded_store(config_file, redis_client, config):
    from exporter.engine.registry import open_backend

    owner = open_backend(config.clickhouse.url)
    try:
        result = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), "query",
                                 "SELECT 1"], capture_output=True, text=True, timeout=60)
    finally:
        owner.close()
    assert result.returncode == 2
    assert "is in use by pid" in result.stderr and "Traceback" not in result.stderr


def test_seed_then_export_via_console_script_as_readme_says(config_file, redis_client):
    seed_stream(redis_client, "completed_jobs", 300, seed=1)
    result = subprocess.run([sys.executable, "-m", "archives_tui", "--config", str(config_file), "export", "--once"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "archived 300 records" in result.stdout
