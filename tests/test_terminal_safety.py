"""Data never drives the terminal: an ``error_msg`` a producer wrote holding escape sequences, C0 and C1
control characters, a bidi override or Rich markup is shown as text by `archives query` (table), the
dashboard's results grid and its cell screen, and kept byte for byte by every export format. The same
text in a dead letter, an exporter's heartbeat or an event is shown as text by `archives dlq list`
(table and JSON), `archives find`, `archives status` (table and JSON), the dashboard's dead-letter
screen, its status cards and its notifications."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
import unicodedata

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from rich.style import Style
from textual.app import App
from textual.widgets import DataTable, Static
from textual.widgets._toast import Toast

from archives_tui.cli import main
from archives_tui.panels import ResultGrid
from archives_tui.render import table_text, visible, visible_json, visible_line
from archives_tui.screens import CellScreen, DeadLettersScreen
from archives_tui.status_panel import StatusPanel
from exporter.config import RetentionConfig
from exporter.query.writers import terminal_safe
from exporter.seed import synthetic_completions
from tests.test_outages import write_config
from tests.test_tui_snapshots import SHOT

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
        assert not hidden(data)  # the same JSON value, with C1 and bidi characters as \uXXXX escapes


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


def hidden(out: bytes) -> list[str]:
    """The characters of ``out`` that would drive a terminal: C0 but newline and tab, DEL, C1, bidi and
    other format characters (``out`` must be UTF-8, too)."""
    return [c for c in out.decode("utf-8") if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


STREAM = "completed_jobs"


def dead_letter(redis_client, reason: str, fields: dict) -> str:
    """A dead letter as the exporter writes one: the entry's fields, then its own."""
    return redis_client.xadd(f"{STREAM}:dlq", {**fields, b"_reason": reason.encode(), b"_source_id": b"1-1",
                                               b"_failed_at": b"1764322800000", b"_batch_id": b"1-1_abc"}).decode()


@pytest.fixture
def hostile_letters(config, redis_client, tmp_path):
    """One dead letter per attack, in its reason and in a field's name and value; the config file."""
    for n, attack in enumerate(ATTACKS):
        dead_letter(redis_client, f"why {attack}", {f"name{attack}".encode(): f"job-{n} {attack}".encode()})
    return write_config(tmp_path / "archives.yaml", config)


def test_dlq_list_shows_reasons_names_and_values_as_text(hostile_letters, capsysbinary):
    assert main(["--config", str(hostile_letters), "dlq", "list"]) == 0
    out = capsysbinary.readouterr().out
    assert not hidden(out)
    text = out.decode()
    for n, attack in enumerate(ATTACKS):
        assert f"  {visible_line(f'why {attack}')}\n    {visible_line(f'name{attack}=job-{n} {attack}')}\n" in text


def test_dlq_list_json_is_the_same_text_escaped_the_json_way(hostile_letters, capsysbinary):
    assert main(["--config", str(hostile_letters), "dlq", "list", "--format", "json"]) == 0
    out = capsysbinary.readouterr().out
    assert not hidden(out)  # \u001b, \u009b, \u202e: JSON's own escapes
    letters = json.loads(out)[::-1]  # newest first
    assert [letter["reason"] for letter in letters] == [f"why {attack}" for attack in ATTACKS]
    assert [letter["fields"] for letter in letters] == [{f"name{a}": f"job-{n} {a}"} for n, a in enumerate(ATTACKS)]


def test_find_shows_a_refused_entry_as_text(config, redis_client, tmp_path, capsysbinary):
    dead_letter(redis_client, HOSTILE, {b"job_id": b"needle-1", b"\xff": HOSTILE.encode()})
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "find", "needle-1"]) == 0
    out = capsysbinary.readouterr().out
    assert not hidden(out)
    cells = "".join(line.rsplit("│", 2)[1].strip() for line in out.decode().splitlines() if line.startswith("│"))
    expected = f"{SHOWN} | entry: job_id=needle-1 \\xff={SHOWN}"  # the reason column, folded at spaces
    assert cells.replace(" ", "") == expected.replace(" ", "")


def test_status_shows_heartbeats_as_text(config, redis_client, tmp_path, capsysbinary):
    now = time.time()
    redis_client.set(f"{STREAM}:exporter:{HOSTILE}", orjson.dumps({"updated_at": now, "last_error": HOSTILE,
                                                                   "last_error_at": now}))
    config_file = write_config(tmp_path / "archives.yaml", config)
    main(["--config", str(config_file), "status"])
    out = capsysbinary.readouterr().out
    assert not hidden(out)
    lines = out.decode().splitlines()
    assert lines[-2].startswith(f"exporter {SHOWN} (running") and lines[-1].endswith(f" ago): {SHOWN}")

    main(["--config", str(config_file), "status", "--format", "json"])
    out = capsysbinary.readouterr().out
    assert not hidden(out)
    status = json.loads(out)
    assert status["exporters"][0]["consumer"] == HOSTILE and status["last_error"] == HOSTILE


@pytest.mark.parametrize("key, value", [
    (b"\xff\xfe\x1b[2J", b"not json"),  # a name that is not UTF-8, a value that is not JSON
    (b"x", b"[1, 2]"),  # JSON, but no exporter's snapshot
    (b"y", orjson.dumps({"updated_at": "yesterday", "archived": "lots", "batches": True, "last_error": 7})),
])
def test_status_reads_any_heartbeat_another_tool_wrote(config, redis_client, tmp_path, capsysbinary, key, value):
    redis_client.set(f"{STREAM}:exporter:".encode() + key, value)
    config_file = write_config(tmp_path / "archives.yaml", config)
    assert main(["--config", str(config_file), "status"]) == 0
    out = capsysbinary.readouterr().out
    assert not hidden(out) and b"exporter " in out
    assert main(["--config", str(config_file), "status", "--format", "json"]) == 0
    shown = json.loads(capsysbinary.readouterr().out)["exporters"]
    assert len(shown) == 1 and shown[0]["consumer"] == key.decode("utf-8", "backslashreplace")


def test_json_output_escapes_every_character_a_terminal_acts_on_and_keeps_the_value():
    """Every control, format and separator character JSON leaves raw (all of Cc, Cf, Zl, Zp past C0, in this
    Python's Unicode) comes out as an escape, in query output and in the tools' JSON alike."""
    acting = "".join(chr(c) for c in range(0x20, 0x110000) if not 0xD800 <= c <= 0xDFFF
                     and unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp"))
    for out in (terminal_safe(orjson.dumps({"v": acting})), visible_json({"v": acting})):
        assert not hidden(out) and json.loads(out) == {"v": acting}


def drawn(widget, height: int) -> tuple[list[str], list[Style]]:
    """What ``widget`` draws on its first ``height`` lines, and the styles it draws them with."""
    lines = [list(widget.render_line(y)) for y in range(height)]
    return (["".join(segment.text for segment in line) for line in lines],
            [segment.style for line in lines for segment in line if isinstance(segment.style, Style)])


def assert_text_only(texts: list[str], styles: list[Style]) -> None:
    assert not any(raw in text for raw in RAW for text in texts)
    assert not any(style.reverse or style.link for style in styles)


class _DeadLetters(App):
    def __init__(self, client) -> None:
        super().__init__()
        self.client = client

    def on_mount(self) -> None:
        self.push_screen(DeadLettersScreen(self.client, STREAM))


def test_the_dead_letter_screen_shows_text_not_markup_or_escapes(redis_client):
    for attack in ATTACKS:
        dead_letter(redis_client, attack, {b"note": attack.encode()})

    async def scenario() -> None:
        app = _DeadLetters(redis_client)
        async with app.run_test(size=(160, 30)) as pilot:  # a stray [/] in a cell made it fail with a MarkupError
            await pilot.pause(0.5)
            grid = app.screen.query_one("#dlq", DataTable)
            assert grid.row_count == len(ATTACKS)
            texts, styles = drawn(grid, len(ATTACKS) + 1)
            assert_text_only(texts, styles)
            start, end = texts[0].index("reason"), texts[0].index("entry")  # the reason column
            reasons = [text[start:end].strip() for text in texts[1:]]
            assert reasons == [visible(attack) for attack in reversed(ATTACKS)]
            for attack in reversed(ATTACKS):  # the detail pane of each, newest first
                texts, styles = drawn(app.screen.query_one("#dlq-entry", Static), 3)
                assert_text_only(texts, styles)
                assert [t.strip() for t in texts] == [visible(attack), "entry 1-1 · batch 1-1_abc",
                                                      f"note = {visible(attack)}"]
                await pilot.press("down")
                await pilot.pause(0.1)

    asyncio.run(scenario())


class _Status(App):
    def compose(self):
        yield StatusPanel()


def test_the_status_cards_and_events_show_text_not_markup_or_escapes():
    shot = dataclasses.replace(
        SHOT, events=[f"14:29:0{n} ERROR {attack}" for n, attack in enumerate(ATTACKS)], stream_down=HOSTILE,
        exporter={**SHOT.exporter, "running": False, "stopped_by": HOSTILE,
                  "sink_errors": {"parquet": (SHOT.taken - 40, HOSTILE)}},
        storage={"warm": {"down": HOSTILE}, "cold": {"down": HOSTILE}}, figures={"today": HOSTILE})

    async def scenario() -> None:
        app = _Status()
        async with app.run_test(size=(200, 80)) as pilot:
            app.query_one(StatusPanel).show(shot, RetentionConfig())
            await pilot.pause(0.3)
            for card in ("export", "destinations", "storage", "events"):
                static = app.query_one(f"#status-{card}", Static)
                texts, styles = drawn(static, static.size.height)
                assert_text_only(texts, styles)
                assert SHOWN[:100] in "".join(texts) or card == "events", card
            events = "\n".join(drawn(app.query_one("#status-events", Static), 12)[0])
            assert all(visible(attack) in events for attack in ATTACKS)
            figures = str(app.query_one("#status-figures").get_option_at_index(0).prompt)
            assert SHOWN[:20] in figures and not any(raw in figures for raw in RAW)

    asyncio.run(scenario())


def test_a_notification_shows_a_column_name_as_text():
    async def scenario() -> None:
        app = _Grid()
        async with app.run_test(size=(160, 20), notifications=True) as pilot:
            app.push_screen(CellScreen("[link=http://example.org]col[/link]\x1b[2J", "v"))
            await pilot.pause(0.2)
            await pilot.press("y")
            await pilot.pause(0.3)
            toast = app.screen.query_one(Toast)
            texts, styles = drawn(toast, toast.size.height)
            assert_text_only(texts, styles)
            assert "copied [link=http://example.org]col[/link]\\x1b[2J" in "".join(texts)

    asyncio.run(scenario())
