"""Every query is remembered (text, start, time, rows, error) owner-only and bounded; favorites by name;
search over both; the history can be purged."""

from __future__ import annotations

import json
import stat

from archives_tui.cli import main
from exporter.embedded import data_dir
from exporter.query.history import HistoryEntry, QueryHistory
from tests.test_outages import write_config


def test_queries_are_remembered_with_their_outcome(config, tmp_path, capsys):
    config_file = write_config(tmp_path / "archives.yaml", config)
    run = ["--config", str(config_file)]
    assert main([*run, "query", "SELECT number FROM numbers(3)", "--save-as", "three"]) == 0
    assert main([*run, "query", "SELECT count() FROM jobs_archive"]) == 0
    assert main([*run, "query", "DROP TABLE jobs_archive"]) == 2
    assert main([*run, "query", "SELECT nope FROM jobs_archive"]) == 2
    capsys.readouterr()

    assert main([*run, "history", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["sql"] for e in entries] == ["SELECT nope FROM jobs_archive", "DROP TABLE jobs_archive",
                                           "SELECT count() FROM jobs_archive", "SELECT number FROM numbers(3)"]
    assert entries[3]["rows"] == 3 and entries[3]["error"] is None and entries[3]["tiers"] == ""
    assert entries[2]["tiers"] == "warm"
    assert "DROP is not allowed" in entries[1]["error"] and "nope" in entries[0]["error"]

    assert main([*run, "history", "--search", "numbers", "--format", "json"]) == 0
    assert [e["sql"] for e in json.loads(capsys.readouterr().out)] == ["SELECT number FROM numbers(3)"]
    assert main([*run, "history", "--favorites", "--search", "THREE", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "three", "sql": "SELECT number FROM numbers(3)"}]

    files = [data_dir() / "history.jsonl", data_dir() / "favorites.json"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(data_dir().stat().st_mode) == 0o700

    assert main([*run, "history", "--purge"]) == 0
    assert "forgot 4 queries" in capsys.readouterr().out
    assert QueryHistory(data_dir()).entries() == [] and QueryHistory(data_dir()).favorites() == {
        "three": "SELECT number FROM numbers(3)"}


def test_the_history_stays_bounded_and_keeps_the_newest(tmp_path):
    history = QueryHistory(tmp_path / "h", max_bytes=20_000)
    for i in range(1000):
        history.record(HistoryEntry(f"SELECT {i} -- " + "x" * 50, started_at=i, elapsed=0.01, rows=1))
    entries = history.entries()
    assert (tmp_path / "h" / "history.jsonl").stat().st_size <= 20_000
    assert entries[0].sql.startswith("SELECT 999 ") and 20 < len(entries) < 1000
    assert [e.started_at for e in entries] == sorted((e.started_at for e in entries), reverse=True)


def test_a_line_cut_by_a_crash_is_skipped(tmp_path):
    history = QueryHistory(tmp_path)
    history.record(HistoryEntry("SELECT 1", 1.0, 0.1, rows=1))
    with open(history.path, "ab") as handle:
        handle.write(b'{"sql": "SELECT 2", "star')
    history.record(HistoryEntry("SELECT 3", 3.0, 0.1, rows=1))
    assert [e.sql for e in history.entries()] == ["SELECT 3", "SELECT 1"]
