"""Against a server, queries run as the configured read-only user: the server refuses writes too,
whatever slipped past the guard, while limits (settings) still apply."""

from __future__ import annotations

import pytest

from archives_tui.cli import main
from exporter import runtime
from exporter.engine.interface import Limits
from exporter.engine.registry import open_backend
from exporter.errors import QueryError
from tests.test_outages import write_config


@pytest.fixture
def reader_config(config, url, s3_endpoint, s3_bucket):
    """A server with an S3 cold tier: the server itself serves queries (it reads S3)."""
    config = config.replace("cold", url=f"s3://{s3_bucket}/archive", endpoint_url=s3_endpoint)
    return config.replace("clickhouse", url=url, query_user="reader", query_password="reader-secret")


def test_the_query_user_reads_but_cannot_write(reader_config):
    with runtime.query_backend(reader_config) as backend:
        assert backend.query_arrow("SELECT 1 AS x", limits=Limits(max_execution_time=5)).column(0).to_pylist() == [1]
        with pytest.raises(QueryError, match=r"(?i)readonly"):
            backend.execute("CREATE TABLE written_by_reader (x UInt8) ENGINE = Memory")
    owner = open_backend(reader_config.clickhouse.url)
    try:
        assert "written_by_reader" not in owner.query_arrow("SHOW TABLES").column(0).to_pylist()
    finally:
        owner.close()


def test_the_cli_queries_as_the_reader_and_never_shows_its_password(reader_config, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", reader_config,
                               clickhouse={"query_user": "reader", "query_password": "reader-secret"})
    # the reader's password decides (system.processes, which would name the user, is closed to queries)
    assert main(["--config", str(config_file), "query", "SELECT 41 + 1 AS n", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "42"
    bad = write_config(tmp_path / "bad.yaml", reader_config,
                       clickhouse={"query_user": "reader", "query_password": "wrong-secret"})
    assert main(["--config", str(bad), "query", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "wrong-secret" not in err and err.count("\n") == 1
