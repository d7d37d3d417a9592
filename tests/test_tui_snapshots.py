"""What each screen of the dashboard looks like at 160x45, 100x35, 80x24 and 70x30, as SVG snapshots
(pytest-textual-snapshot). The app runs without its background work, on fixed figures, the catalog of
a real store and a fixed result, so a screen renders the same on every run: a snapshot changes only when
the layout does. `pytest --snapshot-update` rewrites them after a deliberate change (look at them first:
`tests/__snapshots__/`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from archives_tui.app import ArchivesApp
from archives_tui.background import Snapshot
from archives_tui.panels import QueryPanel
from archives_tui.schema_panel import SchemaPanel
from archives_tui.status_panel import StatusPanel
from exporter import runtime
from exporter.engine.interface import QueryStats
from exporter.query.run import QueryResult
from exporter.query.templates import available, catalog
from exporter.schema_registry import SchemaRegistry
from tests.pilot import until

TAKEN = datetime(2026, 11, 28, 14, 30, tzinfo=UTC).timestamp()
SHOT = Snapshot(
    taken=TAKEN,
    exporter={"running": True, "stopped_by": None, "archived": 1_204_332, "batches": 1_204,
              "last_batch_at": TAKEN - 2, "last_batch_records": 1_000, "last_batch_seconds": 0.046,
              "last_error": None, "last_error_at": None,
              "sink_errors": {"parquet": (TAKEN - 40, "S3 PutObject timed out after 10s")}},
    stream={"length": 48_120, "unarchived": 830, "lag_seconds": 3.0, "dlq_length": 2, "stream_bytes": 41_000_000},
    storage={"warm": {"records": 1_204_000, "bytes": 112_000_000, "oldest": "2026-10-30", "newest": "2026-11-28"},
             "cold": {"files": 742, "bytes": 121_000_000, "age": 12.0}},
    rates=[180.0, 220.0, 240.0, 90.0, 310.0, 260.0, 200.0, 230.0, 250.0, 270.0, 240.0, 205.0],
    last_retention={"started_at": TAKEN - 1_800, "tiers": [{"refused": []}]},
    events=["14:29:01 INFO exporting completed_jobs as sre-1",
            "14:29:50 WARNING parquet failed (attempt 1): S3 PutObject timed out after 10s"],
    figures={"today": 84_211, "failed_hour": 312, "success_today": 92.4, "p95_hour": 5_874.0, "warm_rows": 1_204_000},
    breakers={"redis": "closed", "clickhouse": "closed", "parquet": "closed"},
)
RESULT = QueryResult(
    table=pa.table({"queue": ["payments", "emails", "reports", "webhooks"] * 3,
                    "outcome": ["success"] * 4 + ["failed"] * 4 + ["timeout"] * 4,
                    "jobs": [2941, 2828, 2880, 2878, 152, 155, 149, 145, 42, 50, 60, 45]}),
    rows=12, tiers=("warm", "cold"), elapsed=0.113, stats=QueryStats(48_120, 1_860_000))
SIZES = {"wide": (160, 45), "medium": (100, 35), "narrow80": (80, 24), "narrow70": (70, 30)}


@pytest.fixture(scope="module")
def store_catalog(tmp_path_factory, redis_url):
    """The tables a real store has (opened once: chdb is slow to start)."""
    from exporter.config import Config

    base = tmp_path_factory.mktemp("snapshot-store")
    config = Config().replace("redis", url=redis_url).replace(
        "clickhouse", url=f"chdb://{base}/warm").replace("cold", url=f"file://{base}/cold")
    archive = runtime.Archive.open(config)
    try:
        return catalog(archive.warm.backend)
    finally:
        archive.close()


class StillApp(ArchivesApp):
    """The dashboard on fixed figures, catalog and result instead of its background work."""

    def __init__(self, config, found) -> None:
        super().__init__(config)
        self.found = found
        self.animation_level = "none"  # a scroll into view lands at once: nothing moves while the shot is taken

    def start_background(self) -> None:
        self.query_one(StatusPanel).show(SHOT, self.config.retention)
        self.query_one(SchemaPanel).show(self.found, available(()), SchemaRegistry.default(), {"1.0.0": 1_204_000})


def still(config, found, *keys: str):
    async def before(pilot) -> None:
        width = pilot.app.size.width
        layout = "-wide" if width >= 120 else "-medium" if width > 80 else "-narrow"
        await until(pilot, lambda: pilot.app.screen.has_class(layout), timeout=10)  # the width's layout first
        await pilot.app.query_one(QueryPanel).show(RESULT)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        for typed in pilot.app.screen.query("Input, TextArea"):
            typed.cursor_blink = False  # the cursor shows, steadily
        await pilot.wait_for_scheduled_animations()
        await settled(pilot)

    return StillApp(config, found), before


async def settled(pilot, timeout: float = 10.0) -> None:
    """Until two looks at the screen 0.2 s apart are the same: on a loaded machine the layout of a
    panel of fifty widgets can take more frames than a fixed pause allows."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        await pilot.pause(0.2)
        shot = pilot.app.export_screenshot()
        if shot == last:
            return
        last = shot


@pytest.mark.parametrize("size", ["wide", "medium"])
@pytest.mark.parametrize("view", ["main", "retention", "config", "full-width"])
def test_wide_and_medium_layouts(snap_compare, config, store_catalog, size, view):
    keys = {"main": (), "retention": ("ctrl+1", "r"), "config": ("f2",), "full-width": ("f9",)}[view]
    app, before = still(config, store_catalog, *keys)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", ["narrow80", "narrow70"])
@pytest.mark.parametrize("tab", [1, 2, 3, 4, 5])
def test_narrow_tabs(snap_compare, config, store_catalog, size, tab):
    app, before = still(config, store_catalog, f"ctrl+{tab}")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", ["wide", "narrow80"])
@pytest.mark.parametrize("view", ["cell", "help"])
def test_modals(snap_compare, config, store_catalog, size, view):
    keys = {"cell": ("f3", "escape", "enter"), "help": ("f1",)}[view]
    app, before = still(config, store_catalog, *keys)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)
