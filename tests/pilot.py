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
