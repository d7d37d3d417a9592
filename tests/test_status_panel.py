"""The status cards say what is true in words and shapes, not in colour alone: a part that failed lately
or is down reads so with NO_COLOR, and the app honours NO_COLOR."""

from __future__ import annotations

import dataclasses

from archives_tui.app import ArchivesApp
from archives_tui.status_panel import destinations_text, storage_text
from exporter.config import RetentionConfig
from tests.test_tui_snapshots import SHOT, TAKEN


def line_of(text, name: str) -> str:
    return next(line for line in text.plain.splitlines() if name in line)


def test_each_destination_reads_ok_failing_or_down_without_colour():
    shown = destinations_text(SHOT)  # Parquet failed 40 s ago; the others are fine
    assert line_of(shown, "ClickHouse").startswith("● ") and line_of(shown, "Parquet").startswith("▲ ")
    assert "40s ago: S3 PutObject timed out" in shown.plain

    broken = dataclasses.replace(SHOT, breakers={**SHOT.breakers, "clickhouse": "open"},
                                 stream_down="connection refused")
    shown = destinations_text(broken)
    assert line_of(shown, "ClickHouse").startswith("✖ ") and "retrying" in line_of(shown, "ClickHouse")
    assert line_of(shown, "Redis").startswith("✖ ") and "down: connection refused" in line_of(shown, "Redis")

    old = dataclasses.replace(SHOT, taken=TAKEN + 3600)  # an error an hour old no longer marks the part
    assert line_of(destinations_text(old), "Parquet").startswith("● ")


def test_storage_says_the_cold_span_and_the_warm_windows_fill():
    cold = {**SHOT.storage["cold"], "oldest": "2026-11-01 00h", "newest": "2026-11-28 14h"}
    shown = storage_text(dataclasses.replace(SHOT, storage={**SHOT.storage, "cold": cold}), RetentionConfig())
    assert "from 2026-11-01 00h\n      to   2026-11-28 14h" in shown.plain
    assert "30/365 days" in shown.plain  # the warm tier holds 30 days of its 365-day window


def test_no_color_turns_colour_off(config, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = ArchivesApp(config)
    assert app.no_color and any(type(f).__name__ in ("Monochrome", "NoColor") for f in app.get_line_filters())
