"""A server whose cold tier is local files: a scratch local engine reaches the server with remote().

Debian's 18.16 server is too old for chdb's remote() (and for the warm schema), so what runs here is
the failure path: one sentence naming the server, never its password, and nothing left behind.
"""

from __future__ import annotations

from archives_tui.cli import main
from tests.test_outages import write_config


def test_an_unreachable_remote_warm_tier_is_one_sentence_without_the_password(config, url, tmp_path, capsys,
                                                                             private_data_home):
    config_file = write_config(tmp_path / "archives.yaml", config, clickhouse={
        "url": url, "query_user": "reader", "query_password": "reader-secret"})
    assert main(["--config", str(config_file), "query", "SELECT count() FROM jobs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archives: cannot reach the warm tier (ClickHouse server 127.0.0.1:") and err.count("\n") == 1
    assert "reader-secret" not in err
    scratch = list(private_data_home.rglob("query-*"))
    assert scratch == []
