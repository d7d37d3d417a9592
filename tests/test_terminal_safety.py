"""Data never drives the terminal: an ``error_msg`` a producer wrote holding escape sequences, C0 and C1
control characters, a bidi override or Rich markup is shown as text by `archives query` (table), the
dashboard's results grid and its cell screen, and kept byte for byte by every export format."""

from __future__ import annotations

import asyncio
import io
import json

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from rich.style import Style
from textual.app import App
from textual.widgets import Static

from archives_tui.cli import main
from archives_tui.panels import ResultGrid
from archives_tui.render import table_text, visible
from archives_tui.screens import CellScreen
from exporter.seed import synthetic_completions
from tests.test_outages import write_config

HOSTILE = ("boom \x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x1b[0m \x9b31m c1 \r\x08 \u202eevil\u202c \u200b "
           "[reverse]x[/] [link=http://example.org]y[/link] [/]")
SHOWN = ("boom \\x1b]0;pwned\\x07 \\x1b[2J\\x1b[31mred\\x1b[0m \\x9b31m c1 \\x0d\\x08 \\u202eevil\\u202c \\u200b "
         "[reverse]x[/] [link=http://example.org]y[/link] [/]")
RAW = ("\x1b", "\x9b", "\x07", "\r", "\u202e", "\u200b")  # none of these may reach the terminal


def test_visible_escapes_what_drives_a_terminal_and_keeps_the_rest():
    assert visible(HOSTILE) == SHOWN
    kept = "tab\tand\nnewline, é, 日本語, emoji 🎉, NBSP\xa0, backslash \\x1b as written"
    assert visible(kept) == kept
    assert visible("\x00\x7f\x85\u2028\u2029\u2066\ufeff\U000e0001") == \
        "\\x00\\x7f\\x85\\u2028\\u2029\\u2066\\ufeff\\U000e0001"


@pytest.fixture
def hostile_record(config, redis_client, tmp_path):
    """A producer's failed job whose error_msg is ``HOSTILE``, archived by `archives export --once`."""
    record = orjson.loads(next(synthetic_completions(1, failure_rate=1.0, pii_rate=0.0, seed=5)))
    record["error_msg"] = HOSTILE
    redis_client.xadd("completed_jobs", {"data": orjson.dumps(record)})
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "export", "--once"]) == 0
    return config_file


def test_the_cli_table_shows_control_characters_and_markup_as_text(hostile_record, capsysbinary):
    capsysbinary.readouterr()
    assert main(["--config", str(hostile_record), "query", "SELECT error_msg AS \"[bold]msg\" FROM jobs"]) == 0
    out = capsysbinary.readouterr().out
    text = out.decode()
    assert not any(raw in text for raw in RAW)
    lines = [line.strip("┃│ ") for line in text.splitlines() if line[:1] in ("┃", "│")]
    assert lines[0] == "[bold]msg"  # a name is data too
    assert "".join(lines[1:]) == SHOWN  # folded over lines at the table's width, and nothing else


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_exports_keep_the_bytes_as_they_are(hostile_record, fmt, tmp_path):
    out = tmp_path / f"out.{fmt}"
    assert main(["--config", str(hostile_record), "query", "--format", fmt, "--output", str(out),
                 "SELECT error_msg FROM jobs"]) == 0
    data = out.read_bytes()
    if fmt == "csv":
        assert pacsv.read_csv(io.BytesIO(data)).column("error_msg").to_pylist() == [HOSTILE]
        assert f'"{HOSTILE}"'.encode() in data
    elif fmt == "tsv":
        assert data == f"error_msg\n{HOSTILE}".replace("\r", "\\r").encode() + b"\n"
    elif fmt == "parquet":
        assert pq.read_table(io.BytesIO(data)).column("error_msg").to_pylist() == [HOSTILE]
    else:
        rows = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]
        assert rows == [{"error_msg": HOSTILE}]


ATTACKS = ["\x1b]0;pwned\x07", "\x1b[2J\x1b[31mred", "\x9b31m c1", "a\rb\x08", "\u202eevil", "[reverse]x[/]",
           "[link=http://example.org]y[/link]", "[/]"]


class _Grid(App):
    """The results grid alone, over hostile text in cells, in a list and in a column's name."""

    def compose(self):
        yield ResultGrid(pa.table({"error_msg": ATTACKS, "tags": [[a] for a in ATTACKS],
                                   "[red]name\x1b[2J": range(len(ATTACKS))}), 100)


def test_the_results_grid_and_the_cell_screen_show_text_not_markup_or_escapes():
    async def scenario() -> None:
        app = _Grid()
        async with app.run_test(size=(160, 12)) as pilot:
            await pilot.pause(0.2)
            grid = app.query_one(ResultGrid)
            lines = [list(grid.render_line(y)) for y in range(len(ATTACKS) + 1)]
            drawn = ["".join(segment.text for segment in line) for line in lines]
            assert not any(raw in text for raw in RAW for text in drawn)
            assert drawn[0].split() == ["error_msg", "tags", "[red]name\\x1b[2J"]
            cells = [text.split("  ")[0].strip() for text in drawn[1:]]
            assert cells == [visible(attack) for attack in ATTACKS]  # "[reverse]x[/]" as those 13 characters
            styles = [segment.style for line in lines for segment in line if isinstance(segment.style, Style)]
            assert not any(style.reverse or style.link for style in styles)

            app.push_screen(CellScreen("error_msg", HOSTILE))  # a stray [/] made it fail with a MarkupError
            await pilot.pause(0.2)
            shown = [str(static.render()) for static in app.screen.query(Static)]
            assert shown == ["error_msg", SHOWN]
            await pilot.press("y")
            assert app.clipboard == HOSTILE  # copied as it is: the clipboard is the user's, not the terminal

    asyncio.run(scenario())


def test_text_that_is_not_utf8_is_shown_by_its_bytes():
    result = pa.table({"v": pa.array([b"ok \xff\x1b end"]).view(pa.string())})
    text = table_text(result)
    assert "ok \\xff\\x1b end" in text and "\x1b" not in text
