"""The console is read-only: statements are judged on the engine's own parse before anything runs them,
and a refused one changes nothing, reads nothing, writes nothing and connects nowhere.

The hostile table grows with every bypass found; each spelling below is one an attacker would try.
"""

from __future__ import annotations

import itertools
import socket
import threading
from pathlib import Path

import pytest

from archives_tui.cli import main
from exporter.errors import QueryError, QueryRefused
from exporter.query.allowlist import LIST, generate
from exporter.query.guard import TABLE_FUNCTIONS
from exporter.query.layer import LocalQueries
from exporter.query.run import run_query
from exporter.seed import seed_stream
from tests.test_outages import write_config


class Listener:
    """A local TCP listener that counts connections: a refused url() must make none."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture
def listener():
    found = Listener()
    yield found
    found.close()


@pytest.fixture
def queries(warm):
    warm.backend.execute("INSERT INTO jobs_archive (job_id, queue, enqueue_time, outcome) "
                         "SELECT 'j1', 'q', now64(3), 'success'")
    layer = LocalQueries(warm.backend)
    yield layer
    layer.close()


def attacks(port: int, marker: Path) -> list[str]:
    """Each way in, in each place a function can stand, each wrapped as EXPLAIN and DESCRIBE too."""
    names = ["file", "`file`", '"file"', "FILE", "fIlE", "`fi``le`"]
    tables = [f"{n}('/etc/hostname', 'LineAsString')" for n in names] + [
        f"{n}('http://127.0.0.1:{port}/x', 'CSV', 'a String')" for n in ("url", "`url`", '"url"', "URL")] + [
        f"bigquery('p', 'd', 't', base_url = 'http://127.0.0.1:{port}')",
        f"deltaLakeS3('http://127.0.0.1:{port}/b/')", f"s3('http://127.0.0.1:{port}/b/x.csv')",
        f"remote('127.0.0.1:{port}', system.one)", "executable('id', 'TSV', 'x String')",
        "merge('system', '.*')", "Python(archives_batch)", "mergeTreeIndex(default, jobs_archive)"]
    scalars = ["file('/etc/hostname')", "`file`('/etc/hostname')", '"file"(\'/etc/hostname\')',
               "getServerSetting('path')", "getSetting('readonly')", "hostName()", "currentUser()",
               "dictGet('d', 'a', 1)", "hasColumnInTable('127.0.0.1', 'system', 'one', 'dummy')", "sleep(3)",
               "fileIf('/etc/hostname', 1)", "`getServerSetting`('path')"]
    places = [
        "SELECT * FROM {t}", "SELECT * FROM (SELECT * FROM {t})", "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
        "SELECT * FROM jobs_archive AS j JOIN {t} AS f ON 1", "SELECT 1 WHERE 1 IN (SELECT * FROM {t})",
        "SELECT (SELECT count() FROM {t})", "SELECT 1 UNION ALL SELECT * FROM {t}",
    ]
    scalar_places = ["SELECT {s}", "SELECT job_id, {s} AS x FROM jobs_archive", "SELECT 1 WHERE {s} != ''",
                     "WITH {s} AS x SELECT x", "SELECT * FROM jobs_archive ORDER BY {s}",
                     "SELECT count() FROM jobs_archive GROUP BY {s}"]
    plain = [p.format(t=t) for p, t in itertools.product(places, tables)]
    plain += [p.format(s=s) for p, s in itertools.product(scalar_places, scalars)]
    wrapped = [w.format(q=q) for q in plain for w in ("{q}", "EXPLAIN {q}", "EXPLAIN AST {q}",
                                                      "EXPLAIN PIPELINE {q}", "DESCRIBE ({q})")]
    return [*wrapped,
        f"SELECT 1 INTO OUTFILE '{marker}'", f"SELECT 1 INTO OUTFILE '{marker}' FORMAT CSV",
        f"INSERT INTO FUNCTION file('{marker}') SELECT 1", "SELECT 1 FORMAT JSON", "SELECT 1 FORMAT `Null`",
        "SELECT 1 SETTINGS readonly = 0", 'SELECT 1 SETTINGS "readonly" = 0', "SELECT 1 SETTINGS `readonly` = 0",
        "SELECT 1 SETTINGS max_threads = 1, readonly = 0", "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
        "SELECT 1 SETTINGS max_execution_time = 99999", "SELECT 1 SETTINGS allow_experimental_eval_table_function = 1",
        "EXPLAIN readonly = 0 SELECT 1", "SET readonly = 0", "SET max_execution_time = 0",
        "SELECT 1; SELECT * FROM file('/etc/hostname')", "EXPLAIN AST SELECT 1; SELECT * FROM file('/etc/hostname')",
        "SELECT 1;\nDROP TABLE jobs_archive", "SELECT 1\x00", "SELECT 1 /* \x00 */; DROP TABLE jobs_archive",
        "DROP TABLE jobs_archive", "drop table jobs_archive", "TRUNCATE TABLE jobs_archive",
        "ALTER TABLE jobs_archive DELETE WHERE 1", "INSERT INTO jobs_archive (job_id) VALUES ('x')",
        "CREATE TABLE x (a UInt8) ENGINE = Memory", "/* SELECT */ DROP TABLE jobs_archive",
        "-- SELECT\nDROP TABLE jobs_archive", "/* nested /* SELECT */ still a comment */ DROP TABLE jobs_archive",
        "# SELECT\nDROP TABLE jobs_archive", "EXPLAIN AST INSERT INTO jobs_archive (job_id) VALUES ('x')",
        "EXPLAIN AST DROP TABLE jobs_archive", "DESCRIBE TABLE url('http://127.0.0.1:1/x', CSV)",
        "SELECT * FROM system.processes", "SELECT * FROM system.tables", "SELECT * FROM system.query_log",
        "SELECT create_table_query FROM system.tables", "SELECT 1 WHERE 'x' IN system.processes",
        "SELECT * FROM information_schema.tables", "SHOW CREATE TABLE jobs_cold", "SHOW PROCESSLIST",
        "SHOW SETTINGS LIKE '%'", "SHOW GRANTS", "SHOW USERS",
        "SELECT * APPLY(file) FROM (SELECT '/etc/hostname' AS p)",
        "SELECT 1 AS `a\nFunction file`", 'SELECT 1 AS "x\nTableIdentifier system.processes"',
        "SELECT count() FROM jobs_cold_hours(days = '../../../../etc')",
        "SELECT count() FROM jobs_cold_hours(days = '*/*/*/../../x')",
        "SELECT count() FROM jobs_cold_hours(days = concat('year=2026', '/../..'))",
        "SELECT * FROM view(SELECT * FROM file('/etc/hostname'))",
        "SELECT * FROM numbers(1) AS n JOIN view(SELECT file('/etc/hostname') AS f) AS v ON 1",
        "SELECT {p:String}", "WITH (SELECT getServerSetting('path')) AS p SELECT p",
        "SELECT arrayMap(x -> file(x), ['/etc/hostname'])",
        "SELECT 1 FROM jobs_archive WINDOW w AS (ORDER BY file('x'))",
        "SELECT " + "(" * 5000 + "1" + ")" * 5000, "SELECT '" + "x" * (1 << 20) + "'",
        "SELECT $a$" * 20000, "SELECT 'unterminated", "SELECT 1 /* never closed", "   ;  ",
        # injected after the prefixes the owner wraps a statement in (unhex('...'), DESCRIBE (...), FROM (...))
        "') AS q SETTINGS readonly = 0 --", "1')) AS q; SELECT * FROM file('/etc/hostname') --",
        "SELECT 1) SETTINGS readonly = 0 --", "SELECT 1) UNION ALL SELECT * FROM file('/etc/hostname') -- ",
        "SELECT 1 FROM jobs_archive) AS t, file('/etc/hostname') AS f --",
    ]


def interleave(sql: str, filler: str) -> str:
    """``filler`` between every two tokens the engine reads (it is whitespace or a comment there)."""
    from exporter.query.lexer import lex

    return filler.join(t.text for t in lex(sql) if t.kind != "space")


def test_every_hostile_statement_is_refused_and_harmless(queries, listener, tmp_path):
    marker = tmp_path / "written.csv"
    table = attacks(listener.port, marker)
    variants = table + [interleave(sql, filler) for sql in table[:400:7]
                        for filler in (" /* c */ ", "\u200b", "\ufeff", "\u2060", " --\n", "\u3000")]
    passed = []
    for sql in variants:
        try:
            queries.run(sql)
        except QueryError as exc:  # refused, or a statement the engine could not even parse
            assert "\n" not in str(exc), sql
            continue
        passed.append(sql)
    assert passed == []
    assert listener.connections == 0 and not marker.exists()
    assert queries.backend.query_arrow("SELECT count() AS n FROM jobs_archive").column(0).to_pylist() == [1]


def test_refusals_are_one_sentence_that_names_the_thing(queries):
    said = {
        "SELECT * FROM `file`('/etc/hostname', 'LineAsString')": "table function file() is not allowed",
        "SELECT getServerSetting('path')": "getServerSetting() is not allowed",
        "SELECT\u200bfile('x')": "U+200B",
        "SELECT 1 SETTINGS readonly = 0": "the setting readonly is not allowed",
        "SELECT 1 INTO OUTFILE '/tmp/x'": "INTO OUTFILE writes a file",
        "SELECT 1 FORMAT JSON": "FORMAT is chosen by the console",
        "SELECT 1; SELECT 2": "one statement per run",
        "DROP TABLE jobs_archive": "DROP is not allowed",
        "SELECT * FROM system.processes": "system.processes is not open",
        "SHOW PROCESSLIST": "SHOW PROCESSLIST is not allowed",
        "SELECT * APPLY(file) FROM t": "APPLY is not allowed",
        "SELECT 1 AS `a\nb`": "U+000A",
        "SELECT 'unterminated": "unterminated string",
        "SELECT '" + "x" * (1 << 20) + "'": "query.max_statement_bytes",
        "   ;  ": "the query is empty",
    }
    for sql, reason in said.items():
        with pytest.raises(QueryRefused) as refused:
            queries.run(sql)
        assert reason in str(refused.value) and "\n" not in str(refused.value), (sql, str(refused.value))


ALLOWED = [
    "SELECT 'a;b' AS x, count() FROM jobs_archive",
    "SELECT outcome FROM jobs_archive -- note",
    "SELECT count() FROM jobs_archive;",
    "  with t as (select 1 as x) select x from t",
    "EXPLAIN SELECT 1", "EXPLAIN indexes = 1 SELECT count() FROM jobs_archive", "EXPLAIN AST SELECT 1",
    "SHOW TABLES", "DESC jobs_archive", "EXISTS TABLE jobs_archive",
    "SELECT 'DROP TABLE x; file(1)' AS text, `outcome` FROM jobs_archive",
    "SELECT 1 SETTINGS max_threads = 2, use_query_cache = 0",
    "SELECT COUNT(DISTINCT queue), countIf(outcome = 'failed'), uniqExactIf(job_id, retries > 0) FROM jobs_archive",
    "SELECT quantile(0.95)(dateDiff('millisecond', start_time, end_time)) FROM jobs_archive",
    "SELECT sum(rows) FROM system.parts WHERE active AND database = currentDatabase()",
    "SELECT arrayMap(x -> x + 1, [1, 2]) AS a, $$heredoc; with a semicolon$$ AS h",
    "SELECT * FROM numbers(3)", "SELECT error_msg FROM jobs_archive WHERE error_msg LIKE '%\u200b%'",
]
JUDGED_ONLY = ["DESCRIBE TABLE jobs", "SELECT count() FROM jobs_cold_hours(days = 'year=2026/month=01/day=02')",
               "SELECT count() FROM jobs_cold_hours(days = '{year=2026/month=01/day=02,year=2026/month=01/day=03}')"]


@pytest.mark.parametrize("sql", ALLOWED)
def test_read_only_statements_run(queries, sql):
    assert queries.run(sql).reader.read_all().num_columns >= 1


@pytest.mark.parametrize("sql", JUDGED_ONLY)
def test_the_archive_s_own_views_pass(queries, sql):
    assert queries.judge(sql).kind in ("SELECT", "DESCRIBE")


def test_every_table_function_of_the_engine_is_refused_unless_allowed_by_name(queries):
    names = queries.backend.query_arrow("SELECT name FROM system.table_functions").column(0).to_pylist()
    assert len(names) > 50
    refused = 0
    for name in names:
        if name in TABLE_FUNCTIONS:
            continue
        quoted = "`" + name.replace("`", "``") + "`"
        with pytest.raises(QueryError) as stopped:  # refused, or (view, input) not even parsed with a string
            queries.judge(f"SELECT * FROM {quoted}('x')")
        refused += isinstance(stopped.value, QueryRefused)
    assert refused >= len(names) - len(TABLE_FUNCTIONS) - 3


def test_the_function_list_is_the_engine_s_own(queries):
    """An engine upgrade that adds or removes a function fails here until the list is regenerated
    (python -m exporter.query.allowlist) and its difference read."""
    assert generate(queries.backend) == LIST.read_text(encoding="utf-8")


def test_the_cli_refuses_with_exit_2_and_the_archive_survives(config, redis_client, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    seed_stream(redis_client, "completed_jobs", 50, seed=1)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    for sql in ("DROP TABLE jobs_archive", "SELECT * FROM `file`('/etc/hostname', 'LineAsString')",
                "SELECT * FROM \"file\"('/etc/hostname', 'LineAsString')"):
        assert main(["--config", str(config_file), "query", sql]) == 2
        assert capsys.readouterr().err.startswith("archives: ")
    assert main(["--config", str(config_file), "query", "SELECT 'a;b' AS x, count() AS n FROM jobs -- note",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == '"a;b",50'


def test_run_query_is_the_guarded_path(queries):
    with pytest.raises(QueryRefused):
        run_query(queries, "SELECT file('/etc/hostname')")
    assert run_query(queries, "SELECT count() AS n FROM jobs_archive").column(0).to_pylist() == [1]
