"""What the dashboard's Pilot tests share: waiting for a condition, reading what a widget shows."""

from __future__ import annotations

import time

from textual.css.query import NoMatches
from textual.widgets import Static

from archives_tui.panels import ResultGrid


async def until(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app run until ``condition()`` holds (it fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the dashboard did not get there in time"
        await pilot.pause(0.2)


def text_of(node, selector: str) -> str:
    """The text a Static shows ("" while it is not composed yet)."""
    try:
        return str(node.query_one(selector, Static).render())
    except NoMatches:
        return ""


def results(app) -> ResultGrid:
    """The results grid now (each result mounts a new one)."""
    return app.query_one("#results", ResultGrid)


def visible(app, selector: str) -> bool:
    widget = app.query_one(selector)
    return widget.display and widget.region.width > 0


async def archived(pilot, app, at_least: int = 1) -> None:
    """Until the dashboard's exporter has archived ``at_least`` records."""
    await until(pilot, lambda: app.background is not None and app.background.pipeline.metrics.archived >= at_least)


async def quit_app(pilot, app) -> None:
    """Ctrl+Q, and until the app has stopped (the exporter finishes the batches in hand first)."""
    await pilot.press("ctrl+q")
    await until(pilot, lambda: not app.is_running, timeout=60)
