"""The console is read-only: statements are judged before anything reaches the engine, and a refused
one changes nothing."""

from __future__ import annotations

import pytest

from archives_tui.cli import main
from exporter.query.guard import QueryRefused, check
from exporter.query.run import run_query
from exporter.seed import seed_stream
from tests.test_outages import write_config

REFUSED = {
    "DROP TABLE jobs_archive": "DROP is not allowed",
    "drop table jobs_archive": "DROP is not allowed",
    "TRUNCATE TABLE jobs_archive": "TRUNCATE is not allowed",
    "ALTER TABLE jobs_archive DELETE WHERE 1": "ALTER is not allowed",
    "INSERT INTO jobs_archive (job_id) VALUES ('x')": "INSERT is not allowed",
    "CREATE TABLE x (a UInt8) ENGINE = Memory": "CREATE is not allowed",
    "SET readonly = 0": "SET is not allowed",
    "SELECT 1 SETTINGS readonly = 0": "the setting readonly is not allowed",
    "SELECT count() FROM jobs_archive SETTINGS max_threads = 2, max_execution_time = 9999":
        "the setting max_execution_time is not allowed",
    "INSERT INTO FUNCTION file('out.csv') SELECT 1": "INSERT is not allowed",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')": "file() reaches outside the archive",
    "SELECT file('/etc/hostname')": "file() reaches outside the archive",
    "SELECT * FROM url('http://127.0.0.1:1/x', CSV)": "url() reaches outside the archive",
    "SELECT * FROM remote('127.0.0.1', system.one)": "remote() reaches outside the archive",
    "SELECT * FROM Python(archives_batch)": "Python() reaches outside the archive",
    "SELECT * FROM s3('http://x/y.parquet')": "s3() reaches outside the archive",
    "DESCRIBE TABLE file('/etc/passwd')": "file() reaches outside the archive",
    "SELECT 1 INTO OUTFILE '/tmp/x.csv'": "INTO OUTFILE writes a file",
    "SELECT 1; DROP TABLE jobs_archive": "one statement per run",
    "SELECT 1;\nSELECT 2;": "one statement per run",
    "/* SELECT */ DROP TABLE jobs_archive": "DROP is not allowed",
    "-- SELECT\nDROP TABLE jobs_archive": "DROP is not allowed",
    "/* nested /* SELECT */ still a comment */ DROP TABLE jobs_archive": "DROP is not allowed",
    "SELECT 'unterminated": "unterminated string",
    "SELECT 1 /* never closed": "unterminated /* comment",
    "   ;  ": "the query is empty",
}

ALLOWED = {
    "SELECT count() FROM jobs_archive;": "SELECT",
    "  with t as (select 1 as x) select x from t": "WITH",
    "EXPLAIN SELECT 1": "EXPLAIN",
    "SHOW TABLES": "SHOW",
    "DESC jobs_archive": "DESCRIBE",
    "EXISTS TABLE jobs_archive": "EXISTS",
    "SELECT 'DROP TABLE x; file(1)' AS text, `create` FROM t": "SELECT",
    "SELECT count() FROM jobs_archive -- ; DROP TABLE x": "SELECT",
    "SELECT 1 SETTINGS max_threads = 2, use_query_cache = 1": "SELECT",
    "SELECT profile FROM t WHERE name = 'file('": "SELECT",
}


@pytest.mark.parametrize(("sql", "reason"), list(REFUSED.items()))
def test_refused_with_one_sentence(sql, reason):
    with pytest.raises(QueryRefused) as refused:
        check(sql)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(("sql", "kind"), list(ALLOWED.items()))
def test_read_only_statements_pass(sql, kind):
    statement = check(sql)
    assert statement.kind == kind and not statement.sql.endswith(";")


def test_refused_statements_change_nothing_and_never_reach_the_engine(warm, tmp_path):
    marker = tmp_path / "written.csv"
    warm.backend.insert_arrow("jobs_archive", warm.backend.query_arrow(
        "SELECT 'j1' AS job_id, 'q' AS queue, now64(3) AS enqueue_time, 'success' AS outcome"))
    for sql in [*REFUSED, f"SELECT 1 INTO OUTFILE '{marker}'", f"INSERT INTO FUNCTION file('{marker}') SELECT 1"]:
        with pytest.raises(QueryRefused):
            run_query(warm.backend, sql)
    assert warm.backend.query_arrow("SELECT count() AS n FROM jobs_archive").column(0).to_pylist() == [1]
    assert not marker.exists()


def test_the_cli_refuses_with_exit_2_and_the_archive_survives(config, redis_client, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    seed_stream(redis_client, "completed_jobs", 50, seed=1)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    assert main(["--config", str(config_file), "query", "DROP TABLE jobs_archive"]) == 2
    assert "archives: the archive is read-only here: DROP is not allowed" in capsys.readouterr().err
    assert main(["--config", str(config_file), "query", "SELECT count() AS n FROM jobs_archive", "--format",
                 "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "50"
